//! An event read back from the spool, taken by the same one pass: the
//! stored JSON was written by this process and validated when it came, so
//! only what the lanes and routing need is read, and the fields are parsed
//! only if something asks for them (a filter on another field, a script
//! reads its table from the JSON itself). The general way parsed every
//! field into a map and kept it beside the JSON, which made an event read
//! back from the backlog cost several times one that never left memory.

use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use super::raw::{Entries, Raw};
use super::{Event, Field, JobResult, Known, Phase, Routing};

/// The stored event `bytes` are, when each field it reads is a string
/// without escapes, or absent; `None` leaves it to the general way, which
/// gives the same event or the error.
pub(crate) fn restored(bytes: &[u8]) -> Option<Event> {
    let Entries(entries) = serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()?;
    let known = Known::find(&entries)?;
    let text = |field: Field| match known.get(field) {
        None => Some(None),
        Some(Raw::Text(text)) => Some(Some(*text)),
        Some(_) => None,
    };
    let phase = Phase::parse(text(Field::Phase)??)?;
    let routing = Routing {
        job_type: text(Field::JobType)?.map(Box::from),
        job_type_id: text(Field::JobTypeId)?.map(Box::from),
        job_result: text(Field::JobResult)?.and_then(JobResult::parse),
        event_type: text(Field::EventType)?.map(Box::from),
    };
    Some(Event {
        phase,
        id: text(Field::Id)?.unwrap_or_default().into(),
        job_id: text(Field::JobId)?.and_then(|text| Uuid::parse_str(text).ok()),
        routing: OnceLock::from(routing),
        fields: OnceLock::new(),
        json: OnceLock::from(Arc::from(bytes)),
    })
}
