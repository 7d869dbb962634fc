//! The running spool as the daemon holds it: [`Spool`] hands out the
//! ingest side ([`Queue`]) and the workers' side
//! ([`Recorder`](super::Recorder)), and stops it. Each talks to the backend
//! only through [`Message`]s, whatever the backend is.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::budget::Budget;
use super::lanes::Lanes;
use super::progress::Recorder;
use super::protocol::{Accepted, Message, Rejection, Reply, SourceBatch};
use super::sqlite::{self, Fsync, Store};
use super::status::Status;
use crate::event::Event;
use crate::lifecycle::Heartbeat;

/// Settings the spool works by.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub fsync: Fsync,
    /// Events in the workers' lanes at most; more wait on disk (the
    /// backlog) and are read into the lanes as they empty.
    pub in_memory: usize,
    /// Bytes of pending events at most; more are `overloaded`.
    pub max_bytes: u64,
    /// Bytes of events submitted and not yet answered at most, from every
    /// connection together ([`budget_bytes`](super::budget_bytes)); more
    /// wait to be submitted.
    pub submitted_bytes: usize,
    /// An `Id` accepted within this long is a duplicate.
    pub dedupe_window: Duration,
    /// Bytes of ids remembered for dedupe at most; beyond, the oldest are
    /// forgotten early.
    pub max_dedupe_bytes: u64,
    /// Fractions of `max_bytes` at which `QueueFilling` and `QueueEmptying`
    /// are raised.
    pub filling: f64,
    pub emptying: f64,
}

/// The running spool: the thread its backend runs on.
pub struct Spool {
    sender: mpsc::Sender<Message>,
    status: Arc<Status>,
    budget: Budget,
    thread: Option<JoinHandle<()>>,
}

/// Why the spool could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the spool {}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start the spool thread")]
    Thread(#[source] std::io::Error),
}

impl Spool {
    /// Resumes what `store` holds and starts the backend's thread, which
    /// hands committed and due events to `lanes` and beats `heartbeat` each
    /// time round its loop (a watchdog reads it).
    pub fn start(
        store: Store,
        limits: Limits,
        lanes: Lanes,
        heartbeat: Heartbeat,
    ) -> Result<Spool, StartError> {
        let (sender, receiver) = mpsc::channel();
        let status = Arc::new(Status::default());
        let thread = sqlite::start(store, limits, lanes, receiver, heartbeat, status.clone())?;
        Ok(Spool {
            sender,
            status,
            budget: Budget::new(limits.submitted_bytes),
            thread: Some(thread),
        })
    }

    /// The ingest side.
    pub fn queue(&self) -> Queue {
        Queue {
            spool: self.sender.clone(),
            budget: self.budget.clone(),
        }
    }

    /// Its levels, as the backend last saw them.
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// The workers' side.
    pub fn recorder(&self) -> Recorder {
        Recorder(self.sender.clone())
    }

    /// Stops handing events to the workers.
    pub fn close_lanes(&self) {
        let _ = self.sender.send(Message::CloseLanes);
    }

    /// Commits what is left and stops the thread.
    pub fn stop(mut self) {
        let _ = self.sender.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The ingest side: offers events to the spool, from clients and from
/// sources.
pub struct Queue {
    spool: mpsc::Sender<Message>,
    budget: Budget,
}

impl Queue {
    /// Offers an event, once the ingest budget has room for it (waiting
    /// for that is the connection's backpressure); the ticket resolves once
    /// it is committed or refused.
    pub async fn submit(&self, event: Event) -> Ticket {
        // Serialised here, on the connection's thread, not on the spool's.
        let share = self.budget.take(event.json().len()).await;
        let (sender, answer) = oneshot::channel();
        let reply = Reply {
            sender,
            _share: share,
        };
        match self.spool.send(Message::Submit { event, reply }) {
            Ok(()) => Ticket(Some(answer)),
            Err(_) => Ticket(None),
        }
    }
}

impl Queue {
    /// Offers a source's events with its new cursor, committed together; the
    /// answer comes once they are committed, or says why nothing was. A
    /// batch with events is refused `overloaded` while the spool is over
    /// `max_spool_bytes`, and otherwise taken whole (what the lanes have no
    /// room for waits on disk); a batch of only a cursor always goes in.
    pub async fn submit_batch(&self, batch: SourceBatch) -> Result<Vec<Accepted>, Rejection> {
        let (reply, answer) = oneshot::channel();
        for event in &batch.events {
            event.json();
        }
        if self
            .spool
            .send(Message::SubmitBatch { batch, reply })
            .is_err()
        {
            return Err(Rejection::ShuttingDown);
        }
        answer.await.unwrap_or(Err(Rejection::ShuttingDown))
    }

    /// The cursor `source` last committed, if any.
    pub async fn cursor(&self, source: &str) -> Result<Option<String>, CursorError> {
        let (reply, answer) = oneshot::channel();
        let source = source.to_owned();
        self.spool
            .send(Message::ReadCursor { source, reply })
            .map_err(|_| CursorError::ShuttingDown)?;
        match answer.await {
            Ok(Ok(cursor)) => Ok(cursor),
            Ok(Err(cause)) => Err(CursorError::Unreadable(cause)),
            Err(_) => Err(CursorError::ShuttingDown),
        }
    }
}

/// Why a source's cursor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("the spool cannot be read: {0}")]
    Unreadable(std::sync::Arc<str>),
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// The answer to one submitted event, once the spool has committed it.
#[derive(Debug)]
pub struct Ticket(Option<oneshot::Receiver<Result<Accepted, Rejection>>>);

impl Ticket {
    pub async fn outcome(self) -> Result<Accepted, Rejection> {
        match self.0 {
            Some(answer) => answer.await.unwrap_or(Err(Rejection::ShuttingDown)),
            None => Err(Rejection::ShuttingDown),
        }
    }
}
