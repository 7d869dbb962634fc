//! The event: one JSON object received on the socket, validated and normalised.
//!
//! Known fields (SPEC §3) are checked and put in canonical form; every other
//! field is kept unchanged, in the order the client sent it. `null` counts as
//! absent for every known field, because .NET serialisers write `null` for
//! unset properties.

mod exact;
mod id;
mod verbatim;

use std::fmt;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use id::unprintable;

/// When in a job's life an event was raised; selects the hook chain it runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    OnStart,
    OnFinish,
    OnError,
    /// The daemon's own events about its spool filling and emptying; never
    /// sent by clients.
    OnQueueEvent,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::OnStart,
        Phase::OnFinish,
        Phase::OnError,
        Phase::OnQueueEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::OnStart => "OnStart",
            Phase::OnFinish => "OnFinish",
            Phase::OnError => "OnError",
            Phase::OnQueueEvent => "OnQueueEvent",
        }
    }

    /// The phase of an event that names none: `OnError` for a failed job.
    fn of_result(result: Option<JobResult>) -> Phase {
        match result {
            Some(JobResult::Failure) => Phase::OnError,
            _ => Phase::OnFinish,
        }
    }

    /// Parses a phase name, ignoring case (`onfinish`, `OnFinish`, `ONFINISH`).
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL
            .into_iter()
            .find(|phase| phase.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of the job, as the orchestrator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobResult {
    Success,
    Warning,
    Failure,
    Unknown,
}

impl JobResult {
    pub const ALL: [JobResult; 4] = [
        JobResult::Success,
        JobResult::Warning,
        JobResult::Failure,
        JobResult::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Success => "Success",
            JobResult::Warning => "Warning",
            JobResult::Failure => "Failure",
            JobResult::Unknown => "Unknown",
        }
    }

    /// Parses a result name, ignoring case.
    pub fn parse(name: &str) -> Option<JobResult> {
        JobResult::ALL
            .into_iter()
            .find(|result| result.as_str().eq_ignore_ascii_case(name))
    }
}

/// Why a line was not accepted as an event. The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("line is not valid JSON: {0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

impl EventError {
    /// The wire-protocol code of this rejection (SPEC §2).
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Parse(_) => "parse_error",
            EventError::Invalid(_) => "invalid_event",
        }
    }
}

/// A validated event: its fields (what templates and scripts see) and its
/// JSON (what the spool stores, a file gets, an HTTP body is and a script's
/// table is made from). Each is made from the other once, when first
/// needed: a usual event arrives as JSON (see `verbatim`) and an event a
/// script returned is JSON text, so neither is parsed into fields unless a
/// handler reads them. `phase`, `Id`, `JobId` and the fields filters read
/// are kept apart: they route the event and name it in logs.
#[derive(Clone, Debug)]
pub struct Event {
    phase: Phase,
    id: Arc<str>,
    /// `JobId`, read once: it picks the event's worker lane.
    job_id: Option<Uuid>,
    /// Read from the fields when first needed if not set on arrival.
    routing: OnceLock<Routing>,
    /// Set at least one of these two.
    fields: OnceLock<Map<String, Value>>,
    json: OnceLock<Arc<[u8]>>,
}

/// The fields filters select on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    pub job_type: Option<Box<str>>,
    pub job_type_id: Option<Box<str>>,
    /// `None` when absent (or, in an event a script changed, not a result).
    pub job_result: Option<JobResult>,
    pub event_type: Option<Box<str>>,
}

