//! What ingest, the workers and the spool tell each other: the messages a
//! spool backend takes, the work it hands out and the answers it gives.
//!
//! Receipts and dead-letter ids are opaque outside `spool`: a backend
//! chooses what they stand for (SQLite: a row id), the rest of the daemon
//! only hands them back.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::budget::Share;
use crate::event::Event;

/// What a spool backend is told: by ingest (new events), by sources (pages
/// of events with their cursor), by workers (progress), by the daemon
/// (stopping).
pub enum Message {
    /// A new event (its JSON already made by the sender, off the spool's
    /// thread); `reply` is answered once it is committed or refused.
    Submit {
        event: Event,
        reply: Reply,
    },
    /// A source's events and the cursor they bring it to, committed in one
    /// transaction or not at all; `reply` is answered once committed.
    SubmitBatch {
        batch: SourceBatch,
        reply: BatchReply,
    },
    /// Where a source stands, as last committed.
    ReadCursor {
        source: String,
        reply: CursorReply,
    },
    Record(Record),
    /// No more events go to the workers (they are finishing up).
    CloseLanes,
    /// Commit what is left and stop.
    Stop,
}

/// How a new event's client is answered; answering gives the event's
/// share of the ingest budget back.
#[derive(Debug)]
pub struct Reply {
    pub(super) sender: oneshot::Sender<Result<Accepted, Rejection>>,
    pub(super) _share: Share,
}

impl Reply {
    /// Answers the event; a refusal is counted here, whichever way it came.
    pub fn send(self, answer: Result<Accepted, Rejection>) {
        if let Err(rejection) = &answer {
            crate::telemetry::counters::rejected(rejection.code());
        }
        // A client gone before its answer needs none.
        let _ = self.sender.send(answer);
    }
}

/// Where a source stands, or why the spool could not read it.
pub type CursorReply = oneshot::Sender<Result<Option<String>, Arc<str>>>;

/// How a source is answered: one answer per event, in order.
pub type BatchReply = oneshot::Sender<Result<Vec<Accepted>, Rejection>>;

/// What an event source (`[sources.NAME]`) found in one look: the events, and its
/// cursor once they are in (opaque to the spool; the source reads it back
/// at start). The cursor is stored in the commit that stores the events, so
/// a crash keeps both or neither.
#[derive(Debug)]
pub struct SourceBatch {
    /// The source's name (`[sources.NAME]`).
    pub source: String,
    pub cursor: String,
    /// Their JSON already made by the sender, as with [`Message::Submit`].
    pub events: Vec<Event>,
}

/// An accepted event in the spool, as the spool knows it: handed out with
/// its [`Work`], handed back with each progress record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt(pub(super) i64);

/// A dead letter, as `jobhook deadletter` lists it and takes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DeadLetterId(pub(super) i64);

impl std::fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for DeadLetterId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<DeadLetterId, Self::Err> {
        text.parse().map(DeadLetterId)
    }
}

/// Progress of one event through its chain.
#[derive(Debug)]
pub enum Record {
    StageDone(StageDone),
    Retry(Retry),
    Dead(Dead),
    /// A replay's handler ran (`ran`), or was skipped: its dead letter goes,
    /// or stays.
    Replayed {
        dead_letter: DeadLetterId,
        ran: bool,
    },
    /// The chain is done with the event.
    Finished(Receipt),
}

/// `stage` succeeded; `changed` is the event as it left it (its JSON), if
/// it changed it.
#[derive(Debug)]
pub struct StageDone {
    pub receipt: Receipt,
    pub stage: String,
    pub changed: Option<Arc<[u8]>>,
}

/// `stage` failed and is tried again at `due`.
#[derive(Debug)]
pub struct Retry {
    pub receipt: Receipt,
    pub stage: String,
    pub attempts: u32,
    /// Milliseconds since the epoch, as are all times here ([`now_ms`]).
    pub first_attempt: i64,
    pub due: i64,
}

/// `stage` gave up: the event as it saw it is kept for a person.
#[derive(Debug)]
pub struct Dead {
    pub receipt: Receipt,
    pub event_id: String,
    pub stage: String,
    pub event: Arc<[u8]>,
    pub error: String,
    pub attempts: u32,
    pub first_attempt: i64,
}

/// Why an event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Overloaded,
    /// The spool's commit failed: the cause, as the spool reported it.
    Unwritable(Arc<str>),
    ShuttingDown,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Overloaded | Rejection::Unwritable(_) => "overloaded",
            Rejection::ShuttingDown => "shutting_down",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::Overloaded => "the spool is full; retry later".to_owned(),
            Rejection::Unwritable(cause) => {
                format!("the spool cannot be written: {cause}; retry later")
            }
            Rejection::ShuttingDown => "the daemon is shutting down; retry later".to_owned(),
        }
    }
}

/// An accepted event; `duplicate` when its `Id` was accepted before (it is
/// not handled again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub duplicate: bool,
}

/// An event for a worker, with what its chain already did.
#[derive(Debug)]
pub struct Work {
    pub receipt: Receipt,
    pub event: Event,
    /// Handlers that already succeeded (or gave up) for it.
    pub done: Vec<String>,
    pub resume: Option<Resume>,
    pub replay: Option<Replay>,
}

impl Work {
    /// A new event, with nothing done yet.
    pub(super) fn new(receipt: Receipt, event: Event) -> Work {
        Work {
            receipt,
            event,
            done: Vec::new(),
            resume: None,
            replay: None,
        }
    }
}

/// Where a chain picks up again: a retry of `stage` after `attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub stage: String,
    pub attempts: u32,
    /// Milliseconds since the epoch.
    pub first_attempt: i64,
}

/// A dead letter being replayed: the event runs only its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub handler: String,
    /// The dead letter, kept until its handler has run: one whose handler
    /// is disabled, filtered out or gone stays.
    pub dead_letter: DeadLetterId,
}

/// Now, as the spool keeps times: milliseconds since the epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A duration in whole milliseconds, saturating (times in the spool are
/// milliseconds since the epoch, added to and subtracted from with these).
pub fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
