//! The general way: the known fields of a parsed object checked one by one
//! and put in canonical form, the first problem named in the rejection.

use jiff::Timestamp;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{expected, truncate};
use super::field::Field;
use super::{Event, EventError, JobResult, Phase, id};

/// `EventType` when the client gives none.
pub(super) const DEFAULT_EVENT_TYPE: &str = "OrchestratorJob";

const DOTNET_TIMESTAMP: &str = "%m/%d/%Y %I:%M:%S %p";

impl Event {
    /// Validates and normalises the known fields of an already-parsed object.
    pub fn from_fields(
        mut fields: Map<String, Value>,
        received_at: Timestamp,
    ) -> Result<Event, EventError> {
        match present(&fields, Field::Id) {
            None => {
                let id = Uuid::now_v7().to_string();
                fields.insert(Field::Id.name().into(), Value::String(id));
            }
            Some(Value::String(id)) => id::check(id)?,
            Some(other) => return Err(expected(Field::Id, "a string", other)),
        }
        for field in [Field::AgentId, Field::JobId, Field::JobTypeId] {
            check_guid(&fields, field)?;
        }
        for field in [
            Field::EventType,
            Field::Username,
            Field::ClientMachine,
            Field::JobType,
            Field::OperationType,
        ] {
            check_string(&fields, field)?;
        }
        if present(&fields, Field::EventType).is_none() {
            fields.insert(
                Field::EventType.name().into(),
                Value::String(DEFAULT_EVENT_TYPE.into()),
            );
        }
        let result = canonical_job_result(&mut fields)?;
        match present(&fields, Field::CertificateId) {
            None => {}
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            Some(other) => {
                return Err(expected(Field::CertificateId, "an integer or null", other));
            }
        }
        match present(&fields, Field::CurrentRetryCount) {
            None => {}
            Some(Value::Number(n)) if n.is_u64() => {}
            Some(Value::Number(n)) if n.is_i64() => {
                return Err(EventError::Invalid(format!(
                    "field `CurrentRetryCount`: expected an integer of 0 or more, got {n}"
                )));
            }
            Some(other) => {
                return Err(expected(
                    Field::CurrentRetryCount,
                    "an integer of 0 or more",
                    other,
                ));
            }
        }
        normalise_request_timestamp(&mut fields)?;
        let phase = match present(&fields, Field::Phase) {
            None => Phase::of_result(result),
            Some(Value::String(name)) => match Phase::parse(name) {
                Some(Phase::OnQueueEvent) | None => {
                    return Err(EventError::Invalid(format!(
                        "field `Phase`: expected OnStart, OnFinish or OnError, got {name:?}"
                    )));
                }
                Some(phase) => phase,
            },
            Some(other) => return Err(expected(Field::Phase, "a string", other)),
        };
        fields.insert(
            Field::Phase.name().into(),
            Value::String(phase.as_str().into()),
        );
        fields.insert(
            Field::ReceivedAt.name().into(),
            Value::String(received_at.to_string()),
        );
        Ok(Event::new(phase, fields))
    }
}

/// The field's value, unless absent or null (.NET serialisers write `null`
/// for unset properties).
#[inline]
fn present(fields: &Map<String, Value>, field: Field) -> Option<&Value> {
    fields.get(field.name()).filter(|value| !value.is_null())
}

#[inline]
fn check_string(fields: &Map<String, Value>, field: Field) -> Result<(), EventError> {
    match present(fields, field) {
        None | Some(Value::String(_)) => Ok(()),
        Some(other) => Err(expected(field, "a string", other)),
    }
}

#[inline]
fn check_guid(fields: &Map<String, Value>, field: Field) -> Result<(), EventError> {
    match present(fields, field) {
        None => Ok(()),
        Some(Value::String(s)) if Uuid::parse_str(s).is_ok() => Ok(()),
        Some(Value::String(s)) => Err(EventError::Invalid(format!(
            "field `{}`: expected a GUID such as 49b3a17d-cada-4ec8-84c6-7719bf5beef3, got {:?}",
            field.name(),
            truncate(s)
        ))),
        Some(other) => Err(expected(field, "a GUID string", other)),
    }
}

fn canonical_job_result(fields: &mut Map<String, Value>) -> Result<Option<JobResult>, EventError> {
    let result = match present(fields, Field::JobResult) {
        None => return Ok(None),
        Some(Value::String(name)) => JobResult::parse(name).ok_or_else(|| {
            EventError::Invalid(format!(
                "field `JobResult`: expected Success, Warning, Failure or Unknown, got {:?}",
                truncate(name)
            ))
        })?,
        Some(other) => return Err(expected(Field::JobResult, "a string", other)),
    };
    fields.insert(
        Field::JobResult.name().into(),
        Value::String(result.as_str().into()),
    );
    Ok(Some(result))
}

fn normalise_request_timestamp(fields: &mut Map<String, Value>) -> Result<(), EventError> {
    let text = match present(fields, Field::RequestTimestamp) {
        None => return Ok(()),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(expected(
                Field::RequestTimestamp,
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
        Field::RequestTimestamp.name().into(),
        Value::String(timestamp.to_string()),
    );
    Ok(())
}

/// Reads RFC 3339, or the .NET `M/d/yyyy h:mm:ss tt` form as UTC.
pub(super) fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Some(timestamp);
    }
    let civil = jiff::civil::DateTime::strptime(DOTNET_TIMESTAMP, text).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}
