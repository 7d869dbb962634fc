//! A request body as events: one JSON object, a JSON array of them, or
//! NDJSON (one per line).

use std::borrow::Cow;

use serde_json::value::RawValue;

/// Most events one body may hold: what answering them takes (a reply
/// each, and the time to commit them) stays bounded.
pub const MAX_EVENTS: usize = 10_000;

/// Why a body holds no events to answer one by one.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body holds no events")]
    Empty,
    #[error("the body holds more than {MAX_EVENTS} events; send them in several requests")]
    TooMany,
    #[error("the body starts a JSON array that does not parse")]
    Array(#[source] serde_json::Error),
    #[error("the body is neither one JSON value nor NDJSON (its first line is not JSON by itself)")]
    Json(#[source] serde_json::Error),
}

/// Each event's text, in the order written. A body that is one JSON value
/// (even across lines) is one event. Otherwise it is NDJSON when its first
/// line is JSON by itself: each non-blank line is one event, and a line
/// that is not JSON gets its own `parse_error`, as on the socket. A broken
/// value written across lines is an error of the whole body, so that its
/// lines never pass for events. An event written across lines comes out
/// on one, as the socket's do: events are kept, filed and sent as the text
/// that arrived.
pub fn events(body: &[u8]) -> Result<Vec<Cow<'_, [u8]>>, BodyError> {
    let body = body.trim_ascii();
    if body.is_empty() {
        return Err(BodyError::Empty);
    }
    let events: Vec<Cow<'_, [u8]>> = if body.first() == Some(&b'[') {
        serde_json::from_slice::<Vec<&RawValue>>(body)
            .map_err(BodyError::Array)?
            .into_iter()
            .map(|event| on_one_line(event.get().as_bytes()))
            .collect()
    } else {
        let first_end = first_value_end(body).map_err(BodyError::Json)?;
        if body[first_end..].trim_ascii().is_empty() {
            vec![on_one_line(body)]
        } else if first_line_ends_with_it(body, first_end) {
            body.split(|byte| *byte == b'\n')
                .map(<[u8]>::trim_ascii)
                .filter(|line| !line.is_empty())
                .map(Cow::Borrowed)
                .collect()
        } else {
            // The error of the body as one value says where it went wrong.
            let whole = serde_json::from_slice::<&RawValue>(body).expect_err("more than one value");
            return Err(BodyError::Json(whole));
        }
    };
    match events.len() {
        0 => Err(BodyError::Empty),
        count if count > MAX_EVENTS => Err(BodyError::TooMany),
        _ => Ok(events),
    }
}

/// Where the body's first JSON value ends, read once whether the body
/// turns out to be that value alone or NDJSON.
fn first_value_end(body: &[u8]) -> Result<usize, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<&RawValue>();
    match values.next() {
        Some(Err(err)) => Err(err),
        _ => Ok(values.byte_offset()),
    }
}

/// Whether the first value (ending at `end`) is the whole first line: no
/// line break inside it, and only blanks after it up to the next one.
fn first_line_ends_with_it(body: &[u8], end: usize) -> bool {
    if memchr::memchr(b'\n', &body[..end]).is_some() {
        return false;
    }
    let rest = &body[end..];
    let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    rest[..line_end].trim_ascii().is_empty()
}

/// Valid JSON with its line breaks made spaces: outside strings they are
/// only whitespace, and inside one JSON allows them only escaped.
fn on_one_line(json: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'\n', b'\r', json).is_none() {
        return Cow::Borrowed(json);
    }
    let spaced = json
        .iter()
        .map(|byte| match byte {
            b'\n' | b'\r' => b' ',
            other => *other,
        })
        .collect();
    Cow::Owned(spaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str) -> Vec<String> {
        events(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|event| String::from_utf8(event.into_owned()).unwrap())
            .collect()
    }

    #[test]
    fn an_object_an_array_and_ndjson_each_give_their_events_in_order() {
        assert_eq!(
            texts("{\r\n  \"Id\": \"a\\nb\"\n}\n"),
            ["{    \"Id\": \"a\\nb\" }"]
        );
        assert_eq!(
            texts("[{\"Id\":\"a\"},\n {\n\"Id\":\"b\"}]"),
            ["{\"Id\":\"a\"}", "{ \"Id\":\"b\"}"]
        );
        assert_eq!(
            texts("{\"Id\":\"a\"}\r\n\n{\"Id\":\"b\"}\nnot json\n"),
            ["{\"Id\":\"a\"}", "{\"Id\":\"b\"}", "not json"]
        );
    }

    #[test]
    fn the_lines_of_a_broken_value_never_pass_for_events() {
        let broken = "{\n \"JobId\": \"x\",\n \"Items\": [\n {\"a\": 1}\n ]\n \"Bad\":\n}";
        let err = events(broken.as_bytes()).unwrap_err();
        assert!(matches!(err, BodyError::Json(_)), "{err:?}");
        for two_on_a_line in [
            "{\"a\":1} {\"b\":2}\n{}",
            "{\n\"a\":1}\n{\"b\":2}",
            "{} x\n{}",
        ] {
            let err = events(two_on_a_line.as_bytes()).unwrap_err();
            assert!(
                matches!(err, BodyError::Json(_)),
                "{two_on_a_line}: {err:?}"
            );
        }
        let many = "{}\n".repeat(MAX_EVENTS + 1);
        assert!(matches!(events(many.as_bytes()), Err(BodyError::TooMany)));
        assert_eq!(
            events("{}\n".repeat(MAX_EVENTS).as_bytes()).unwrap().len(),
            MAX_EVENTS
        );
    }

    #[test]
    fn nothing_to_answer_is_an_error_of_the_body() {
        for body in ["", " \n ", "[]"] {
            assert!(matches!(events(body.as_bytes()), Err(BodyError::Empty)));
        }
        assert!(matches!(
            events(b"[{\"Id\":\"a\"},"),
            Err(BodyError::Array(_))
        ));
    }
}
