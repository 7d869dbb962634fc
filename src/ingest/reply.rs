//! The answer to one event, as the socket writes it on a line of its own
//! and HTTP ingest in an array (SPEC §2).

use serde::Serialize;

use tokio_util::sync::CancellationToken;

use super::framing::Frame;
use crate::event::Event;
use crate::spool::{Accepted, Queue, Rejection, Ticket};
use crate::telemetry;

/// One reply line of the wire protocol (SPEC §2).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Accepted {
        ok: bool,
        id: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    Rejected {
        ok: bool,
        code: &'static str,
        error: String,
    },
}

impl Reply {
    pub fn rejected(code: &'static str, error: String) -> Reply {
        Reply::Rejected {
            ok: false,
            code,
            error,
        }
    }

    pub fn is_accepted(&self) -> bool {
        matches!(self, Reply::Accepted { .. })
    }

    /// A refusal that sending the event again later may turn into an
    /// acceptance.
    pub fn is_temporary(&self) -> bool {
        let temporary = [Rejection::Overloaded.code(), Rejection::ShuttingDown.code()];
        matches!(self, Reply::Rejected { code, .. } if temporary.contains(code))
    }

    pub fn from_outcome(outcome: Result<Accepted, Rejection>) -> Reply {
        match outcome {
            Ok(accepted) => Reply::Accepted {
                ok: true,
                id: accepted.id,
                duplicate: accepted.duplicate,
            },
            Err(rejection) => Reply::rejected(rejection.code(), rejection.message().to_owned()),
        }
    }
}

/// An answer that is ready, or will be once the queue has decided.
pub enum Pending {
    Ready(Reply),
    Queued(Ticket),
}

impl Pending {
    /// The reply, once the queue has decided.
    pub async fn reply(self) -> Reply {
        match self {
            Pending::Ready(reply) => reply,
            Pending::Queued(ticket) => Reply::from_outcome(ticket.outcome().await),
        }
    }
}

/// The answer to one frame: a rejection at once, or the queue's ticket
/// once the ingest budget has room for the event — until then this
/// connection reads no more of its socket (backpressure); a refusal if the
/// daemon starts stopping meanwhile. Refusals here are counted here; the
/// spool counts its own.
pub async fn answer(
    frame: Frame<'_>,
    queue: &Queue,
    max_event_bytes: usize,
    shutdown: &CancellationToken,
) -> Pending {
    let (code, error) = match frame {
        Frame::Line(line) => match Event::from_line(line, jiff::Timestamp::now()) {
            Ok(event) => {
                return tokio::select! {
                    biased;
                    () = shutdown.cancelled() => shutting_down(),
                    ticket = queue.submit(event) => Pending::Queued(ticket),
                };
            }
            Err(err) => (err.code(), err.to_string()),
        },
        Frame::TooLarge => (
            "too_large",
            format!("the event is longer than max_event_bytes ({max_event_bytes} bytes)"),
        ),
    };
    refused(code, error)
}

/// A refusal made here, counted (the spool counts its own).
fn refused(code: &'static str, error: String) -> Pending {
    telemetry::counters::rejected(code);
    Pending::Ready(Reply::rejected(code, error))
}

/// The refusal of a line read while the daemon stops.
pub fn shutting_down() -> Pending {
    let stopping = Rejection::ShuttingDown;
    refused(stopping.code(), stopping.message())
}
