//! Queue-level events: when the pending events' bytes cross the thresholds
//! (`queue_filling_threshold`, `max_spool_bytes`, `queue_emptying_threshold`,
//! empty), the `OnQueueEvent` chain gets a synthetic event saying so.

use tracing::{error, info, warn};

use super::thread::SpoolThread;
use crate::event::Event;
use crate::spool::protocol::{Work, now_ms};

/// How full the spool is, as the `OnQueueEvent` chain was last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Normal,
    Filling,
    Full,
    Emptying,
}

impl SpoolThread {
    /// Raises a queue event when the spool crosses a threshold: after every
    /// commit, so that a spool full for less than a second (events refused
    /// `overloaded`) is still heard of.
    pub(super) fn watch_level(&mut self) {
        let max = self.limits.max_bytes.max(1);
        let fraction = self.pending_bytes as f64 / max as f64;
        let next = match self.level {
            level if self.pending_bytes >= max && level != Level::Full => {
                Some((Level::Full, "QueueFull"))
            }
            Level::Normal | Level::Emptying if fraction >= self.limits.filling => {
                Some((Level::Filling, "QueueFilling"))
            }
            Level::Filling | Level::Full if fraction < self.limits.emptying => {
                Some((Level::Emptying, "QueueEmptying"))
            }
            // The counter decides while events remain (this runs after
            // every commit); one count confirms it when it says the spool
            // is empty, which costs nothing on an empty table.
            Level::Emptying if self.pending_events == 0 && self.store.pending() == Ok(0) => {
                Some((Level::Normal, "QueueEmpty"))
            }
            _ => None,
        };
        let Some((level, state)) = next else {
            return;
        };
        self.level = level;
        let pending = self.pending_events;
        let percent = fraction * 100.0;
        match level {
            Level::Filling | Level::Full => {
                warn!(
                    state,
                    spool_bytes = self.pending_bytes,
                    pending,
                    "spool at {percent:.0}% of max_spool_bytes"
                )
            }
            Level::Emptying | Level::Normal => {
                info!(
                    state,
                    spool_bytes = self.pending_bytes,
                    pending,
                    "spool at {percent:.0}% of max_spool_bytes"
                )
            }
        }
        let event = Event::queue_event(state, self.pending_bytes, max, pending);
        let body = event.json();
        let stored = self.store.insert_event(event.id(), body, now_ms());
        match stored {
            Ok(receipt) => {
                self.pending_bytes += body.len() as u64;
                self.pending_events += 1;
                self.dispatch(Work::new(receipt, event));
            }
            Err(err) => error!("cannot store the {state} queue event: {err}"),
        }
    }
}
