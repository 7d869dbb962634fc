//! A JobHistory record as jobhook reads it: its id, whether its job has
//! finished, and the event a finished one becomes.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::event::{Event, EventError, JobResult};

/// The field the whole record is kept under in its event.
pub const RAW_FIELD: &str = "KeyfactorJobHistory";

/// The record's `JobHistoryId`, if it has a whole-number one.
pub fn id(record: &Value) -> Option<i64> {
    record.get("JobHistoryId")?.as_i64()
}

/// Whether the record's job has ended: its `Status` is `Completed`. Any
/// other status (`InProcess`, …) is looked at again later.
pub fn finished(record: &Value) -> bool {
    record
        .get("Status")
        .and_then(Value::as_str)
        .is_some_and(|status| status.eq_ignore_ascii_case("Completed"))
}

/// The record's `JobType`, for the source's `job_types` filter.
pub fn job_type(record: &Value) -> Option<&str> {
    record.get("JobType")?.as_str()
}

/// The event a finished record becomes. Its `Id` is made from the
/// `JobHistoryId`, so a record delivered twice is a duplicate; its `Phase`
/// follows from `JobResult` as for any event that names none.
pub fn event(record: &Value, id: i64, now: Timestamp) -> Result<Event, EventError> {
    let text = |name: &str| record.get(name).filter(|value| !value.is_null()).cloned();
    let mut fields = Map::new();
    fields.insert("Id".into(), json!(format!("keyfactor-jobhistory-{id}")));
    fields.insert("EventType".into(), json!("OrchestratorJob"));
    fields.insert("JobHistoryId".into(), json!(id));
    for name in [
        "JobId",
        "JobType",
        "ClientMachine",
        "StorePath",
        "AgentMachine",
        "Message",
    ] {
        if let Some(value) = text(name) {
            fields.insert(name.into(), value);
        }
    }
    fields.insert("JobResult".into(), json!(result(record).as_str()));
    for name in ["OperationStart", "OperationEnd"] {
        if let Some(value) = text(name) {
            fields.insert(
                name.into(),
                value
                    .as_str()
                    .map_or(value.clone(), |time| json!(utc(time))),
            );
        }
    }
    fields.insert(RAW_FIELD.into(), record.clone());
    Event::from_fields(fields, now)
}

/// The record's `Result` (any case), or `Unknown` when it has none jobhook
/// knows.
fn result(record: &Value) -> JobResult {
    record
        .get("Result")
        .and_then(Value::as_str)
        .and_then(JobResult::parse)
        .unwrap_or(JobResult::Unknown)
}

/// A time as RFC 3339 UTC. Command writes its times in UTC without an
/// offset (`2023-05-06T00:27:00`); a time with one is converted; text that
/// is not a time is kept as written.
fn utc(time: &str) -> String {
    if let Ok(timestamp) = time.parse::<Timestamp>() {
        return timestamp.to_string();
    }
    time.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|civil| civil.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map_or_else(|| time.to_owned(), |zoned| zoned.timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_record_becomes_an_event_with_utc_times_and_the_record_kept() {
        let record = json!({
            "JobHistoryId": 2168, "AgentMachine": "COMMAND",
            "JobId": "0b4b411a-4b26-4492-a575-a10adb43a08a", "JobType": "WinCertInventory",
            "OperationStart": "2023-05-06T00:27:00", "OperationEnd": "2023-05-06T02:27:00+02:00",
            "Message": "", "Result": "failure", "Status": "Completed", "StorePath": "My",
            "ClientMachine": "iistarget.boingy.com"
        });
        assert!(finished(&record));
        let event = event(&record, 2168, Timestamp::now()).unwrap();
        let fields = event.fields();
        assert_eq!(fields["Id"], "keyfactor-jobhistory-2168");
        assert_eq!(fields["JobResult"], "Failure");
        assert_eq!(event.phase().as_str(), "OnError");
        assert_eq!(fields["OperationStart"], "2023-05-06T00:27:00Z");
        assert_eq!(fields["OperationEnd"], "2023-05-06T00:27:00Z");
        assert_eq!(fields[RAW_FIELD], record);
    }

    #[test]
    fn the_readme_sample_answer_has_two_finished_records_that_become_events() {
        let sample = include_str!("../../../examples/keyfactor/job-history.json");
        let records: Vec<Value> = serde_json::from_str(sample).unwrap();
        let finished: Vec<&Value> = records.iter().filter(|record| finished(record)).collect();
        assert_eq!(finished.len(), 2);
        for record in finished {
            event(record, id(record).unwrap(), Timestamp::now()).unwrap();
        }
    }

    #[test]
    fn only_a_completed_status_is_finished() {
        assert!(!finished(&json!({"Status": "InProcess"})));
        assert!(!finished(&json!({})));
        assert!(finished(&json!({"Status": "completed"})));
    }
}
