//! The hand-over between ingest, the spool and the workers.
//!
//! Ingest offers each event to the [`Queue`]; the spool commits it and only
//! then answers (the [`Ticket`]). Committed events go to the workers through
//! [`Lanes`], one per worker, chosen by `JobId`: a lane is handled in order,
//! so events of one job reach handlers in the order accepted while different
//! jobs run concurrently.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;

use tokio::sync::{mpsc, oneshot};

use crate::event::Event;
use crate::spool::Message;

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

/// The ingest side: offers events to the spool.
pub struct Queue {
    spool: std_mpsc::Sender<Message>,
}

impl Queue {
    pub fn new(spool: std_mpsc::Sender<Message>) -> Queue {
        Queue { spool }
    }

    /// Offers an event; the ticket resolves once it is committed or refused.
    pub fn submit(&self, event: Event) -> Ticket {
        let (reply, answer) = oneshot::channel();
        // Serialised here, on the connection's thread, not on the spool's.
        event.json();
        match self.spool.send(Message::Submit { event, reply }) {
            Ok(()) => Ticket(Some(answer)),
            Err(_) => Ticket(None),
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

/// An event for a worker, with what its chain already did.
#[derive(Debug)]
pub struct Work {
    /// The event's row in the spool.
    pub seq: i64,
    pub event: Event,
    /// Handlers that already succeeded (or gave up) for it.
    pub done: Vec<String>,
    pub resume: Option<Resume>,
    pub replay: Option<Replay>,
}

/// A dead letter being replayed: the event runs only its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub handler: String,
    /// The dead letter, kept until its handler has run: one whose handler
    /// is disabled, filtered out or gone stays.
    pub dead_letter: i64,
}

impl Work {
    /// A new event, with nothing done yet.
    pub fn new(seq: i64, event: Event) -> Work {
        Work {
            seq,
            event,
            done: Vec::new(),
            resume: None,
            replay: None,
        }
    }
}

/// The receiving side of one lane, owned by one worker.
pub type Lane = mpsc::UnboundedReceiver<Work>;

/// The sending side of every lane. Lanes are unbounded: the spool admits no
/// more events than `queue_capacity` into them.
pub struct Lanes {
    senders: Vec<mpsc::UnboundedSender<Work>>,
    next: AtomicUsize,
    hasher: std::collections::hash_map::RandomState,
}

impl Lanes {
    pub fn new(count: usize) -> (Lanes, Vec<Lane>) {
        let (senders, receivers) = (0..count.max(1)).map(|_| mpsc::unbounded_channel()).unzip();
        let lanes = Lanes {
            senders,
            next: AtomicUsize::new(0),
            hasher: Default::default(),
        };
        (lanes, receivers)
    }

    pub fn send(&self, work: Work) {
        let lane = match work.event.job_id() {
            Some(job) => (self.hasher.hash_one(job) % self.senders.len() as u64) as usize,
            None => self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len(),
        };
        // A lane closes only when its worker has stopped.
        let _ = self.senders[lane].send(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(json: &str) -> Work {
        Work {
            seq: 0,
            event: Event::from_line(json.as_bytes(), jiff::Timestamp::now()).unwrap(),
            done: Vec::new(),
            resume: None,
            replay: None,
        }
    }

    #[tokio::test]
    async fn one_job_stays_in_one_lane_in_order() {
        let (lanes, mut receivers) = Lanes::new(4);
        let job = "49b3a17d-cada-4ec8-84c6-7719bf5beef3";
        for i in 0..10 {
            lanes.send(work(&format!(r#"{{"Id":"{i}","JobId":"{job}"}}"#)));
        }
        let busy: Vec<&mut Lane> = receivers
            .iter_mut()
            .filter(|lane| !lane.is_empty())
            .collect();
        assert_eq!(busy.len(), 1);
        let lane = busy.into_iter().next().unwrap();
        for i in 0..10 {
            assert_eq!(lane.recv().await.unwrap().event.id(), i.to_string());
        }
    }
}
