//! The usual event, taken as the client wrote it.
//!
//! One pass over the line checks the known fields without copying anything
//! (strings are borrowed from the line), and the event's JSON is the line
//! itself with what validation adds written in: `Phase` and `ReceivedAt`
//! (and `Id` and `EventType` when absent) at the end, and a .NET
//! `RequestTimestamp` rewritten in place as RFC 3339. Parsing the line into
//! fields and writing them out again took about 4.4 µs for a usual
//! Keyfactor event (measured in a loop); this takes about 1.6.
//!
//! Whatever this pass is not sure of — an escaped key, a key given twice, a
//! known field that needs more than the above (a `JobResult` in another
//! case, a null `Id`, a `ReceivedAt` sent by the client) or any invalid
//! value — goes the general way (`Event::from_fields`), which gives the same
//! fields or the error that names the field. The one difference is the
//! text: here unknown fields keep the client's spelling (spaces, escapes,
//! number forms), there they are written out anew.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
use uuid::Uuid;

use super::{DEFAULT_EVENT_TYPE, Event, JobResult, Phase, Routing, id, parse_timestamp};

/// The event the line is, if it is a usual one (see the module doc);
/// `None` leaves it to the general way.
pub(super) fn event(line: &[u8], received_at: Timestamp) -> Option<Event> {
    // Checked whole at once, not string by string as `from_slice` does.
    let Entries(entries) = serde_json::from_str(std::str::from_utf8(line).ok()?).ok()?;
    let checked = Known::find(&entries)?.check(line)?;
    let generated_id = checked.id.is_none().then(|| Uuid::now_v7().to_string());
    let id = checked.id.or(generated_id.as_deref()).unwrap_or_default();
    let received_at = received_at.to_string();
    let added = [
        generated_id.as_deref().map(|id| ("Id", id)),
        checked
            .event_type
            .is_none()
            .then_some(("EventType", DEFAULT_EVENT_TYPE)),
        Some(("Phase", checked.phase.as_str())),
        Some(("ReceivedAt", received_at.as_str())),
    ];
    let json = written(
        line,
        checked.timestamp,
        entries.is_empty(),
        added.into_iter().flatten(),
    )?;
    Some(Event {
        phase: checked.phase,
        id: id.into(),
        job_id: checked.job_id,
        routing: OnceLock::from(Routing {
            job_type: checked.job_type.map(Box::from),
            job_type_id: checked.job_type_id.map(Box::from),
            job_result: checked.job_result,
            event_type: Some(checked.event_type.unwrap_or(DEFAULT_EVENT_TYPE).into()),
        }),
        fields: OnceLock::new(),
        json: OnceLock::from(Arc::from(json)),
    })
}

/// What the known fields of a usual event say.
struct Checked<'a> {
    id: Option<&'a str>,
    job_id: Option<Uuid>,
    job_type: Option<&'a str>,
    job_type_id: Option<&'a str>,
    job_result: Option<JobResult>,
    event_type: Option<&'a str>,
    phase: Phase,
    /// Where `RequestTimestamp` is in the line and what it becomes, if it
    /// is not RFC 3339 UTC already.
    timestamp: Option<(Range<usize>, String)>,
}

/// The line, trimmed, with `replace` done and `added` (names and values
/// that need no escaping) written before its closing brace.
fn written<'a>(
    line: &[u8],
    replace: Option<(Range<usize>, String)>,
    empty: bool,
    added: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<Vec<u8>> {
    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
    let close = line.iter().rposition(|b| !b.is_ascii_whitespace())?;
    let mut json = Vec::with_capacity(line.len() + 128);
    match replace {
        Some((range, text)) => {
            json.extend_from_slice(&line[start..range.start]);
            json.extend_from_slice(text.as_bytes());
            json.extend_from_slice(&line[range.end..close]);
        }
        None => json.extend_from_slice(&line[start..close]),
    }
    for (index, (name, value)) in added.enumerate() {
        if index > 0 || !empty {
            json.push(b',');
        }
        for part in ["\"", name, "\":\"", value, "\""] {
            json.extend_from_slice(part.as_bytes());
        }
    }
    json.push(b'}');
    Some(json)
}

