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
    let timestamp = canonical_timestamp(text).ok_or_else(|| {
        EventError::Invalid(format!(
            "field `RequestTimestamp`: expected RFC 3339 (2023-05-03T23:18:48Z) or \
             M/d/yyyy h:mm:ss tt (5/3/2023 11:18:48 PM), got {:?}",
            truncate(text)
        ))
    })?;
    fields.insert(
        Field::RequestTimestamp.name().into(),
        Value::String(timestamp),
    );
    Ok(())
}

/// Reads RFC 3339, or the .NET `M/d/yyyy h:mm:ss tt` form as UTC.
pub(super) fn parse_timestamp(text: &str) -> Option<Timestamp> {
    // The .NET form, which Keyfactor sends, is read first: a failed RFC
    // 3339 parse builds an error, and strptime interprets its format.
    let civil = match dotnet_fields(text) {
        Some(civil) => civil,
        None => {
            if let Ok(timestamp) = text.parse::<Timestamp>() {
                return Some(timestamp);
            }
            jiff::civil::DateTime::strptime(DOTNET_TIMESTAMP, text).ok()?
        }
    };
    jiff::tz::Offset::UTC.to_timestamp(civil).ok()
}

/// `text` as RFC 3339 in UTC, the form events carry, if `parse_timestamp`
/// reads it. The usual .NET form is written out directly as jiff prints a
/// timestamp of whole seconds in UTC, without making a `Timestamp` and
/// printing it.
pub(super) fn canonical_timestamp(text: &str) -> Option<String> {
    let Some(civil) = dotnet_fields(text) else {
        return parse_timestamp(text).map(|timestamp| timestamp.to_string());
    };
    // jiff's timestamps end before year 9999 does (at 9999-12-30T22:00Z).
    jiff::tz::Offset::UTC.to_timestamp(civil).ok()?;
    let mut canonical = String::with_capacity(20);
    let parts = [
        (civil.year(), 4, '-'),
        (civil.month().into(), 2, '-'),
        (civil.day().into(), 2, 'T'),
        (civil.hour().into(), 2, ':'),
        (civil.minute().into(), 2, ':'),
        (civil.second().into(), 2, 'Z'),
    ];
    for (value, width, then) in parts {
        // Four-digit years and two-digit fields: never negative.
        let digits = [1000, 100, 10, 1];
        for unit in &digits[digits.len() - width..] {
            canonical.push(char::from(b'0' + (value / unit % 10) as u8));
        }
        canonical.push(then);
    }
    Some(canonical)
}

/// The .NET form as it is usually written (`5/3/2023 11:18:48 PM`), read
/// in one pass without interpreting a format; anything else is left to
/// `strptime`.
fn dotnet_fields(text: &str) -> Option<jiff::civil::DateTime> {
    let mut rest = text.as_bytes();
    // `min` to `max` digits, then `end`.
    let mut number = |min: usize, max: usize, end: u8| -> Option<i16> {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(min..=max).contains(&digits) || rest.get(digits) != Some(&end) {
            return None;
        }
        let value = rest[..digits]
            .iter()
            .fold(0, |value, digit| value * 10 + i16::from(digit - b'0'));
        rest = &rest[digits + 1..];
        Some(value)
    };
    let month = number(1, 2, b'/')?;
    let day = number(1, 2, b'/')?;
    let year = number(4, 4, b' ')?;
    let hour = number(1, 2, b':')?;
    let minute = number(2, 2, b':')?;
    let second = number(2, 2, b' ')?;
    if !(1..=12).contains(&hour) {
        return None;
    }
    let hour = match rest {
        b"AM" => hour % 12,
        b"PM" => hour % 12 + 12,
        _ => return None,
    };
    jiff::civil::DateTime::new(
        year,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second).ok()?,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the format interpreter reads, the way it was read before.
    fn by_strptime(text: &str) -> Option<Timestamp> {
        let civil = jiff::civil::DateTime::strptime(DOTNET_TIMESTAMP, text).ok()?;
        civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    }

    #[test]
    fn the_dotnet_form_reads_as_strptime_reads_it() {
        let mut read = 0;
        for (month, day, year) in [
            ("5", "3", "2023"),
            ("12", "31", "1999"),
            ("02", "29", "2024"),
            ("2", "29", "2023"),
            ("13", "1", "2023"),
            ("0", "1", "2023"),
            ("1", "1", "23"),
            ("1", "1", "0000"),
            ("1", "1", "0999"),
            ("12", "31", "9999"),
        ] {
            for (hour, half) in [
                ("12", "AM"),
                ("12", "PM"),
                ("1", "AM"),
                ("11", "PM"),
                ("07", "PM"),
                ("0", "AM"),
                ("13", "PM"),
                ("11", "pm"),
                ("11", "XM"),
            ] {
                for (minute, second) in [
                    ("18", "48"),
                    ("00", "00"),
                    ("59", "59"),
                    ("60", "00"),
                    ("5", "00"),
                ] {
                    let text = format!("{month}/{day}/{year} {hour}:{minute}:{second} {half}");
                    assert_eq!(parse_timestamp(&text), by_strptime(&text), "{text}");
                    assert_eq!(
                        canonical_timestamp(&text),
                        parse_timestamp(&text).map(|timestamp| timestamp.to_string()),
                        "{text}"
                    );
                    read += usize::from(dotnet_fields(&text).is_some());
                }
            }
        }
        assert_eq!(
            read, 90,
            "the valid ones of the usual form are read without strptime"
        );
        assert_eq!(
            parse_timestamp("5/3/2023 11:18:48 PM").unwrap().to_string(),
            "2023-05-03T23:18:48Z"
        );
        assert_eq!(
            parse_timestamp("2023-05-03T23:18:48+02:00")
                .unwrap()
                .to_string(),
            "2023-05-03T21:18:48Z"
        );
        // RFC 9557's zone annotation has a '/' and is RFC 3339 still.
        assert_eq!(
            parse_timestamp("2024-06-19T15:22:45-04[America/New_York]")
                .unwrap()
                .to_string(),
            "2024-06-19T19:22:45Z"
        );
        for odd in [
            "5/3/2023  11:18:48 PM",
            "5/3/2023 11:18:48 PM x",
            "5/3/2023/1 11:18:48 PM",
            "",
            "/",
        ] {
            assert_eq!(dotnet_fields(odd), None, "{odd}");
            assert_eq!(parse_timestamp(odd), by_strptime(odd), "{odd}");
        }
    }
}
