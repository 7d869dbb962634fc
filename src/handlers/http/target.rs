//! The URL an event is sent to: fixed, or rendered from the event with
//! every placeholder kept inside its own path segment.
//!
//! Rendering percent-encodes each value (`/`, `\`, `?`, `#` and every other
//! reserved character), so a value cannot add segments, a query or a
//! fragment. It can still make a segment of only dots (`..`), which a URL
//! parser resolves by climbing the path — and percent-encoding the dots
//! would not help: the URL standard reads `%2E%2E` as `..` too. So a
//! rendered URL with a dot segment is refused before it is parsed.

use std::path::Path;

use reqwest::Url;
use secrecy::ExposeSecret as _;

use super::settings::UrlSource;
use crate::config::values::SecretError;
use crate::event::Event;
use crate::failure::HandlerError;
use crate::handlers::template::{Escape, Template};
use crate::http::redact;

/// Why a handler's `url` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("url")]
    Secret(#[source] SecretError),
    #[error(
        "url: {shown} has an invalid placeholder or an unmatched brace: write {{FieldName}} \
         or {{date}}, and {{{{ or }}}} for a literal brace"
    )]
    SecretTemplate { shown: String },
    #[error("url: {0:?} is not an http:// or https:// URL")]
    NotHttp(String),
    #[error("url: {0:?} has a `.` or `..` path segment; write the path it leads to")]
    DotSegment(String),
}

pub struct Target {
    template: Template,
    /// The URL parsed once, when it has no placeholders.
    fixed: Option<Url>,
    /// The path segments every rendered URL has: a value that renders
    /// empty where the host goes (`https://{Host}/hooks`) lets a URL parser
    /// take the path for the host, which changes their number.
    segments: Option<usize>,
    /// The URL's host (NTLM binds its credentials to the host's name).
    pub host: String,
    /// In messages, a secret URL's stand-in (see [`UrlSource::Secret`]).
    secret: Option<String>,
}

impl Target {
    /// Reads a secret URL, and checks that the URL is http(s), well formed
    /// and without dot segments.
    pub fn new(url: &UrlSource, config_dir: &Path) -> Result<Target, TargetError> {
        let (template, secret) = match url {
            UrlSource::Written(template) => (template.clone(), None),
            UrlSource::Secret { source, shown } => {
                let text = source.resolve(config_dir).map_err(TargetError::Secret)?;
                // Template's own message would quote the URL: not kept.
                let template = Template::parse(text.expose_secret()).map_err(|_| {
                    TargetError::SecretTemplate {
                        shown: shown.clone(),
                    }
                })?;
                (template, Some(shown.clone()))
            }
        };
        let mut target = Target {
            fixed: None,
            segments: None,
            host: String::new(),
            secret,
            template,
        };
        let sample = target.template.with_stand_in("x");
        let parsed = match Url::parse(&sample) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => parsed,
            _ => return Err(TargetError::NotHttp(target.show(&sample))),
        };
        if has_dot_segment(&sample) {
            return Err(TargetError::DotSegment(target.show(&sample)));
        }
        target.host = parsed.host_str().unwrap_or_default().to_owned();
        target.segments = parsed.path_segments().map(Iterator::count);
        target.fixed = target.template.is_constant().then_some(parsed);
        Ok(target)
    }

    /// The URL for `event`; a value that would not stay inside its path
    /// segment fails permanently (another attempt renders the same).
    pub fn url(&self, event: &Event) -> Result<Url, HandlerError> {
        if let Some(url) = &self.fixed {
            return Ok(url.clone());
        }
        let mut text = String::new();
        self.template.render(event, Escape::UrlComponent, &mut text);
        if has_dot_segment(&text) {
            return Err(HandlerError::permanent(format!(
                "url {:?}: an event field's value is `.` or `..`, which a URL reads as a \
                 step in its path, not as a value; not sent",
                self.show(&text)
            )));
        }
        let url = Url::parse(&text).map_err(|err| {
            HandlerError::permanent(format!(
                "url {:?} with the event's fields filled in is not a URL: {err}",
                self.show(&text)
            ))
        })?;
        if url.path_segments().map(Iterator::count) != self.segments {
            return Err(HandlerError::permanent(format!(
                "url {:?}: an event field's value (an empty host?) moved the URL's path into \
                 its host; not sent",
                self.show(&text)
            )));
        }
        Ok(url)
    }

    /// A URL of this target as messages (logs, dead letters) show it:
    /// redacted (see [`redact`]), or a secret URL's stand-in.
    pub fn show(&self, url: &str) -> String {
        match &self.secret {
            Some(shown) => shown.clone(),
            None => redact(url),
        }
    }

    /// Whether the URL is a secret, never shown.
    pub fn is_secret(&self) -> bool {
        self.secret.is_some()
    }
}

/// Shows the URL as messages do: a secret one is only named.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.show(&self.template.with_stand_in("{_}")))
            .finish_non_exhaustive()
    }
}

/// Whether the path of URL text has a segment the URL standard resolves:
/// `.` or `..`, each dot written as it is or as `%2E` (any case).
fn has_dot_segment(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let Some(start) = after_scheme.find('/') else {
        return false;
    };
    let path = after_scheme[start..]
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    path.split('/').any(|segment| {
        let dots = segment.to_ascii_lowercase().replace("%2e", ".");
        dots == "." || dots == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_url_is_read_and_checked_but_never_shown() {
        #[derive(serde::Deserialize)]
        struct Section {
            url: UrlSource,
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("itsm.url"),
            "https://h/{JobId}?token=s3cr3t\n",
        )
        .unwrap();
        let section: Section = toml::from_str("url = { file = \"itsm.url\" }").unwrap();
        let target = Target::new(&section.url, dir.path()).unwrap();
        assert_eq!(target.host, "h");
        assert_eq!(
            target.show("https://h/x?token=s3cr3t"),
            "<url from itsm.url>"
        );
        let debug = format!("{target:?}");
        assert!(debug.contains("<url from itsm.url>"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }

    #[test]
    fn an_empty_host_never_sends_to_the_path() {
        // Found by fuzzing (fuzz/seeds/template_path/empty-host): with
        // `Host` missing the URL read `https:///hooks/x`, whose host a URL
        // parser takes to be `hooks`.
        let template = Template::parse("https://{Host}/hooks/x").unwrap();
        let target = Target::new(&UrlSource::Written(template), Path::new("/")).unwrap();
        let at = jiff::Timestamp::now();
        let missing = Event::from_line(br#"{"Id":"e1"}"#, at).unwrap();
        let err = target.url(&missing).unwrap_err().to_string();
        assert!(err.contains("moved the URL's path into its host"), "{err}");
        let given = Event::from_line(br#"{"Id":"e2","Host":"h.example"}"#, at).unwrap();
        assert_eq!(
            target.url(&given).unwrap().as_str(),
            "https://h.example/hooks/x"
        );
    }

    #[test]
    fn dot_segments_are_found_in_every_spelling_and_only_in_the_path() {
        for url in [
            "http://h/a/../b",
            "http://h/%2E%2e/b",
            "http://h/a/.%2E",
            "http://h/a/%2e?x",
        ] {
            assert!(has_dot_segment(url), "{url}");
        }
        for url in [
            "http://h/a/.../b",
            "http://h/a.b/",
            "http://h/a/?x=..",
            "http://h",
            "http://h/a/#..",
        ] {
            assert!(!has_dot_segment(url), "{url}");
        }
    }
}
