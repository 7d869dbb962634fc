//! The event: one JSON object received on the socket, validated and normalised.
//!
//! Known fields (SPEC §3, listed once in `field`) are checked and put in
//! canonical form; every other field is kept unchanged, in the order the
//! client sent it. `null` counts as absent for every known field, because
//! .NET serialisers write `null` for unset properties.
//!
//! A line goes one of two ways: `verbatim` takes a usual event as written,
//! without parsing it into fields; whatever it is not sure of goes the
//! general way (`validate`), parsed into a map and checked field by field,
//! and written out by `exact` with the client's own spelling of the values
//! it kept.

mod error;
mod exact;
mod field;
mod id;
mod phase;
mod validate;
pub(crate) mod verbatim;

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use error::EventError;
pub use field::FIELD_NAMES;
pub(crate) use field::Field;
pub use id::unprintable;
pub use phase::{JobResult, Phase};

use error::json_type;

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
        let text = |field: Field| {
            fields
                .get(field.name())
                .and_then(Value::as_str)
                .map(Box::from)
        };
        Routing {
            job_type: text(Field::JobType),
            job_type_id: text(Field::JobTypeId),
            job_result: fields
                .get(Field::JobResult.name())
                .and_then(Value::as_str)
                .and_then(JobResult::parse),
            event_type: text(Field::EventType),
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.phase == other.phase && self.fields() == other.fields()
    }
}

impl Event {
    /// Parses and validates one wire line (without its newline).
    pub fn from_line(line: &[u8], received_at: Timestamp) -> Result<Event, EventError> {
        match verbatim::event(line, received_at) {
            Some(event) => Ok(event),
            None => Event::general(line, received_at),
        }
    }

    /// The general way for a line (see the module doc): what `from_line`
    /// gives for every line the verbatim pass leaves to it, and the
    /// reference that pass must agree with.
    pub(crate) fn general(line: &[u8], received_at: Timestamp) -> Result<Event, EventError> {
        if line.trim_ascii_start().first() == Some(&b'{') {
            let fields: Map<String, Value> =
                serde_json::from_slice(line).map_err(EventError::Parse)?;
            let event = Event::from_fields(fields, received_at)?;
            if let Some(json) = exact::write(event.fields(), line) {
                let _ = event.json.set(json.into());
            }
            return Ok(event);
        }
        let other: Value = serde_json::from_slice(line).map_err(EventError::Parse)?;
        Err(EventError::Invalid(format!(
            "an event must be a JSON object, got {}",
            json_type(&other)
        )))
    }

    /// The daemon's own event about its spool (`QueueFilling`, `QueueFull`,
    /// `QueueEmptying`, `QueueEmpty`), for the `OnQueueEvent` chain.
    pub fn queue_event(state: &str, spool_bytes: u64, max_spool_bytes: u64, pending: u64) -> Event {
        let now = jiff::Timestamp::now().to_string();
        let fields = serde_json::json!({
            (Field::Id.name()): Uuid::now_v7().to_string(),
            (Field::EventType.name()): "QueueEvent",
            "QueueState": state,
            "SpoolBytes": spool_bytes,
            "MaxSpoolBytes": max_spool_bytes,
            "Pending": pending,
            (Field::Phase.name()): Phase::OnQueueEvent.as_str(),
            (Field::ReceivedAt.name()): now,
        });
        let serde_json::Value::Object(fields) = fields else {
            unreachable!("a JSON object literal")
        };
        Event::new(Phase::OnQueueEvent, fields)
    }

    /// An event read back from the spool, as it was stored (already
    /// validated then; only its shape is checked now).
    pub fn restore(bytes: &[u8]) -> Result<Event, EventError> {
        if let Some(event) = verbatim::restored(bytes) {
            return Ok(event);
        }
        let fields: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(EventError::Parse)?;
        let phase = fields
            .get(Field::Phase.name())
            .and_then(Value::as_str)
            .and_then(Phase::parse)
            .ok_or_else(|| EventError::Invalid("stored event without a Phase".to_owned()))?;
        let event = Event::new(phase, fields);
        let _ = event.json.set(bytes.into());
        Ok(event)
    }

    fn new(phase: Phase, fields: Map<String, Value>) -> Event {
        let field = |field: Field| fields.get(field.name()).and_then(Value::as_str);
        let id = field(Field::Id).unwrap_or_default().into();
        let job_id = field(Field::JobId).and_then(|text| Uuid::parse_str(text).ok());
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
        [
            (Field::Id.name(), &self.id),
            (Field::Phase.name(), self.phase.as_str()),
        ]
    }
}

#[cfg(test)]
mod tests;
