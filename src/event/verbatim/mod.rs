//! The usual event, taken as the client wrote it.
//!
//! One pass over the line checks the known fields without copying anything
//! (strings are borrowed from the line), and the event's JSON is the line
//! itself with what validation adds written in: `ReceivedAt` (and `Id`,
//! `EventType` and `Phase` when absent) at the end, and a .NET
//! `RequestTimestamp` rewritten in place as RFC 3339. Most events are usual
//! ones, and this is cheaper than parsing the line into fields and writing
//! them out again.
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
use uuid::Uuid;

use super::validate::{DEFAULT_EVENT_TYPE, canonical_timestamp};
use super::{Event, Field, JobResult, Phase, Routing, id};

mod raw;
mod restore;

use raw::{Entries, Raw};
pub(crate) use restore::restored;

/// The event the line is, if it is a usual one (see the module doc);
/// `None` leaves it to the general way.
pub(crate) fn event(line: &[u8], received_at: Timestamp) -> Option<Event> {
    // Checked whole at once, not string by string as `from_slice` does.
    let Entries(entries) = serde_json::from_str(std::str::from_utf8(line).ok()?).ok()?;
    let known = Known::find(&entries)?;
    let checked = known.check(line)?;
    let generated_id = checked.id.is_none().then(|| Uuid::now_v7().to_string());
    let id = checked.id.or(generated_id.as_deref()).unwrap_or_default();
    let received_at = received_at.to_string();
    let added = [
        generated_id.as_deref().map(|id| (Field::Id.name(), id)),
        checked
            .event_type
            .is_none()
            .then_some((Field::EventType.name(), DEFAULT_EVENT_TYPE)),
        // A `Phase` the line has is the one it names, as written.
        known
            .get(Field::Phase)
            .is_none()
            .then_some((Field::Phase.name(), checked.phase.as_str())),
        Some((Field::ReceivedAt.name(), received_at.as_str())),
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

/// The known fields among the entries (SPEC §3), by `Field`.
struct Known<'r, 'a>([Option<&'r Raw<'a>>; Field::COUNT]);

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
        let mut known = Known([None; Field::COUNT]);
        for (index, (key, value)) in entries.iter().enumerate() {
            if entries[..index].iter().any(|(earlier, _)| earlier == key) {
                return None;
            }
            if let Some(field) = Field::from_name(key) {
                known.0[field as usize] = Some(value);
            }
        }
        Some(known)
    }

    /// The field's value, if the line has it.
    fn get(&self, field: Field) -> Option<&'r Raw<'a>> {
        self.0[field as usize]
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
        let id = match self.get(Field::Id) {
            None => None,
            Some(Raw::Text(text)) if id::check(text).is_ok() => Some(*text),
            Some(_) => return None,
        };
        let job_id = guid(self.get(Field::JobId))?;
        guid(self.get(Field::AgentId))?;
        guid(self.get(Field::JobTypeId))?;
        for field in [Field::Username, Field::ClientMachine, Field::OperationType] {
            if !matches!(
                self.get(field),
                None | Some(Raw::Null | Raw::Text(_) | Raw::EscapedText)
            ) {
                return None;
            }
        }
        let job_result = match text(self.get(Field::JobResult))? {
            Some(name) => Some(JobResult::parse(name).filter(|r| r.as_str() == name)?),
            None => None,
        };
        let integer = matches!(
            self.get(Field::CertificateId),
            None | Some(Raw::Null | Raw::Integer(_))
        );
        let count = matches!(
            self.get(Field::CurrentRetryCount),
            None | Some(Raw::Null | Raw::Integer(0..))
        );
        let phase = match self.get(Field::Phase) {
            None => Phase::of_result(job_result),
            Some(Raw::Text(name)) => Phase::parse(name)
                .filter(|phase| phase.as_str() == *name && *phase != Phase::OnQueueEvent)?,
            Some(_) => return None,
        };
        // A null `EventType`, or a `ReceivedAt` at all, is replaced in place.
        let event_type = match self.get(Field::EventType) {
            None => None,
            Some(Raw::Text(name)) => Some(*name),
            Some(_) => return None,
        };
        if !(integer && count) || self.get(Field::ReceivedAt).is_some() {
            return None;
        }
        let timestamp = match text(self.get(Field::RequestTimestamp))? {
            Some(text) => {
                let canonical = canonical_timestamp(text)?;
                (canonical != text).then(|| (range_in(line, text), canonical))
            }
            None => None,
        };
        Some(Checked {
            id,
            job_id,
            // Filters read these, so they are kept (and must be borrowed).
            job_type: text(self.get(Field::JobType))?,
            job_type_id: text(self.get(Field::JobTypeId))?,
            job_result,
            event_type,
            phase,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests;
