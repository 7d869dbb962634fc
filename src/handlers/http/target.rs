//! The URL an event is sent to: fixed, or rendered from the event with
//! every placeholder kept inside its own path segment.
//!
//! Rendering percent-encodes each value (`/`, `\`, `?`, `#` and every other
//! reserved character), so a value cannot add segments, a query or a
//! fragment. It cannot remove segments either: a value of only dots is
//! encoded (`..` → `%2E%2E`), but the URL standard still reads such a
//! segment as `..` and climbs the path. So a rendered URL whose path has
//! another shape than the template's is refused.

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
    /// The path's shape with every placeholder filled by a plain value.
    shape: Shape,
    /// The URL's host (NTLM binds its credentials to the host's name).
    pub host: String,
}

/// How many segments a path has, and whether its last one is empty.
#[derive(Debug, PartialEq, Eq)]
struct Shape(usize, bool);

impl Shape {
    fn of(url: &Url) -> Shape {
        Shape(
            url.path_segments().map_or(0, Iterator::count),
            url.path().ends_with('/'),
        )
    }
}

impl Target {
    /// Checks that the URL is http(s) and well formed.
    pub fn new(template: &Template) -> Result<Target, String> {
        let sample = template.with_stand_in("x");
        let parsed = match Url::parse(&sample) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => parsed,
            _ => return Err(format!("url: {sample:?} is not an http:// or https:// URL")),
        };
        Ok(Target {
            template: template.clone(),
            fixed: template.is_constant().then(|| parsed.clone()),
            shape: Shape::of(&parsed),
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
        let url = Url::parse(&text).map_err(|err| {
            HandlerError::permanent(format!(
                "url {:?} with the event's fields filled in is not a URL: {err}",
                redact(&text)
            ))
        })?;
        if Shape::of(&url) != self.shape {
            return Err(HandlerError::permanent(format!(
                "url {:?}: an event field's value is `.` or `..`, which a URL reads as a \
                 step in its path, not as a value; not sent",
                redact(&text)
            )));
        }
        Ok(url)
    }
}