impl Routing {
    fn from_fields(fields: &Map<String, Value>) -> Routing {
        let text = |name| fields.get(name).and_then(Value::as_str).map(Box::from);
        Routing {
            job_type: text("JobType"),
            job_type_id: text("JobTypeId"),
            job_result: fields
                .get("JobResult")
                .and_then(Value::as_str)
                .and_then(JobResult::parse),
            event_type: text("EventType"),
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.phase == other.phase && self.fields() == other.fields()
    }
}

/// The fields SPEC §3 names, and those validation adds (`Phase`,
/// `ReceivedAt`): every event has some of them.
pub const FIELD_NAMES: [&str; 15] = [
    "Id",
    "Phase",
    "EventType",
    "AgentId",
    "Username",
    "ClientMachine",
    "JobResult",
    "JobId",
    "JobTypeId",
    "JobType",
    "OperationType",
    "CertificateId",
    "RequestTimestamp",
    "CurrentRetryCount",
    "ReceivedAt",
];

/// `EventType` when the client gives none.
const DEFAULT_EVENT_TYPE: &str = "OrchestratorJob";

const DOTNET_TIMESTAMP: &str = "%m/%d/%Y %I:%M:%S %p";

impl Event {
    /// Parses and validates one wire line (without its newline).
    pub fn from_line(line: &[u8], received_at: Timestamp) -> Result<Event, EventError> {
        if let Some(event) = verbatim::event(line, received_at) {
            return Ok(event);
        }
        let parse_error = |err: serde_json::Error| EventError::Parse(err.to_string());
        if line.trim_ascii_start().first() == Some(&b'{') {
            let fields: Map<String, Value> = serde_json::from_slice(line).map_err(parse_error)?;
            let event = Event::from_fields(fields, received_at)?;
            if let Some(json) = exact::write(event.fields(), line) {
                let _ = event.json.set(json.into());
            }
            return Ok(event);
        }
        let other: Value = serde_json::from_slice(line).map_err(parse_error)?;
        Err(EventError::Invalid(format!(
            "an event must be a JSON object, got {}",
            json_type(&other)
        )))
    }

    /// Validates and normalises the known fields of an already-parsed object.
    pub fn from_fields(
        mut fields: Map<String, Value>,
        received_at: Timestamp,
    ) -> Result<Event, EventError> {
        match present(&fields, "Id") {
            None => {
                let id = Uuid::now_v7().to_string();
                fields.insert("Id".into(), Value::String(id));
            }
            Some(Value::String(id)) => id::check(id)?,
            Some(other) => return Err(expected("Id", "a string", other)),
        }
        for name in ["AgentId", "JobId", "JobTypeId"] {
            check_guid(&fields, name)?;
        }
        for name in [
            "EventType",
            "Username",
            "ClientMachine",
            "JobType",
            "OperationType",
        ] {
            check_string(&fields, name)?;
        }
        if present(&fields, "EventType").is_none() {
            fields.insert("EventType".into(), Value::String(DEFAULT_EVENT_TYPE.into()));
        }
        let result = canonical_job_result(&mut fields)?;
        match present(&fields, "CertificateId") {
            None => {}
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            Some(other) => return Err(expected("CertificateId", "an integer or null", other)),
        }
        match present(&fields, "CurrentRetryCount") {
            None => {}
            Some(Value::Number(n)) if n.is_u64() => {}
            Some(Value::Number(n)) if n.is_i64() => {
                return Err(EventError::Invalid(format!(
                    "field `CurrentRetryCount`: expected an integer of 0 or more, got {n}"
                )));
            }
            Some(other) => {
                return Err(expected(
                    "CurrentRetryCount",
                    "an integer of 0 or more",
                    other,
                ));
            }
        }
        normalise_request_timestamp(&mut fields)?;
        let phase = match present(&fields, "Phase") {
            None => Phase::of_result(result),
            Some(Value::String(name)) => match Phase::parse(name) {
                Some(Phase::OnQueueEvent) | None => {
                    return Err(EventError::Invalid(format!(
                        "field `Phase`: expected OnStart, OnFinish or OnError, got {name:?}"
                    )));
                }
                Some(phase) => phase,
            },
            Some(other) => return Err(expected("Phase", "a string", other)),
        };
        fields.insert("Phase".into(), Value::String(phase.as_str().into()));
        fields.insert("ReceivedAt".into(), Value::String(received_at.to_string()));
        Ok(Event::new(phase, fields))
    }

