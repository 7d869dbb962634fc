//! The ingest budget: how many bytes of events may be submitted to the
//! spool and not yet answered, across every connection.
//!
//! Between a client's socket and the disk an event is held by the spool's
//! channel until its commit. That is not bounded by a count of events alone:
//! `max_connections` clients pipelining large lines would fill them faster
//! than a commit empties them. So a connection takes a [`Share`] of the
//! budget before it submits an event, and waits for one — not reading its
//! socket, which slows its client down (backpressure) — while the budget is
//! spent. The spool gives the share back when it answers the event, so a
//! client that does not read its replies holds none of it.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The smallest budget: room for many small events in one group commit.
const FLOOR: usize = 16 << 20;

/// What an event costs beyond its JSON: the event's own structures.
const PER_EVENT: usize = 512;

/// Bytes submitted and not yet answered at most, for lines of at most
/// `max_event_bytes`: at least two of the largest events, so that one can
/// arrive while another is committed.
pub fn budget_bytes(max_event_bytes: u64) -> usize {
    let largest = usize::try_from(max_event_bytes).unwrap_or(usize::MAX);
    FLOOR.max(largest.saturating_mul(2))
}

/// The budget shared by every connection.
#[derive(Clone)]
pub(super) struct Budget {
    bytes: Arc<Semaphore>,
    total: u32,
}

/// An event's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Share {
    _bytes: OwnedSemaphorePermit,
}

impl Budget {
    pub(super) fn new(total: usize) -> Budget {
        // A semaphore counts in u32; a budget beyond 4 GiB is never needed.
        let total = u32::try_from(total).unwrap_or(u32::MAX).max(1);
        Budget {
            bytes: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// The share for an event whose JSON is `json_bytes` long, once the
    /// budget has it (an event larger than the whole budget takes all of it).
    pub(super) async fn take(&self, json_bytes: usize) -> Share {
        let cost = json_bytes.saturating_add(PER_EVENT);
        let cost = u32::try_from(cost).unwrap_or(u32::MAX).min(self.total);
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(cost)
            .await
            .expect("the budget's semaphore is never closed");
        Share { _bytes: permit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_share_waits_until_another_is_given_back() {
        let budget = Budget::new(4096);
        let first = budget.take(3000).await;
        let waiting = tokio::time::timeout(Duration::from_secs(1), budget.take(1000)).await;
        assert!(waiting.is_err(), "took more than the budget holds");
        drop(first);
        let second = budget.take(1000).await;
        drop(second);
        // Larger than the whole budget: it takes all of it.
        let _all = budget.take(1 << 20).await;
    }

    #[test]
    fn the_budget_holds_two_of_the_largest_events() {
        assert_eq!(budget_bytes(1 << 20), 16 << 20);
        assert_eq!(budget_bytes(256 << 20), 512 << 20);
    }
}
