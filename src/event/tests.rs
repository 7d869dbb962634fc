use jiff::Timestamp;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Event, EventError, Phase};

fn at() -> Timestamp {
    "2026-01-02T03:04:05Z".parse().unwrap()
}

fn event(json: &str) -> Result<Event, EventError> {
    Event::from_line(json.as_bytes(), at())
}

fn invalid(json: &str) -> String {
    match event(json) {
        Err(EventError::Invalid(message)) => message,
        other => panic!("expected invalid_event for {json}, got {other:?}"),
    }
}

#[test]
fn an_event_replaced_by_json_keeps_its_identity_and_parses_when_read() {
    let original = event(
        r#"{"Id":"e-1","JobId":"3f1e5a2b-8c7d-4e6f-9a0b-000000000001","JobResult":"Failure"}"#,
    )
    .unwrap();
    let json = br#"{"Id":"e-1","Enriched":true,"Phase":"OnError"}"#.to_vec();
    let replaced = original.replaced_by_json(json.clone());
    assert_eq!(&replaced.json()[..], &json[..]);
    assert_eq!(replaced.id(), "e-1");
    assert_eq!(replaced.phase(), Phase::OnError);
    assert_eq!(replaced.job_id(), original.job_id());
    assert_eq!(replaced.field("Enriched"), Some(&Value::Bool(true)));
    assert_eq!(replaced.str_field("JobId"), None);
    assert_eq!(
        original.fixed_fields(),
        [("Id", "e-1"), ("Phase", "OnError")]
    );
}

