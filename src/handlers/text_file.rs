//! `TextFileHandler`: appends one line per event to a file.
//!
//! The line and the path are made on the worker; the file I/O happens on
//! the handler's writer thread (`writer`), never on the runtime's threads,
//! so a file system that hangs costs this handler's attempts their
//! `timeout` and nothing else. How files are opened, kept and rotated:
//! `open_files`; how a failed write leaves whole lines: `whole_line`.

mod open_files;
pub mod settings;
mod whole_line;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::template::{Escape, Template};
use crate::config::values::error_chain;
use crate::event::Event;
use crate::failure::HandlerError;
use settings::{Format, Settings};
use writer::{Appended, Writer};

const DEFAULT_TEXT_TEMPLATE: &str = "{ReceivedAt} {Phase} {JobType} {JobResult} {JobId}";

/// Why a `TextFileHandler` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("`template` applies only to format = \"text\"")]
    TemplateWithJson,
}

#[derive(Debug)]
pub struct TextFileHandler {
    path: FilePath,
    line: Line,
    writer: Writer,
}

#[derive(Debug)]
enum FilePath {
    /// No placeholders: one file, its path resolved once.
    Fixed(Arc<Path>),
    /// Rendered per event, then resolved against `dir`.
    Templated { template: Template, dir: PathBuf },
}

#[derive(Debug)]
enum Line {
    Json,
    Text(Template),
}

impl TextFileHandler {
    pub fn new(settings: &Settings, config_dir: &Path) -> Result<Self, SettingsError> {
        let line = match (settings.format, &settings.template) {
            (Format::Json, None) => Line::Json,
            (Format::Json, Some(_)) => {
                return Err(SettingsError::TemplateWithJson);
            }
            (Format::Text, Some(template)) => Line::Text(template.clone()),
            (Format::Text, None) => {
                Line::Text(Template::parse(DEFAULT_TEXT_TEMPLATE).expect("default template parses"))
            }
        };
        let path = if settings.file_path.is_constant() {
            let mut path = String::new();
            settings.file_path.render_constant(&mut path);
            FilePath::Fixed(Arc::from(config_dir.join(path)))
        } else {
            FilePath::Templated {
                template: settings.file_path.clone(),
                dir: config_dir.to_owned(),
            }
        };
        Ok(TextFileHandler {
            path,
            line,
            writer: Writer::default(),
        })
    }

    /// Appends one line per event, in order; an event's write is given up
    /// once it has been under way for `timeout` (and while one has, later
    /// attempts fail at once).
    pub async fn handle_many(
        &self,
        events: &[&Event],
        timeout: Duration,
    ) -> Vec<Result<(), HandlerError>> {
        let lines = events
            .iter()
            .map(|event| (self.path(event), self.line(event)))
            .collect();
        let Appended { written, rest } = self.writer.append_many(lines, timeout).await;
        let mut results: Vec<Result<(), HandlerError>> = written
            .into_iter()
            .map(|result| result.map_err(|err| HandlerError::retryable(error_chain(&err))))
            .collect();
        if let Some(rest) = rest {
            results.resize(
                events.len(),
                Err(HandlerError::retryable(error_chain(&rest))),
            );
        }
        results
    }

    fn line(&self, event: &Event) -> Vec<u8> {
        match &self.line {
            Line::Json => {
                let json = event.json();
                let mut line = Vec::with_capacity(json.len() + 1);
                line.extend_from_slice(json);
                line.push(b'\n');
                line
            }
            Line::Text(template) => {
                let mut text = String::with_capacity(128);
                template.render(event, Escape::Line, &mut text);
                text.push('\n');
                text.into_bytes()
            }
        }
    }

