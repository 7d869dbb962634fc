//! `TextFileHandler`: appends one line per event to a file.
//!
//! Files are opened in append mode and kept open; each line goes out in one
//! `write` call under a lock, so lines stay whole with many workers (and, on
//! local file systems, with other processes appending too); a write that
//! fails partway is cut off again ([`whole_line`]). A file that
//! logrotate moved or deleted is noticed within a second and reopened.

mod whole_line;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::HandlerError;
use super::template::{Escape, Template};
use crate::event::Event;

/// Settings of a `TextFileHandler` section.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// File each event is appended to, created with its parent directories.
    /// `{Field}` inserts an event field (characters other than letters, digits,
    /// `.`, `_`, `-` become `_`), `{date}` the UTC date as `YYYY-MM-DD`.
    /// Relative to the config file's directory. Alias `FilePath`.
    #[serde(alias = "FilePath")]
    pub file_path: Template,
    /// `json`: the event as one line of JSON. `text`: `template` filled in.
    /// Default `json`.
    #[serde(default)]
    pub format: Format,
    /// The line written for `format = "text"`, with `{Field}` and `{date}`
    /// placeholders. Default `"{ReceivedAt} {Phase} {JobType} {JobResult} {JobId}"`.
    pub template: Option<Template>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Text,
}

const DEFAULT_TEXT_TEMPLATE: &str = "{ReceivedAt} {Phase} {JobType} {JobResult} {JobId}";
/// How often an open file is checked for having been rotated away.
const ROTATION_CHECK: Duration = Duration::from_secs(1);
/// Open files kept at most; a `file_path` templated per job would otherwise
/// keep every file it ever wrote open.
const MAX_OPEN_FILES: usize = 64;

#[derive(Debug)]
pub struct TextFileHandler {
    target: Target,
    line: Line,
}

/// Where the lines go, and the files kept open for them.
#[derive(Debug)]
enum Target {
    /// No placeholders: one file, its path resolved once (and no lookup
    /// per event).
    Fixed {
        path: PathBuf,
        file: Mutex<Option<OpenFile>>,
    },
    /// Rendered per event, then resolved against `dir`; the files written
    /// last are kept open.
    Templated {
        template: Template,
        dir: PathBuf,
        files: Mutex<HashMap<PathBuf, OpenFile>>,
    },
}

#[derive(Debug)]
enum Line {
    Json,
    Text(Template),
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    checked_at: Instant,
    used_at: Instant,
}

impl TextFileHandler {
    pub fn new(settings: &Settings, config_dir: &Path) -> Result<Self, String> {
        let line = match (settings.format, &settings.template) {
            (Format::Json, None) => Line::Json,
            (Format::Json, Some(_)) => {
                return Err("`template` applies only to format = \"text\"".to_owned());
            }
            (Format::Text, Some(template)) => Line::Text(template.clone()),
            (Format::Text, None) => {
                Line::Text(Template::parse(DEFAULT_TEXT_TEMPLATE).expect("default template parses"))
            }
        };
        let target = if settings.file_path.is_constant() {
            let mut path = String::new();
            settings.file_path.render_constant(&mut path);
            Target::Fixed {
                path: config_dir.join(path),
                file: Mutex::new(None),
            }
        } else {
            Target::Templated {
                template: settings.file_path.clone(),
                dir: config_dir.to_owned(),
                files: Mutex::new(HashMap::new()),
            }
        };
        Ok(TextFileHandler { target, line })
    }