#[test]
fn keeps_unknown_fields_and_adds_defaults() {
    let e = event(r#"{"Custom":{"a":[1,2.5,null]},"JobResult":"success"}"#).unwrap();
    assert_eq!(
        e.field("Custom").unwrap(),
        &serde_json::json!({"a":[1,2.5,null]})
    );
    assert_eq!(e.str_field("JobResult"), Some("Success"));
    assert_eq!(e.str_field("EventType"), Some("OrchestratorJob"));
    assert_eq!(e.str_field("ReceivedAt"), Some("2026-01-02T03:04:05Z"));
    assert_eq!(e.phase(), Phase::OnFinish);
    let id = Uuid::parse_str(e.id()).unwrap();
    assert_eq!(id.get_version_num(), 7);
}

#[test]
fn phase_is_derived_from_result_or_read_caselessly() {
    assert_eq!(
        event(r#"{"JobResult":"Failure"}"#).unwrap().phase(),
        Phase::OnError
    );
    assert_eq!(
        event(r#"{"JobResult":"Warning"}"#).unwrap().phase(),
        Phase::OnFinish
    );
    let e = event(r#"{"Phase":"onstart","JobResult":"Failure"}"#).unwrap();
    assert_eq!(e.phase(), Phase::OnStart);
    assert_eq!(e.str_field("Phase"), Some("OnStart"));
    assert!(invalid(r#"{"Phase":"OnLunch"}"#).contains("`Phase`"));
    // Queue events are the daemon's own.
    assert!(invalid(r#"{"Phase":"OnQueueEvent"}"#).contains("`Phase`"));
}

#[test]
fn stored_events_come_back_as_they_were() {
    let e = event(r#"{"Id":"s1","Phase":"OnStart","Custom":[1]}"#).unwrap();
    let back = Event::restore(e.json()).unwrap();
    assert_eq!(back, e);
    let queue = Event::queue_event("QueueFull", 10, 10, 3);
    let back = Event::restore(queue.json()).unwrap();
    assert_eq!(back.phase(), Phase::OnQueueEvent);
    assert_eq!(back.str_field("QueueState"), Some("QueueFull"));
    assert!(Event::restore(b"{}").is_err());
}

#[test]
fn rejections_name_the_field_and_the_expectation() {
    assert!(invalid(r#"{"JobId":"not-a-guid"}"#).starts_with("field `JobId`: expected a GUID"));
    assert!(
        invalid(r#"{"AgentId":7}"#).contains("`AgentId`: expected a GUID string, got an integer")
    );
    assert!(
        invalid(r#"{"CertificateId":"12"}"#)
            .contains("`CertificateId`: expected an integer or null, got a string")
    );
    assert!(invalid(r#"{"CertificateId":1.5}"#).contains("`CertificateId`"));
    assert_eq!(
        invalid(r#"{"CurrentRetryCount":-1}"#),
        "field `CurrentRetryCount`: expected an integer of 0 or more, got -1"
    );
    assert!(
        invalid(r#"{"CertificateId":-9223372036854775809}"#)
            .ends_with("got an integer out of range")
    );
    assert!(invalid(r#"{"CertificateId":1.0}"#).ends_with("got a number with a fraction"));
    assert!(invalid(r#"{"JobResult":"Maybe"}"#).contains("`JobResult`"));
    assert!(
        invalid(r#"{"Username":["x"]}"#).contains("`Username`: expected a string, got an array")
    );
    assert!(invalid(r#"{"Id":""}"#).contains("`Id`"));
    assert!(invalid(r#"[1,2]"#).contains("must be a JSON object, got an array"));
    assert!(invalid(r#"{"RequestTimestamp":"yesterday"}"#).contains("`RequestTimestamp`"));
}

#[test]
fn null_counts_as_absent() {
    let e = event(r#"{"Id":null,"CertificateId":null,"Username":null,"JobId":null}"#).unwrap();
    assert!(!e.id().is_empty());
    assert_eq!(e.field("Username"), Some(&Value::Null));
    assert_eq!(e.job_id(), None);
}

#[test]
fn timestamps_become_rfc3339_utc() {
    let e = event(r#"{"RequestTimestamp":"5/3/2023 11:18:48 PM"}"#).unwrap();
    assert_eq!(
        e.str_field("RequestTimestamp"),
        Some("2023-05-03T23:18:48Z")
    );
    let e = event(r#"{"RequestTimestamp":"2023-05-03T23:18:48+02:00"}"#).unwrap();
    assert_eq!(
        e.str_field("RequestTimestamp"),
        Some("2023-05-03T21:18:48Z")
    );
    let e = event(r#"{"RequestTimestamp":"12/31/2023 1:05:00 AM"}"#).unwrap();
    assert_eq!(
        e.str_field("RequestTimestamp"),
        Some("2023-12-31T01:05:00Z")
    );
}

#[test]
fn malformed_input_is_a_parse_error_never_a_panic() {
    assert_eq!(event("{").unwrap_err().code(), "parse_error");
    assert_eq!(
        Event::from_line(b"{\"a\":\"\xff\"}", at())
            .unwrap_err()
            .code(),
        "parse_error"
    );
    let deep = "[".repeat(100_000);
    assert_eq!(event(&deep).unwrap_err().code(), "parse_error");
    let deep_object = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(event(&deep_object).unwrap_err().code(), "parse_error");
}

#[test]
fn job_id_is_case_insensitive() {
    let lower = event(r#"{"JobId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}"#).unwrap();
    let upper = event(r#"{"JobId":"49B3A17D-CADA-4EC8-84C6-7719BF5BEEF3"}"#).unwrap();
    assert_eq!(lower.job_id(), upper.job_id());
    assert!(lower.job_id().is_some());
}

#[test]
fn an_events_json_reads_back_as_its_fields() {
    // Found by fuzzing (fuzz/seeds/event_line/float-one-ulp): the escaped
    // key sends the event's JSON through serde_json's writer, and without
    // `float_roundtrip` the float it wrote read back one unit off.
    let line = br#"{"Id":"big","JobResult":"failure","Big":123456789010000000001853102984,"Nested\b}":{"U":18446744073709551616,"F":1.10}}"#;
    let event = Event::from_line(line, Timestamp::now()).unwrap();
    let json: Map<String, Value> = serde_json::from_slice(event.json()).unwrap();
    assert_eq!(&json, event.fields());
}