/// Where `text`, borrowed from `line`, lies in it.
fn range_in(line: &[u8], text: &str) -> Range<usize> {
    let start = text.as_ptr() as usize - line.as_ptr() as usize;
    start..start + text.len()
}

/// A top-level value, as much of it as validation needs.
enum Raw<'a> {
    Null,
    /// A string without escapes, borrowed from the line.
    Text(&'a str),
    /// A string with escapes (valid, but not borrowed).
    EscapedText,
    Integer(i128),
    /// A number with a fraction, a boolean, an array or an object.
    Other,
}

/// The top-level fields, in order; keys with escapes are refused.
struct Entries<'a>(Vec<(&'a str, Raw<'a>)>);

/// The known fields among the entries (SPEC §3).
#[derive(Default)]
struct Known<'r, 'a> {
    id: Option<&'r Raw<'a>>,
    agent_id: Option<&'r Raw<'a>>,
    job_id: Option<&'r Raw<'a>>,
    job_type_id: Option<&'r Raw<'a>>,
    event_type: Option<&'r Raw<'a>>,
    username: Option<&'r Raw<'a>>,
    client_machine: Option<&'r Raw<'a>>,
    job_type: Option<&'r Raw<'a>>,
    operation_type: Option<&'r Raw<'a>>,
    job_result: Option<&'r Raw<'a>>,
    certificate_id: Option<&'r Raw<'a>>,
    current_retry_count: Option<&'r Raw<'a>>,
    request_timestamp: Option<&'r Raw<'a>>,
    phase: Option<&'r Raw<'a>>,
    received_at: Option<&'r Raw<'a>>,
}

/// More top-level fields than a usual event has. Finding a key given twice
/// compares every pair, which is nothing for twenty fields and seconds for
/// the 60,000 a 1 MiB line can hold: such a line goes the general way.
const MOST_USUAL_FIELDS: usize = 64;

impl<'r, 'a> Known<'r, 'a> {
    /// `None` if any key is given twice, or there are too many to check.
    fn find(entries: &'r [(&'a str, Raw<'a>)]) -> Option<Known<'r, 'a>> {
        if entries.len() > MOST_USUAL_FIELDS {
            return None;
        }
        let mut known = Known::default();
        for (index, (key, value)) in entries.iter().enumerate() {
            if entries[..index].iter().any(|(earlier, _)| earlier == key) {
                return None;
            }
            let slot = match *key {
                "Id" => &mut known.id,
                "AgentId" => &mut known.agent_id,
                "JobId" => &mut known.job_id,
                "JobTypeId" => &mut known.job_type_id,
                "EventType" => &mut known.event_type,
                "Username" => &mut known.username,
                "ClientMachine" => &mut known.client_machine,
                "JobType" => &mut known.job_type,
                "OperationType" => &mut known.operation_type,
                "JobResult" => &mut known.job_result,
                "CertificateId" => &mut known.certificate_id,
                "CurrentRetryCount" => &mut known.current_retry_count,
                "RequestTimestamp" => &mut known.request_timestamp,
                "Phase" => &mut known.phase,
                "ReceivedAt" => &mut known.received_at,
                _ => continue,
            };
            *slot = Some(value);
        }
        Some(known)
    }