    /// The daemon's own event about its spool (`QueueFilling`, `QueueFull`,
    /// `QueueEmptying`, `QueueEmpty`), for the `OnQueueEvent` chain.
    pub fn queue_event(state: &str, spool_bytes: u64, max_spool_bytes: u64, pending: u64) -> Event {
        let now = jiff::Timestamp::now().to_string();
        let fields = serde_json::json!({
            "Id": Uuid::now_v7().to_string(),
            "EventType": "QueueEvent",
            "QueueState": state,
            "SpoolBytes": spool_bytes,
            "MaxSpoolBytes": max_spool_bytes,
            "Pending": pending,
            "Phase": Phase::OnQueueEvent.as_str(),
            "ReceivedAt": now,
        });
        let serde_json::Value::Object(fields) = fields else {
            unreachable!("a JSON object literal")
        };
        Event::new(Phase::OnQueueEvent, fields)
    }

    /// An event read back from the spool, as it was stored (already
    /// validated then; only its shape is checked now).
    pub fn restore(bytes: &[u8]) -> Result<Event, EventError> {
        let fields: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|err| EventError::Parse(err.to_string()))?;
        let phase = fields
            .get("Phase")
            .and_then(Value::as_str)
            .and_then(Phase::parse)
            .ok_or_else(|| EventError::Invalid("stored event without a Phase".to_owned()))?;
        let event = Event::new(phase, fields);
        let _ = event.json.set(bytes.into());
        Ok(event)
    }

    fn new(phase: Phase, fields: Map<String, Value>) -> Event {
        let field = |name| fields.get(name).and_then(Value::as_str);
        let id = field("Id").unwrap_or_default().into();
        let job_id = field("JobId").and_then(|text| Uuid::parse_str(text).ok());
        Event {
            phase,
            id,
            job_id,
            routing: OnceLock::from(Routing::from_fields(&fields)),
            fields: OnceLock::from(fields),
            json: OnceLock::new(),
        }
    }

    /// The event a script handed back as JSON text (an object, which it
    /// writes with this event's `Id` and `Phase`). It stays in this event's
    /// lane, so it keeps its `JobId` too.
    pub fn replaced_by_json(&self, json: Vec<u8>) -> Event {
        Event {
            phase: self.phase,
            id: self.id.clone(),
            job_id: self.job_id,
            routing: OnceLock::new(),
            fields: OnceLock::new(),
            json: OnceLock::from(Arc::from(json)),
        }
    }

    /// The event as one line of compact JSON (no newline), as stored and sent.
    pub fn json(&self) -> &Arc<[u8]> {
        self.json.get_or_init(|| {
            // Serialising a map of JSON values into memory cannot fail.
            let bytes = serde_json::to_vec(self.fields()).expect("serialise event");
            bytes.into()
        })
    }

    /// The phase, which selects the hook chain.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The idempotency key (always present after validation).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The job this event belongs to; events of one job are handled in order.
    pub fn job_id(&self) -> Option<Uuid> {
        self.job_id
    }

    /// The fields filters select on.
    pub fn routing(&self) -> &Routing {
        self.routing
            .get_or_init(|| Routing::from_fields(self.fields()))
    }

    /// A field's value if it is a string (handlers read `routing` or
    /// `field`; tests read this).
    #[cfg(test)]
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.fields().get(name).and_then(Value::as_str)
    }

    /// A field's value, if present.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields().get(name)
    }

    pub fn fields(&self) -> &Map<String, Value> {
        self.fields.get_or_init(|| {
            // The JSON was written by this process, from a map or a script's
            // table, as an object: it parses.
            let json = self.json.get().map_or(&b"{}"[..], |json| &json[..]);
            serde_json::from_slice(json).unwrap_or_default()
        })
    }

    /// The fields a script may not change, with this event's values: `Id`
    /// and `Phase` identify the event and select its chain.
    pub fn fixed_fields(&self) -> [(&'static str, &str); 2] {
        [("Id", &self.id), ("Phase", self.phase.as_str())]
    }
}

fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn check_string(fields: &Map<String, Value>, name: &str) -> Result<(), EventError> {
    match present(fields, name) {
        None | Some(Value::String(_)) => Ok(()),
        Some(other) => Err(expected(name, "a string", other)),
    }
}

fn check_guid(fields: &Map<String, Value>, name: &str) -> Result<(), EventError> {
    match present(fields, name) {
        None => Ok(()),
        Some(Value::String(s)) if Uuid::parse_str(s).is_ok() => Ok(()),
        Some(Value::String(s)) => Err(EventError::Invalid(format!(
            "field `{name}`: expected a GUID such as 49b3a17d-cada-4ec8-84c6-7719bf5beef3, got {:?}",
            truncate(s)
        ))),
        Some(other) => Err(expected(name, "a GUID string", other)),
    }
}

fn canonical_job_result(fields: &mut Map<String, Value>) -> Result<Option<JobResult>, EventError> {
    let result = match present(fields, "JobResult") {
        None => return Ok(None),
        Some(Value::String(name)) => JobResult::parse(name).ok_or_else(|| {
            EventError::Invalid(format!(
                "field `JobResult`: expected Success, Warning, Failure or Unknown, got {:?}",
                truncate(name)
            ))
        })?,
        Some(other) => return Err(expected("JobResult", "a string", other)),
    };
    fields.insert("JobResult".into(), Value::String(result.as_str().into()));
    Ok(Some(result))
}

fn normalise_request_timestamp(fields: &mut Map<String, Value>) -> Result<(), EventError> {
    let text = match present(fields, "RequestTimestamp") {
        None => return Ok(()),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(expected(
                "RequestTimestamp",
                "an RFC 3339 or M/d/yyyy h:mm:ss tt timestamp string",
                other,
            ));
        }
    };
    let timestamp = parse_timestamp(text).ok_or_else(|| {
        EventError::Invalid(format!(
            "field `RequestTimestamp`: expected RFC 3339 (2023-05-03T23:18:48Z) or \
             M/d/yyyy h:mm:ss tt (5/3/2023 11:18:48 PM), got {:?}",
            truncate(text)
        ))
    })?;
    fields.insert(
        "RequestTimestamp".into(),
        Value::String(timestamp.to_string()),
    );
    Ok(())
}

/// Reads RFC 3339, or the .NET `M/d/yyyy h:mm:ss tt` form as UTC.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Some(timestamp);
    }
    let civil = jiff::civil::DateTime::strptime(DOTNET_TIMESTAMP, text).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

fn expected(field: &str, what: &str, got: &Value) -> EventError {
    EventError::Invalid(format!(
        "field `{field}`: expected {what}, got {}",
        json_type(got)
    ))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        // Integers beyond i64 and u64 are read as floating point.
        Value::Number(n) if n.as_f64().is_some_and(out_of_integer_range) => {
            "an integer out of range"
        }
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether a number read as floating point is a whole number that no
/// integer type holds: below `i64::MIN` or above `u64::MAX`. (`1.0` is a
/// number with a fraction; `-9223372036854775809` is an integer out of range.)
fn out_of_integer_range(number: f64) -> bool {
    // -2^63 is i64::MIN, but an integer literal that fits was read as an
    // i64: a float equal to it was rounded from one below.
    number.fract() == 0.0 && !(-(2f64.powi(63)) < number && number < 2f64.powi(64))
}

/// Keeps echoed client input short in error messages.
fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            invalid(r#"{"AgentId":7}"#)
                .contains("`AgentId`: expected a GUID string, got an integer")
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
            invalid(r#"{"Username":["x"]}"#)
                .contains("`Username`: expected a string, got an array")
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
}
