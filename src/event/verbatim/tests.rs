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
fn a_phase_the_client_sent_is_written_once() {
    // Found writing the fuzz target's check that an event's JSON has each
    // field once (fuzz/seeds/event_line/phase-twice): the verbatim pass
    // added `Phase` at the end even when the line had it.
    let event = same_as_general(r#"{"Id":"x","Phase":"OnStart"}"#);
    let json = std::str::from_utf8(event.json()).unwrap();
    assert_eq!(
        json,
        r#"{"Id":"x","Phase":"OnStart","EventType":"OrchestratorJob","ReceivedAt":"2026-01-02T03:04:05.5Z"}"#
    );
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

/// The general way of reading a stored event back: every field parsed.
fn restored_in_full(json: &[u8]) -> Event {
    let fields: Map<String, Value> = serde_json::from_slice(json).unwrap();
    let phase = Phase::parse(fields["Phase"].as_str().unwrap()).unwrap();
    let event = Event::new(phase, fields);
    let _ = event.json.set(json.into());
    event
}

#[test]
fn a_stored_event_reads_back_as_the_general_way_reads_it() {
    for line in [
        r#"{"Id":"e1","Username":"CORP\\svc","JobResult":"Failure","JobType":"Inv","JobId":"3F1E5A2B-8C7D-4E6F-9A0B-000000000001","RequestTimestamp":"5/3/2023 11:18:48 PM","Esc":"\u00e9\/"}"#,
        r#"{"Id":"x","Phase":"OnStart","EventType":"Custom","JobTypeId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3","JobResult":"Warning"}"#,
        r#"{"JobId":"3f1e5a2b-8c7d-4e6f-9a0b-000000000002","JobResult":"unknown","Nested":{"Phase":1,"Id":[null]}}"#,
    ] {
        let stored = Event::from_line(line.as_bytes(), at()).unwrap();
        let json = stored.json();
        let restored = restored(json).expect("read back by the one pass");
        assert!(
            restored.fields.get().is_none(),
            "fields parsed only when asked"
        );
        let expected = restored_in_full(json);
        assert_eq!(restored.phase(), expected.phase(), "{line}");
        assert_eq!(restored.id(), expected.id(), "{line}");
        assert_eq!(restored.job_id(), expected.job_id(), "{line}");
        assert_eq!(restored.routing(), expected.routing(), "{line}");
        assert_eq!(restored.fields(), expected.fields(), "{line}");
        assert_eq!(restored.json(), json, "{line}");
    }
}

#[test]
fn a_stored_event_the_one_pass_is_unsure_of_goes_the_general_way() {
    for json in [
        r#"{"Id":"a\u0031","Phase":"OnFinish"}"#,
        r#"{"Id":"a","Phase":"OnFinish","JobType":7}"#,
        r#"{"Id":"a","Phase":"OnFinish","EventType":null}"#,
        r#"{"Id":"a","Phase":"OnFinish","Id":"b"}"#,
        r#"{"Id":"a"}"#,
        r#"{"Id":"a","Phase":"Sometime"}"#,
        "not json",
    ] {
        assert!(restored(json.as_bytes()).is_none(), "{json}");
    }
    let general = Event::restore(br#"{"Id":"a\u0031","Phase":"OnFinish","JobType":7}"#).unwrap();
    assert_eq!(general.id(), "a1");
    assert_eq!(general.routing().job_type, None);
}