    /// The known fields, if each is valid as it stands or needs no more
    /// than writing in (see the module doc).
    fn check(&self, line: &[u8]) -> Option<Checked<'a>> {
        let text = |raw: Option<&Raw<'a>>| match raw {
            None | Some(Raw::Null) => Some(None),
            Some(Raw::Text(text)) => Some(Some(*text)),
            Some(_) => None,
        };
        let guid = |raw: Option<&Raw<'a>>| match text(raw)? {
            Some(guid) => Uuid::parse_str(guid).ok().map(Some),
            None => Some(None),
        };
        let id = match self.id {
            None => None,
            Some(Raw::Text(text)) if id::check(text).is_ok() => Some(*text),
            Some(_) => return None,
        };
        let job_id = guid(self.job_id)?;
        guid(self.agent_id)?;
        guid(self.job_type_id)?;
        for escaped_or_not in [self.username, self.client_machine, self.operation_type] {
            if !matches!(
                escaped_or_not,
                None | Some(Raw::Null | Raw::Text(_) | Raw::EscapedText)
            ) {
                return None;
            }
        }
        let job_result = match text(self.job_result)? {
            Some(name) => Some(JobResult::parse(name).filter(|r| r.as_str() == name)?),
            None => None,
        };
        let integer = matches!(
            self.certificate_id,
            None | Some(Raw::Null | Raw::Integer(_))
        );
        let count = matches!(
            self.current_retry_count,
            None | Some(Raw::Null | Raw::Integer(0..))
        );
        let phase = match self.phase {
            None => Phase::of_result(job_result),
            Some(Raw::Text(name)) => Phase::parse(name)
                .filter(|phase| phase.as_str() == *name && *phase != Phase::OnQueueEvent)?,
            Some(_) => return None,
        };
        // A null `EventType`, or a `ReceivedAt` at all, is replaced in place.
        let event_type = match self.event_type {
            None => None,
            Some(Raw::Text(name)) => Some(*name),
            Some(_) => return None,
        };
        if !(integer && count) || self.received_at.is_some() {
            return None;
        }
        let timestamp = match text(self.request_timestamp)? {
            Some(text) => {
                let canonical = parse_timestamp(text)?.to_string();
                (canonical != text).then(|| (range_in(line, text), canonical))
            }
            None => None,
        };
        Some(Checked {
            id,
            job_id,
            // Filters read these, so they are kept (and must be borrowed).
            job_type: text(self.job_type)?,
            job_type_id: text(self.job_type_id)?,
            job_result,
            event_type,
            phase,
            timestamp,
        })
    }
}

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Entries<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<&'de str>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Raw<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
                Ok(Raw::Null)
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Raw<'de>, E> {
                Ok(Raw::Text(text))
            }

            fn visit_str<E>(self, _: &str) -> Result<Raw<'de>, E> {
                Ok(Raw::EscapedText)
            }

            fn visit_i64<E>(self, number: i64) -> Result<Raw<'de>, E> {
                Ok(Raw::Integer(number.into()))
            }

            fn visit_u64<E>(self, number: u64) -> Result<Raw<'de>, E> {
                Ok(Raw::Integer(number.into()))
            }

            fn visit_f64<E>(self, _: f64) -> Result<Raw<'de>, E> {
                Ok(Raw::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Raw<'de>, E> {
                Ok(Raw::Other)
            }

            // Nested values are read as `Raw`s too, not skipped with
            // `IgnoredAny`: that way serde_json's nesting limit holds here
            // as it does when the fields are parsed.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'de>, A::Error> {
                while seq.next_element::<Raw>()?.is_some() {}
                Ok(Raw::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, Raw>()?.is_some() {}
                Ok(Raw::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;

    fn at() -> Timestamp {
        "2026-01-02T03:04:05.5Z".parse().unwrap()
    }

    /// The event the general way makes of `line`.
    fn general(line: &str) -> Event {
        let fields: Map<String, Value> = serde_json::from_str(line).unwrap();
        Event::from_fields(fields, at()).unwrap()
    }

    /// Taken verbatim, and the same event as the general way makes, with
    /// the same fields in the same order (a generated Id aside).
    fn same_as_general(line: &str) -> Event {
        let event = event(line.as_bytes(), at()).expect("taken verbatim");
        assert_same(line, &event, &general(line));
        event
    }

    /// Asserts that `event` is what the general way made of `line`: the
    /// same fields in the same order (a generated `Id` where the general
    /// way put its own), the same phase, lane and routing.
    fn assert_same(line: &str, event: &Event, expected: &Event) {
        let mut wanted = expected.fields().clone();
        let top: Map<String, Value> = serde_json::from_str(line).unwrap();
        if !top.get("Id").is_some_and(Value::is_string) {
            // Generated, different each time: `insert` keeps the position.
            wanted.insert("Id".into(), event.id().into());
        }
        assert_eq!(
            event.fields().iter().collect::<Vec<_>>(),
            wanted.iter().collect::<Vec<_>>(),
            "{line}"
        );
        assert_eq!(event.phase(), expected.phase(), "{line}");
        assert_eq!(event.job_id(), expected.job_id(), "{line}");
        assert_eq!(event.routing(), expected.routing(), "{line}");
    }

    #[test]
    fn a_usual_event_is_kept_as_written_with_the_added_fields_at_the_end() {
        let line = r#"{"Id":"e1","Username":"CORP\\svc","JobResult":"Failure","JobType":"Inv","JobId":"3F1E5A2B-8C7D-4E6F-9A0B-000000000001","RequestTimestamp":"5/3/2023 11:18:48 PM","Big":18446744073709551615,"Float":1.50,"Esc":"\u00e9\/"}"#;
        let event = same_as_general(line);
        let json = std::str::from_utf8(event.json()).unwrap();
        assert_eq!(
            json,
            r#"{"Id":"e1","Username":"CORP\\svc","JobResult":"Failure","JobType":"Inv","JobId":"3F1E5A2B-8C7D-4E6F-9A0B-000000000001","RequestTimestamp":"2023-05-03T23:18:48Z","Big":18446744073709551615,"Float":1.50,"Esc":"\u00e9\/","EventType":"OrchestratorJob","Phase":"OnError","ReceivedAt":"2026-01-02T03:04:05.5Z"}"#
        );
        assert_eq!(event.routing().job_result, Some(JobResult::Failure));
        assert_eq!(event.routing().job_type.as_deref(), Some("Inv"));
    }

    #[test]
    fn usual_shapes_give_what_the_general_way_gives() {
        for line in [
            "{}",
            " { } \r",
            r#"{"JobResult":"Success"}"#,
            r#"{"Id":"x","Phase":"OnStart","EventType":"Custom","CertificateId":-4,"CurrentRetryCount":2}"#,
            r#"{"Id":"x","RequestTimestamp":"2023-05-03T23:18:48Z","Nested":{"Phase":1,"Id":[null]}}"#,
            r#"{"Id":"x", "Spaced" : [1, 2.5e3, true], "AgentId":null, "JobTypeId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}"#,
            r#"{"Id":"x","RequestTimestamp":"2023-05-03T23:18:48+02:00","OperationType":"Ad\td"}"#,
        ] {
            same_as_general(line);
        }
    }

    /// Lines made of random known and unknown fields, valid and not, with
    /// random spacing: taken verbatim or not, each gives what the general
    /// way gives — the same fields in the same order, or the same error.
    #[test]
    fn random_lines_give_what_the_general_way_gives() {
        let pieces = [
            r#""Id":"a1""#,
            r#""Id":null"#,
            r#""Id":"""#,
            r#""Id":"a\u0031""#,
            "\"Id\":\"a\u{7f}\"",
            "\"Id\":\"a\u{2028}\"",
            r#""Id":"a\u0007""#,
            r#""Id":" a""#,
            r#""JobResult":"Success""#,
            r#""JobResult":"failure""#,
            r#""JobResult":"Failure""#,
            r#""JobResult":3"#,
            r#""Phase":"OnStart""#,
            r#""Phase":"onstart""#,
            r#""Phase":null"#,
            r#""Phase":"OnQueueEvent""#,
            r#""EventType":"X""#,
            r#""EventType":null"#,
            r#""EventType":"X\u0041""#,
            r#""JobId":"3f1e5a2b-8c7d-4e6f-9a0b-00000000001f""#,
            r#""JobId":"nope""#,
            r#""JobId":"{3f1e5a2b-8c7d-4e6f-9a0b-00000000001f}""#,
            r#""AgentId":"3F1E5A2B8C7D4E6F9A0B00000000001F""#,
            r#""JobTypeId":7"#,
            r#""JobType":"Inv""#,
            r#""JobType":"In\tv""#,
            r#""JobType":[1]"#,
            r#""Username":"C\\u""#,
            r#""Username":true"#,
            r#""CertificateId":-5"#,
            r#""CertificateId":5.0"#,
            r#""CertificateId":18446744073709551615"#,
            r#""CertificateId":-9223372036854775809"#,
            r#""CurrentRetryCount":0"#,
            r#""CurrentRetryCount":-1"#,
            r#""CurrentRetryCount":18446744073709551616"#,
            r#""RequestTimestamp":"5/3/2023 11:18:48 PM""#,
            r#""RequestTimestamp":"2023-05-03T23:18:48.000Z""#,
            r#""RequestTimestamp":"2023-05-03T23:18:48+01:00""#,
            r#""RequestTimestamp":"bad""#,
            r#""ReceivedAt":"x""#,
            r#""Custom":{"Id":1,"a":[1,{"b":null}]}"#,
            r#""Custom":"x""#,
            r#""n":1.50"#,
            r#""s":"\ud83d\ude00""#,
        ];
        let mut random = fastrand::Rng::with_seed(7);
        let mut verbatim = 0;
        for _ in 0..20_000 {
            let fields: Vec<String> = (0..random.usize(0..6))
                .map(|_| {
                    let piece = pieces[random.usize(0..pieces.len())];
                    match random.u8(..) {
                        0..40 => piece.replacen(':', " : ", 1),
                        _ => piece.to_owned(),
                    }
                })
                .collect();
            let line = format!(
                " {{{}}} \r",
                fields.join(if random.bool() { "," } else { " , " })
            );
            let general = serde_json::from_str::<Map<String, Value>>(&line)
                .map_err(|err| err.to_string())
                .and_then(|map| Event::from_fields(map, at()).map_err(|err| err.to_string()));
            match (Event::from_line(line.as_bytes(), at()), general) {
                (Ok(event), Ok(expected)) => {
                    // Taken verbatim: nothing parsed into fields yet.
                    verbatim += usize::from(event.fields.get().is_none());
                    assert_same(&line, &event, &expected);
                }
                (Err(err), Err(expected)) => {
                    assert!(
                        err.to_string().ends_with(&expected),
                        "{line}: {err} / {expected}"
                    )
                }
                (got, expected) => panic!("{line}: {got:?} / {expected:?}"),
            }
        }
        assert!(verbatim > 2_000, "only {verbatim} lines taken verbatim");
    }

    #[test]
    fn what_needs_more_than_writing_in_goes_the_general_way() {
        for line in [
            r#"{"JobResult":"success"}"#,
            r#"{"Phase":"onstart"}"#,
            r#"{"Id":null}"#,
            r#"{"EventType":null}"#,
            r#"{"ReceivedAt":"yesterday"}"#,
            r#"{"\u0049d":"x"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"Id":"x","JobType":"W\u00e9b"}"#,
            r#"{"RequestTimestamp":"2023-05-03T23:18:48\u002b02:00"}"#,
            // Invalid: the general way names the field.
            r#"{"JobId":"nope"}"#,
            r#"{"CurrentRetryCount":-1}"#,
            r#"{"CertificateId":1.5}"#,
            r#"{"Phase":"OnQueueEvent"}"#,
            r#"{"Username":7}"#,
            "[1]",
            "{",
        ] {
            assert!(event(line.as_bytes(), at()).is_none(), "{line}");
        }
        let crowded = (0..=MOST_USUAL_FIELDS)
            .map(|i| format!("\"k{i}\":0"))
            .collect::<Vec<_>>()
            .join(",");
        let crowded = format!("{{{crowded}}}");
        assert!(event(crowded.as_bytes(), at()).is_none(), "{crowded}");
        assert!(Event::from_line(crowded.as_bytes(), at()).is_ok());
        // Each of them still becomes the same event (or error) as before.
        let e = Event::from_line(br#"{"a":1,"a":2,"JobResult":"success"}"#, at()).unwrap();
        assert_eq!(e.field("a"), Some(&2.into()));
        assert_eq!(e.str_field("JobResult"), Some("Success"));
    }
}
