//! The URL an event is sent to: fixed, or rendered from the event with
//! every placeholder kept inside its own path segment.
//!
//! Rendering percent-encodes each value (`/`, `\`, `?`, `#` and every other
//! reserved character), so a value cannot add segments, a query or a
//! fragment. It can still make a segment of only dots (`..`), which a URL
//! parser resolves by climbing the path — and percent-encoding the dots
//! would not help: the URL standard reads `%2E%2E` as `..` too. So a
//! rendered URL with a dot segment is refused before it is parsed.

use reqwest::Url;

use crate::event::Event;
use crate::handlers::HandlerError;
use crate::handlers::template::{Escape, Template};
use crate::http::redact;

#[derive(Debug)]
pub struct Target {
    template: Template,
    /// The URL parsed once, when it has no placeholders.
    fixed: Option<Url>,
    /// The URL's host (NTLM binds its credentials to the host's name).
    pub host: String,
}

impl Target {
    /// Checks that the URL is http(s), well formed and without dot segments.
    pub fn new(template: &Template) -> Result<Target, String> {
        let sample = template.with_stand_in("x");
        let parsed = match Url::parse(&sample) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => parsed,
            _ => return Err(format!("url: {sample:?} is not an http:// or https:// URL")),
        };
        if has_dot_segment(&sample) {
            return Err(format!(
                "url: {:?} has a `.` or `..` path segment; write the path it leads to",
                redact(&sample)
            ));
        }
        Ok(Target {
            template: template.clone(),
            fixed: template.is_constant().then(|| parsed.clone()),
            host: parsed.host_str().unwrap_or_default().to_owned(),
        })
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
                redact(&text)
            )));
        }
        Url::parse(&text).map_err(|err| {
            HandlerError::permanent(format!(
                "url {:?} with the event's fields filled in is not a URL: {err}",
                redact(&text)
            ))
        })
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
