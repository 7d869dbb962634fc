//! `jobhook send`'s input split into event lines without rewriting a value:
//! numbers of any size or precision, string escapes and key order reach the
//! daemon as the input wrote them. Only whitespace between tokens goes (one
//! event, one line), and `--phase` replaces the `Phase` field's value.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::Phase;

/// Splits input into event lines: a JSON array (one line per element), one
/// JSON value, or NDJSON (one line per non-blank line, passed as written when
/// it is not JSON, so that the daemon's answer explains the problem).
/// `phase` overrides each event's `Phase`.
pub fn event_lines(input: &str, phase: Option<Phase>) -> Vec<String> {
    let line = |raw: &RawValue| with_phase(raw, phase);
    match serde_json::from_str::<&RawValue>(input) {
        Ok(raw) => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Ok(items) => items.into_iter().map(line).collect(),
            Err(_) => vec![line(raw)],
        },
        Err(_) => input
            .lines()
            .filter(|text| !text.trim().is_empty())
            .map(|text| match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) => line(raw),
                Err(_) => text.to_owned(),
            })
            .collect(),
    }
}

/// One value on one line, its `Phase` replaced when it is an object.
fn with_phase(raw: &RawValue, phase: Option<Phase>) -> String {
    let fields = phase.and_then(|_| serde_json::from_str::<Fields<'_>>(raw.get()).ok());
    let (Some(phase), Some(Fields(mut fields))) = (phase, fields) else {
        return compact(raw.get());
    };
    let text = format!("\"{}\"", phase.as_str());
    let value: &RawValue = serde_json::from_str(&text).expect("a JSON string");
    match fields.iter_mut().find(|(name, _)| name == "Phase") {
        Some((_, old)) => *old = value,
        None => fields.push(("Phase".to_owned(), value)),
    }
    let mut line = String::from("{");
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        line.push_str(&serde_json::Value::from(name.as_str()).to_string());
        line.push(':');
        line.push_str(&compact(value.get()));
    }
    line.push('}');
    line
}

/// JSON text without the whitespace between its tokens.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            (escaped, in_string) = (c == '\\' && !escaped, c != '"' || escaped);
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// An object's fields in order, values as written.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arrays_objects_and_ndjson() {
        assert_eq!(
            event_lines(r#"[{"a":1},{"b":2}]"#, None),
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert_eq!(event_lines("{\n \"a\": 1\n}\n", None), [r#"{"a":1}"#]);
        assert_eq!(
            event_lines("{\"a\":1}\n\n{\"b\":2}\nnot json\n", None),
            [r#"{"a":1}"#, r#"{"b":2}"#, "not json"]
        );
    }

    #[test]
    fn phase_overrides_each_event() {
        let lines = event_lines(r#"[{"Phase":"OnFinish"},{}]"#, Some(Phase::OnStart));
        assert_eq!(lines, [r#"{"Phase":"OnStart"}"#, r#"{"Phase":"OnStart"}"#]);
    }

    #[test]
    fn values_pass_as_written() {
        let big =
            r#"{"N": 123456789012345678901234567890, "F": 1.10, "E": 1e400, "S": "a \" b\\"}"#;
        let written = r#"{"N":123456789012345678901234567890,"F":1.10,"E":1e400,"S":"a \" b\\"}"#;
        for phase in [None, Some(Phase::OnFinish)] {
            for input in [big.to_owned(), format!("[{big}]"), format!("{big}\n{big}")] {
                for line in event_lines(&input, phase) {
                    let expected = match phase {
                        Some(_) => written.replace('}', ",\"Phase\":\"OnFinish\"}"),
                        None => written.to_owned(),
                    };
                    assert_eq!(line, expected, "{input}");
                }
            }
        }
    }
}
