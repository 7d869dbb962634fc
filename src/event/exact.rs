//! The JSON of an event that went the general way (parsed into a map,
//! validated, normalised): every value the client wrote and the daemon did
//! not change is written as the client wrote it, so a number no `f64` or
//! 64-bit integer holds (`123456789012345678901234567890`) reaches handlers
//! exactly as sent.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The event's JSON: `fields` in their order, each value taken from `line`
/// when it is the value the client sent, else written out.
pub fn write(fields: &Map<String, Value>, line: &[u8]) -> Option<Vec<u8>> {
    // Duplicate keys: the last value wins, as in `fields`.
    let sent: HashMap<&str, &RawValue> = serde_json::from_slice(line).ok()?;
    let mut json = Vec::with_capacity(line.len() + 128);
    json.push(b'{');
    for (index, (key, value)) in fields.iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        serde_json::to_writer(&mut json, key).ok()?;
        json.push(b':');
        match sent.get(key.as_str()) {
            Some(raw) if as_sent(raw, value) => json.extend_from_slice(raw.get().as_bytes()),
            _ => serde_json::to_writer(&mut json, value).ok()?,
        }
    }
    json.push(b'}');
    Some(json)
}

/// Whether `raw` is `value` as the client wrote it (the daemon did not
/// rewrite it); a big number reads as the same `f64` both times.
fn as_sent(raw: &RawValue, value: &Value) -> bool {
    serde_json::from_str::<Value>(raw.get()).is_ok_and(|sent| sent == *value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_the_daemon_kept_are_written_as_sent() {
        let line = br#"{"Big": 123456789012345678901234567890, "Nested": {"n": 18446744073709551616}, "JobResult": "failure"}"#;
        let mut fields: Map<String, Value> = serde_json::from_slice(line).unwrap();
        fields.insert("JobResult".into(), Value::String("Failure".into()));
        fields.insert("Phase".into(), Value::String("OnError".into()));
        let json = String::from_utf8(write(&fields, line).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"Big":123456789012345678901234567890,"Nested":{"n": 18446744073709551616},"JobResult":"Failure","Phase":"OnError"}"#
        );
    }
}
