//! The hand-over between ingest and the workers: the one place that decides
//! when an event counts as accepted.
//!
//! Today the queue is in memory: an event is accepted once a worker lane has
//! room for it. The durable spool will keep this interface — `submit` returns
//! a [`Ticket`] that resolves once the event is safe — so ingest and the
//! chains do not change when it arrives.
//!
//! Events are spread over lanes, one per worker, by `JobId`: a lane is handled
//! in order, so events of one job reach handlers in the order accepted while
//! different jobs run concurrently.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::event::Event;

/// How long `submit` waits for room before answering `overloaded`. Short
/// bursts are absorbed by waiting (which slows the client down); a queue that
/// stays full is reported.
const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// Why an event was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Overloaded,
    ShuttingDown,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Overloaded => "overloaded",
            Rejection::ShuttingDown => "shutting_down",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Rejection::Overloaded => "the event queue is full; retry later",
            Rejection::ShuttingDown => "the daemon is shutting down; retry later",
        }
    }
}

/// An accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
}

/// The answer to one submitted event, possibly still on its way.
#[derive(Debug)]
pub struct Ticket(Result<Accepted, Rejection>);

impl Ticket {
    pub async fn outcome(self) -> Result<Accepted, Rejection> {
        self.0
    }
}

/// The sending side, shared by every connection.
pub struct Queue {
    lanes: Vec<mpsc::Sender<Event>>,
    next_lane: AtomicUsize,
    hasher: std::collections::hash_map::RandomState,
}

/// The receiving side of one lane, owned by one worker.
pub type Lane = mpsc::Receiver<Event>;

impl Queue {
    /// A queue of `lanes` lanes holding `capacity` events in all.
    pub fn new(lanes: usize, capacity: usize) -> (Queue, Vec<Lane>) {
        let lanes = lanes.max(1);
        let per_lane = capacity.div_ceil(lanes).max(1);
        let (senders, receivers) = (0..lanes).map(|_| mpsc::channel(per_lane)).unzip();
        let queue = Queue {
            lanes: senders,
            next_lane: AtomicUsize::new(0),
            hasher: Default::default(),
        };
        (queue, receivers)
    }

    /// Offers an event; waits up to a second for room.
    pub async fn submit(&self, event: Event) -> Ticket {
        let lane = &self.lanes[self.lane_for(&event)];
        let id = event.id().to_owned();
        let sent = match lane.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(event)) => {
                match lane.send_timeout(event, ADMISSION_WAIT).await {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(Rejection::Overloaded),
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Rejection::ShuttingDown),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Rejection::ShuttingDown),
        };
        Ticket(sent.map(|()| Accepted { id }))
    }

    fn lane_for(&self, event: &Event) -> usize {
        match event.job_id() {
            Some(job) => (self.hasher.hash_one(job) % self.lanes.len() as u64) as usize,
            None => self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        Event::from_line(json.as_bytes(), jiff::Timestamp::now()).unwrap()
    }

    #[tokio::test]
    async fn one_job_stays_in_one_lane_in_order() {
        let (queue, mut lanes) = Queue::new(4, 100);
        let job = "49b3a17d-cada-4ec8-84c6-7719bf5beef3";
        for i in 0..10 {
            let e = event(&format!(r#"{{"Id":"{i}","JobId":"{job}"}}"#));
            assert_eq!(
                queue.submit(e).await.outcome().await.unwrap().id,
                i.to_string()
            );
        }
        let busy: Vec<&mut Lane> = lanes.iter_mut().filter(|lane| !lane.is_empty()).collect();
        assert_eq!(busy.len(), 1);
        let lane = busy.into_iter().next().unwrap();
        for i in 0..10 {
            assert_eq!(lane.recv().await.unwrap().id(), i.to_string());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_answers_overloaded_after_waiting() {
        let (queue, lanes) = Queue::new(1, 2);
        for _ in 0..2 {
            assert!(queue.submit(event("{}")).await.outcome().await.is_ok());
        }
        let started = tokio::time::Instant::now();
        let outcome = queue.submit(event("{}")).await.outcome().await;
        assert_eq!(outcome, Err(Rejection::Overloaded));
        assert_eq!(started.elapsed(), ADMISSION_WAIT);
        drop(lanes);
        assert_eq!(
            queue.submit(event("{}")).await.outcome().await,
            Err(Rejection::ShuttingDown)
        );
    }
}