    fn path(&self, event: &Event) -> Arc<Path> {
        match &self.path {
            FilePath::Fixed(path) => path.clone(),
            FilePath::Templated { template, dir } => {
                let mut rendered = String::new();
                template.render(event, Escape::PathSegment, &mut rendered);
                Arc::from(dir.join(rendered))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        Event::from_line(json.as_bytes(), "2026-01-02T03:04:05Z".parse().unwrap()).unwrap()
    }

    async fn handle(h: &TextFileHandler, event: &Event) -> Result<(), HandlerError> {
        h.handle_many(&[event], Duration::from_secs(5))
            .await
            .pop()
            .unwrap()
    }

    fn handler(dir: &Path, toml: &str) -> TextFileHandler {
        let settings: Settings = toml::from_str(toml).unwrap();
        TextFileHandler::new(&settings, dir).unwrap()
    }

    #[tokio::test]
    async fn writes_json_lines_into_templated_paths() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), r#"file_path = "out/{Phase}/{JobType}.log""#);
        handle(
            &h,
            &event(r#"{"Id":"1","JobType":"Inv","JobResult":"Success"}"#),
        )
        .await
        .unwrap();
        handle(
            &h,
            &event(r#"{"Id":"2","JobType":"Inv","JobResult":"Failure"}"#),
        )
        .await
        .unwrap();
        let finish = std::fs::read_to_string(dir.path().join("out/OnFinish/Inv.log")).unwrap();
        let error = std::fs::read_to_string(dir.path().join("out/OnError/Inv.log")).unwrap();
        let line: serde_json::Value = serde_json::from_str(finish.trim_end()).unwrap();
        assert_eq!(line["Id"], "1");
        assert_eq!(line["Phase"], "OnFinish");
        assert_eq!(error.lines().count(), 1);
        assert!(error.contains(r#""Id":"2""#));
    }

    #[tokio::test]
    async fn text_format_uses_the_template_or_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(
            dir.path(),
            "file_path = \"a.log\"\nformat = \"text\"\ntemplate = \"{Id}|{JobResult}\"",
        );
        handle(&h, &event(r#"{"Id":"x","JobResult":"Warning"}"#))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log")).unwrap(),
            "x|Warning\n"
        );
        let h = handler(dir.path(), "file_path = \"b.log\"\nformat = \"text\"");
        handle(&h, &event(r#"{"JobType":"Inv","JobResult":"Success","JobId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}"#)).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("b.log")).unwrap();
        assert_eq!(
            text,
            "2026-01-02T03:04:05Z OnFinish Inv Success 49b3a17d-cada-4ec8-84c6-7719bf5beef3\n"
        );
    }

    #[test]
    fn template_with_json_format_is_a_config_error() {
        let settings: Settings = toml::from_str("file_path = \"a\"\ntemplate = \"{Id}\"").unwrap();
        assert!(
            TextFileHandler::new(&settings, Path::new("."))
                .unwrap_err()
                .to_string()
                .contains("template")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lines_stay_whole_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let h = Arc::new(handler(dir.path(), r#"file_path = "all.log""#));
        let padding = "x".repeat(3000);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let h = h.clone();
                let padding = padding.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        let e = event(&format!(r#"{{"Id":"{t}-{i}","Pad":"{padding}"}}"#));
                        handle(&h, &e).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("all.log")).unwrap();
        let ids: std::collections::HashSet<String> = text
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["Id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1600);
    }

    #[tokio::test]
    async fn a_batch_keeps_its_order_and_one_bad_path_fails_only_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocked"), "").unwrap();
        let h = handler(dir.path(), r#"file_path = "{JobType}/all.log""#);
        let events: Vec<Event> = ["ok", "ok", "blocked", "ok"]
            .iter()
            .enumerate()
            .map(|(i, kind)| event(&format!(r#"{{"Id":"{i}","JobType":"{kind}"}}"#)))
            .collect();
        let results = h
            .handle_many(&events.iter().collect::<Vec<_>>(), Duration::from_secs(5))
            .await;
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, false, true, false]);
        let text = std::fs::read_to_string(dir.path().join("ok/all.log")).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["Id"].to_string())
            .collect();
        assert_eq!(ids, [r#""0""#, r#""1""#, r#""3""#]);
    }

    #[tokio::test]
    async fn an_unwritable_path_is_a_retryable_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocker"), "").unwrap();
        let h = handler(dir.path(), r#"file_path = "blocker/x.log""#);
        let err = handle(&h, &event("{}")).await.unwrap_err();
        assert!(matches!(err.retry, crate::failure::Retry::Later { .. }));
        assert!(err.message.contains("blocker/x.log: "), "{}", err.message);
    }
}
