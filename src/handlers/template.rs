//! `{Field}` / `{date}` placeholders in paths, URLs and text lines.
//!
//! A template is parsed once, when the config is read, so a typo such as an
//! unclosed `{` is a config error with a position. `{{` and `}}` stand for
//! literal braces.

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer};
use serde_json::Value;

use crate::event::{Event, unprintable};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
    /// Today's date in UTC, `YYYY-MM-DD`.
    Date,
}

/// How an inserted value is made safe for where it lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Inside one line of text: `\n`, `\r` and `\t` are written so, and
    /// every other control character (C0, DEL, C1) and the Unicode line and
    /// paragraph separators as `\u{1b}` (hex), so one event stays one line
    /// and a value cannot send escape sequences to a terminal.
    Line,
    /// Inside a file path: anything but letters, digits, `.`, `_` and `-` becomes
    /// `_`, so a field value can never climb out of the directory (`../`).
    PathSegment,
    /// Inside a URL: percent-encoded, so a value is one path segment or
    /// query value (a segment of only dots is refused by the HTTP handler).
    UrlComponent,
}

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a template cannot be read; it quotes the template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "invalid placeholder in {0:?}: write {{FieldName}} or {{date}}, and {{{{ for a literal brace"
    )]
    Placeholder(String),
    #[error("unmatched `}}` in {0:?}; write }}}} for a literal brace")]
    UnmatchedBrace(String),
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    let valid = closed
                        && !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_alphanumeric() || "_-.".contains(c));
                    if !valid {
                        return Err(TemplateError::Placeholder(source.to_owned()));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(if name == "date" {
                        Part::Date
                    } else {
                        Part::Field(name)
                    });
                }
                '}' => {
                    return Err(TemplateError::UnmatchedBrace(source.to_owned()));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// True when the template has no placeholders.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|part| matches!(part, Part::Text(_)))
    }

    /// Renders a template without placeholders (see [`Template::is_constant`]).
    pub fn render_constant(&self, out: &mut String) {
        for part in &self.parts {
            if let Part::Text(text) = part {
                out.push_str(text);
            }
        }
    }

    /// The template with every placeholder replaced by `stand_in`: lets a
    /// config check that a templated URL is well formed.
    pub fn with_stand_in(&self, stand_in: &str) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.as_str(),
                Part::Field(_) | Part::Date => stand_in,
            })
            .collect()
    }

    /// Renders the template for an event. A missing or null field renders as
    /// nothing (in a path: `_`); objects and arrays render as compact JSON.
    pub fn render(&self, event: &Event, escape: Escape, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Date => {
                    let today = jiff::Timestamp::now()
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .date();
                    let _ = write!(out, "{today}");
                }
                Part::Field(name) => {
                    let mut value = String::new();
                    match event.field(name) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(text)) => value.push_str(text),
                        Some(other) => value.push_str(&other.to_string()),
                    }
                    escape.push(&value, out);
                }
            }
        }
    }
}

impl Escape {
    fn push(self, value: &str, out: &mut String) {
        match self {
            Escape::Line => {
                for c in value.chars() {
                    match c {
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if unprintable(c) => {
                            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                        }
                        c => out.push(c),
                    }
                }
            }
            Escape::PathSegment => {
                if value.is_empty() || only_dots(value) {
                    out.push('_');
                    return;
                }
                out.extend(value.chars().map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                }));
            }
            Escape::UrlComponent => {
                out.extend(percent_encoding::utf8_percent_encode(value, URL_COMPONENT));
            }
        }
    }
}

/// `.`, `..`, …: a path segment made of these means "here" or "up".
fn only_dots(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c == '.')
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Template::parse(&source).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let line = br#"{"JobType":"WinCertInventory","JobId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3","Note":"a\nb","Evil":"../../etc/passwd","N":7}"#;
        Event::from_line(line, "2026-01-02T03:04:05Z".parse().unwrap()).unwrap()
    }

    fn render(source: &str, escape: Escape) -> String {
        let mut out = String::new();
        Template::parse(source)
            .unwrap()
            .render(&event(), escape, &mut out);
        out
    }

    #[test]
    fn renders_fields_and_literal_braces() {
        assert_eq!(
            render("{JobType} {N} [{Missing}] {{x}}", Escape::Line),
            "WinCertInventory 7 [] {x}"
        );
        assert_eq!(render("{Note}", Escape::Line), "a\\nb");
    }

    #[test]
    fn control_characters_never_reach_a_line_as_they_are() {
        let line =
            "{\"V\":\"a\\u0000b\\u001b[31mc\\td\\u007f\\u0085\\u009b\\u2028\\u2029\\r\\né\"}";
        let event = Event::from_line(line.as_bytes(), jiff::Timestamp::now()).unwrap();
        let mut out = String::new();
        Template::parse("{V}")
            .unwrap()
            .render(&event, Escape::Line, &mut out);
        assert_eq!(
            out,
            r"a\u{0}b\u{1b}[31mc\td\u{7f}\u{85}\u{9b}\u{2028}\u{2029}\r\né"
        );
    }

    #[test]
    fn path_segments_cannot_escape_the_directory() {
        assert_eq!(
            render("logs/{Evil}.log", Escape::PathSegment),
            "logs/.._.._etc_passwd.log"
        );
        assert_eq!(
            render("logs/{Missing}.log", Escape::PathSegment),
            "logs/_.log"
        );
    }

    #[test]
    fn url_components_are_percent_encoded() {
        assert_eq!(
            render("https://h/jobs/{Evil}?t={JobType}", Escape::UrlComponent),
            "https://h/jobs/..%2F..%2Fetc%2Fpasswd?t=WinCertInventory"
        );
        let line = br#"{"A":"..","B":"."}"#;
        let event = Event::from_line(line, jiff::Timestamp::now()).unwrap();
        let mut out = String::new();
        Template::parse("https://h/{A}/{B}").unwrap().render(
            &event,
            Escape::UrlComponent,
            &mut out,
        );
        // Dots encode to nothing; the HTTP handler refuses the URL's dot
        // segments (`handlers::http::target`), however they are spelt.
        assert_eq!(out, "https://h/../.");
        assert_eq!(
            Template::parse("https://{Host}/x/{date}")
                .unwrap()
                .with_stand_in("x"),
            "https://x/x/x"
        );
    }

    #[test]
    fn date_placeholder_is_todays_utc_date() {
        let rendered = render("{date}", Escape::PathSegment);
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        assert_eq!(rendered, today);
        assert!(!Template::parse("{date}").unwrap().is_constant());
        assert!(Template::parse("plain.log").unwrap().is_constant());
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert!(
            Template::parse("{Unclosed")
                .unwrap_err()
                .to_string()
                .contains("invalid placeholder")
        );
        assert!(Template::parse("{}").is_err());
        assert!(Template::parse("{a b}").is_err());
        assert!(
            Template::parse("x}")
                .unwrap_err()
                .to_string()
                .contains("unmatched")
        );
    }
}
