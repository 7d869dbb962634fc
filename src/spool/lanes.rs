//! The hand-over from the spool to the workers: committed events go out in
//! [`Lanes`], one per worker, chosen by `JobId`. A lane is handled in order,
//! so events of one job reach handlers in the order accepted while
//! different jobs run concurrently.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::protocol::Work;

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
    use crate::event::Event;
    use crate::spool::protocol::Receipt;

    fn work(json: &str) -> Work {
        let event = Event::from_line(json.as_bytes(), jiff::Timestamp::now()).unwrap();
        Work::new(Receipt(0), event)
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
