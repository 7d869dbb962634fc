//! The live stream behind `GET /events` and `jobhook tail`: each accepted
//! event and each handler outcome, as they happen.
//!
//! One bounded ring ([`CAPACITY`] entries) is shared by every listener; a
//! listener that falls further behind loses the oldest entries and is told
//! how many ([`Missed`]). Publishing never waits, and when nobody listens it
//! costs one atomic load: the entry is not even made.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use super::counters::Outcome;
use crate::event::Event;

/// Entries a listener may fall behind by before it misses some.
pub const CAPACITY: usize = 4096;

/// One entry of the stream, as written to listeners (one JSON object).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Live {
    /// An event was committed to the spool (duplicates are not).
    Accepted {
        id: String,
        #[serde(rename = "JobId", skip_serializing_if = "Option::is_none")]
        job_id: Option<String>,
        #[serde(rename = "JobType", skip_serializing_if = "Option::is_none")]
        job_type: Option<String>,
        phase: &'static str,
    },
    /// A handler's attempt at an event ended.
    Outcome {
        handler: String,
        id: String,
        outcome: Outcome,
        duration_ms: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Live {
    /// The handler an outcome is about; `None` for an accepted event.
    pub fn handler(&self) -> Option<&str> {
        match self {
            Live::Accepted { .. } => None,
            Live::Outcome { handler, .. } => Some(handler),
        }
    }
}

/// A listener fell behind and lost this many entries.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Missed {
    pub missed: u64,
}

struct Stream {
    sender: broadcast::Sender<Live>,
    listeners: AtomicUsize,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            sender: broadcast::channel(CAPACITY).0,
            listeners: AtomicUsize::new(0),
        }
    }

    fn listening(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    fn publish(&self, entry: Live) {
        // No receiver left (the last one just went): nothing to do.
        let _ = self.sender.send(entry);
    }

    fn listen(&'static self) -> Listener {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        Listener {
            receiver: self.sender.subscribe(),
            stream: self,
        }
    }
}

/// The daemon's one stream.
static STREAM: LazyLock<Stream> = LazyLock::new(Stream::new);

/// Whether anyone listens (publish only then).
pub fn listening() -> bool {
    STREAM.listening()
}

/// An event was committed.
pub fn accepted(event: &Event) {
    if !listening() {
        return;
    }
    STREAM.publish(accepted_entry(event));
}

fn accepted_entry(event: &Event) -> Live {
    let text = |name: &str| {
        event
            .field(name)
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    Live::Accepted {
        id: event.id().to_owned(),
        job_id: text("JobId"),
        job_type: text("JobType"),
        phase: event.phase().as_str(),
    }
}

/// A handler's attempt ended.
pub fn outcome(
    handler: &str,
    event: &Event,
    outcome: Outcome,
    took: Duration,
    error: Option<&dyn std::fmt::Display>,
) {
    if !listening() {
        return;
    }
    STREAM.publish(Live::Outcome {
        handler: handler.to_owned(),
        id: event.id().to_owned(),
        outcome,
        duration_ms: took.as_secs_f64() * 1000.0,
        error: error.map(ToString::to_string),
    });
}

/// One listener's place in the stream; it stops counting as a listener when
/// dropped.
pub struct Listener {
    receiver: broadcast::Receiver<Live>,
    stream: &'static Stream,
}

/// Starts listening from now on.
pub fn listen() -> Listener {
    STREAM.listen()
}

impl Listener {
    /// The next entry, or how many were lost since the last one.
    pub async fn next(&mut self) -> Result<Live, Missed> {
        match self.receiver.recv().await {
            Ok(entry) => Ok(entry),
            Err(broadcast::error::RecvError::Lagged(missed)) => Err(Missed { missed }),
            // The sender lives in a static: never closed.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stream.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        let line = format!(
            r#"{{"Id":"{id}","Phase":"OnFinish","JobId":"6e4c1c5b-8b41-4c43-9f0f-2f4e9d3a1b11","JobType":"Inventory"}}"#
        );
        Event::from_line(line.as_bytes(), jiff::Timestamp::now()).unwrap()
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told_how_many_it_missed() {
        // A stream of its own: other tests' events go to the daemon's.
        let stream: &'static Stream = Box::leak(Box::new(Stream::new()));
        assert!(!stream.listening());
        let mut listener = stream.listen();
        assert!(stream.listening());
        let total = CAPACITY + 10;
        for n in 0..total {
            stream.publish(accepted_entry(&event(&format!("e{n}"))));
        }
        let missed = listener.next().await.unwrap_err();
        assert_eq!(missed.missed, 10);
        let Live::Accepted {
            id,
            job_type,
            phase,
            ..
        } = listener.next().await.unwrap()
        else {
            panic!("expected an accepted event")
        };
        assert_eq!(
            (id.as_str(), job_type.as_deref(), phase),
            ("e10", Some("Inventory"), "OnFinish")
        );
        drop(listener);
        assert!(!stream.listening());
    }
}
