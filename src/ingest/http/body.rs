//! A request body as events: one JSON object, a JSON array of them, or
//! NDJSON (one per line).

use std::borrow::Cow;

use serde_json::value::RawValue;

/// Why a body holds no events to answer one by one.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body holds no events")]
    Empty,
    #[error("the body starts a JSON array that does not parse")]
    Array(#[source] serde_json::Error),
}

/// Each event's text, in the order written. A body that is one JSON value
/// (even across lines) is one event; otherwise each non-blank line is one,
/// and a line that is not JSON gets its own `parse_error`, as on the socket.
/// An event written across lines comes out on one, as the socket's do:
/// events are kept, filed and sent as the text that arrived.
pub fn events(body: &[u8]) -> Result<Vec<Cow<'_, [u8]>>, BodyError> {
    let body = body.trim_ascii();
    let events: Vec<Cow<'_, [u8]>> = if body.first() == Some(&b'[') {
        serde_json::from_slice::<Vec<&RawValue>>(body)
            .map_err(BodyError::Array)?
            .into_iter()
            .map(|event| on_one_line(event.get().as_bytes()))
            .collect()
    } else if serde_json::from_slice::<&RawValue>(body).is_ok() {
        vec![on_one_line(body)]
    } else {
        body.split(|byte| *byte == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .map(Cow::Borrowed)
            .collect()
    };
    if events.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(events)
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