    pub fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let mut line = Vec::with_capacity(512);
        match &self.line {
            Line::Json => line.extend_from_slice(event.json()),
            Line::Text(template) => {
                let mut text = String::with_capacity(128);
                template.render(event, Escape::Line, &mut text);
                line.extend_from_slice(text.as_bytes());
            }
        }
        line.push(b'\n');
        let cannot_write = |path: &Path, err: std::io::Error| {
            HandlerError::retryable(format!("cannot write to {}: {err}", path.display()))
        };
        match &self.target {
            Target::Fixed { path, file } => {
                append(&mut lock(file), path, &line).map_err(|err| cannot_write(path, err))
            }
            Target::Templated {
                template,
                dir,
                files,
            } => {
                let mut rendered = String::new();
                template.render(event, Escape::PathSegment, &mut rendered);
                let path = dir.join(rendered);
                let mut files = lock(files);
                let mut file = files.remove(&path);
                let written =
                    append(&mut file, &path, &line).map_err(|err| cannot_write(&path, err));
                if let Some(file) = file {
                    if files.len() >= MAX_OPEN_FILES {
                        close_least_recently_used(&mut files);
                    }
                    files.insert(path, file);
                }
                written
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends `line` to `path` through the file kept open in `slot`, opening
/// it when there is none or when it was rotated away. A failed write
/// empties the slot: the next attempt reopens (the file may have been
/// replaced).
fn append(slot: &mut Option<OpenFile>, path: &Path, line: &[u8]) -> std::io::Result<()> {
    let now = Instant::now();
    if let Some(open) = slot
        && now.duration_since(open.checked_at) >= ROTATION_CHECK
    {
        open.checked_at = now;
        if !still_at(&open.file, path) {
            *slot = None;
        }
    }
    let open = match slot {
        Some(open) => open,
        None => slot.insert(OpenFile {
            file: open_append(path)?,
            checked_at: now,
            used_at: now,
        }),
    };
    open.used_at = now;
    let written = whole_line::append(&mut open.file, line);
    if written.is_err() {
        *slot = None;
    }
    written
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn close_least_recently_used(files: &mut HashMap<PathBuf, OpenFile>) {
    let oldest = files
        .iter()
        .min_by_key(|(_, open)| open.used_at)
        .map(|(path, _)| path.clone());
    if let Some(path) = oldest {
        files.remove(&path);
    }
}

/// Whether `path` still names the open file (logrotate has not moved it away).
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn event(json: &str) -> Event {
        Event::from_line(json.as_bytes(), "2026-01-02T03:04:05Z".parse().unwrap()).unwrap()
    }

    fn handler(dir: &Path, toml: &str) -> TextFileHandler {
        let settings: Settings = toml::from_str(toml).unwrap();
        TextFileHandler::new(&settings, dir).unwrap()
    }

    #[test]
    fn writes_json_lines_into_templated_paths() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), r#"file_path = "out/{Phase}/{JobType}.log""#);
        h.handle(&event(
            r#"{"Id":"1","JobType":"Inv","JobResult":"Success"}"#,
        ))
        .unwrap();
        h.handle(&event(
            r#"{"Id":"2","JobType":"Inv","JobResult":"Failure"}"#,
        ))
        .unwrap();
        let finish = std::fs::read_to_string(dir.path().join("out/OnFinish/Inv.log")).unwrap();
        let error = std::fs::read_to_string(dir.path().join("out/OnError/Inv.log")).unwrap();
        let line: serde_json::Value = serde_json::from_str(finish.trim_end()).unwrap();
        assert_eq!(line["Id"], "1");
        assert_eq!(line["Phase"], "OnFinish");
        assert_eq!(error.lines().count(), 1);
        assert!(error.contains(r#""Id":"2""#));
    }

    #[test]
    fn text_format_uses_the_template_or_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(
            dir.path(),
            "file_path = \"a.log\"\nformat = \"text\"\ntemplate = \"{Id}|{JobResult}\"",
        );
        h.handle(&event(r#"{"Id":"x","JobResult":"Warning"}"#))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log")).unwrap(),
            "x|Warning\n"
        );
        let h = handler(dir.path(), "file_path = \"b.log\"\nformat = \"text\"");
        h.handle(&event(r#"{"JobType":"Inv","JobResult":"Success","JobId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}"#)).unwrap();
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
                .contains("template")
        );
    }

    #[test]
    fn lines_stay_whole_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let h = Arc::new(handler(dir.path(), r#"file_path = "all.log""#));
        let padding = "x".repeat(3000);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let h = h.clone();
                let padding = padding.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let e = event(&format!(r#"{{"Id":"{t}-{i}","Pad":"{padding}"}}"#));
                        h.handle(&e).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
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

    #[test]
    fn reopens_a_file_rotated_away() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), r#"file_path = "rot.log""#);
        h.handle(&event(r#"{"Id":"before"}"#)).unwrap();
        std::fs::rename(dir.path().join("rot.log"), dir.path().join("rot.log.1")).unwrap();
        // Force the next write to check for rotation.
        let Target::Fixed { file, .. } = &h.target else {
            panic!("a constant path is fixed");
        };
        file.lock().unwrap().as_mut().unwrap().checked_at -= ROTATION_CHECK;
        h.handle(&event(r#"{"Id":"after"}"#)).unwrap();
        let rotated = std::fs::read_to_string(dir.path().join("rot.log.1")).unwrap();
        let fresh = std::fs::read_to_string(dir.path().join("rot.log")).unwrap();
        assert!(rotated.contains("before") && !rotated.contains("after"));
        assert!(fresh.contains("after"));
    }

    #[test]
    fn an_unwritable_path_is_a_retryable_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocker"), "").unwrap();
        let h = handler(dir.path(), r#"file_path = "blocker/x.log""#);
        let err = h.handle(&event("{}")).unwrap_err();
        assert!(err.is_retryable());
        assert!(err.message.contains("blocker/x.log"), "{}", err.message);
    }

    #[test]
    fn open_files_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), r#"file_path = "jobs/{Id}.log""#);
        for i in 0..(MAX_OPEN_FILES + 10) {
            h.handle(&event(&format!(r#"{{"Id":"{i}"}}"#))).unwrap();
        }
        let Target::Templated { files, .. } = &h.target else {
            panic!("a path with a placeholder is templated");
        };
        assert_eq!(files.lock().unwrap().len(), MAX_OPEN_FILES);
        assert_eq!(
            std::fs::read_dir(dir.path().join("jobs")).unwrap().count(),
            MAX_OPEN_FILES + 10
        );
    }
}
