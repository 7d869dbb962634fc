//! Connection slots: at most `max_connections` clients are served at once.
//!
//! A client that arrives when every slot is taken gets the slot of the
//! connection idle longest — one with no line half received and no reply
//! owed — which is closed for it: a client that only holds a connection
//! open must not lock out one with events to send. Only when no connection
//! is idle does the new client wait (and those after it, in the listen
//! backlog); the idle and stall timeouts bound that wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The slots of one listener.
pub struct Slots {
    permits: Arc<Semaphore>,
    taken: Mutex<Vec<Arc<Activity>>>,
}

/// A connection's hold on a slot; dropping it frees the slot.
pub struct Slot {
    activity: Arc<Activity>,
    slots: Arc<Slots>,
    _permit: OwnedSemaphorePermit,
}

/// What a connection is doing: what its slot is judged by, and how it is
/// told to close.
#[derive(Debug)]
pub struct Activity {
    /// Replies owed: lines read whose reply is not written yet.
    owed: AtomicUsize,
    /// Set while a line is partly received (kept by the line reader).
    receiving: Arc<AtomicBool>,
    /// When a line last ended or a reply was last written.
    last_active: Mutex<Instant>,
    /// Cancelled when the slot is given to another client.
    close: CancellationToken,
}

impl Slots {
    pub fn new(max_connections: usize) -> Arc<Slots> {
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            taken: Mutex::new(Vec::new()),
        })
    }

    /// A slot for a client that has just connected: a free one, else that
    /// of the connection idle longest (which is told to close), else the
    /// first one freed.
    pub async fn take(self: &Arc<Slots>) -> Slot {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.close_longest_idle();
                let permit = self.permits.clone().acquire_owned().await;
                permit.expect("semaphore never closed")
            }
        };
        let activity = Arc::new(Activity::default());
        self.taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(activity.clone());
        Slot {
            activity,
            slots: self.clone(),
            _permit: permit,
        }
    }

    fn close_longest_idle(&self) {
        let taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = taken
            .iter()
            .filter(|activity| activity.is_idle() && !activity.close.is_cancelled())
            .min_by_key(|activity| activity.last_active());
        if let Some(activity) = idle {
            debug!("all connection slots taken: closing the connection idle longest");
            activity.close.cancel();
        }
    }
}

impl Slot {
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|activity| !Arc::ptr_eq(activity, &self.activity));
    }
}

/// The activity of a connection that has just begun.
impl Default for Activity {
    fn default() -> Activity {
        Activity {
            owed: AtomicUsize::new(0),
            receiving: Arc::default(),
            last_active: Mutex::new(Instant::now()),
            close: CancellationToken::new(),
        }
    }
}

impl Activity {
    /// The flag the line reader sets while a line is partly received.
    pub fn receiving(&self) -> Arc<AtomicBool> {
        self.receiving.clone()
    }

    /// A line was read; a reply to it is owed. (While replies are owed
    /// the connection is not idle, so when it was last active matters
    /// again only once the last is written.)
    pub fn line_read(&self) {
        self.owed.fetch_add(1, Ordering::Relaxed);
    }

    /// A reply was written; the last one owed makes the connection active
    /// now (a clock read and a lock per reply were 2% of the socket's work).
    pub fn reply_written(&self) {
        if self.owed.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.touch();
        }
    }

    /// When the connection counts as idle for `timeout`: `timeout` after
    /// it was last active, or, while replies are owed, not before `timeout`
    /// from now (replies owed are not the client's delay).
    pub fn idle_deadline(&self, timeout: std::time::Duration) -> Instant {
        if self.owed.load(Ordering::Relaxed) > 0 {
            Instant::now() + timeout
        } else {
            self.last_active() + timeout
        }
    }

    /// Whether the slot was given to another client.
    pub fn is_closed(&self) -> bool {
        self.close.is_cancelled()
    }

    /// Resolves when the slot is given to another client.
    pub async fn closed(&self) {
        self.close.cancelled().await;
    }

    fn touch(&self) {
        *self
            .last_active
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last_active(&self) -> Instant {
        *self
            .last_active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_idle(&self) -> bool {
        self.owed.load(Ordering::Relaxed) == 0 && !self.receiving.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_house_gives_the_slot_of_the_longest_idle_connection() {
        let slots = Slots::new(3);
        let oldest = slots.take().await;
        let busy = slots.take().await;
        let newer = slots.take().await;
        // The oldest is owed a reply: busy. Of the two idle ones, `busy`
        // has been idle longer but is receiving a line.
        oldest.activity.line_read();
        busy.activity.receiving.store(true, Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        newer.activity.line_read();
        newer.activity.reply_written();
        let taking = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        newer.activity.closed().await;
        assert!(!oldest.activity.close.is_cancelled() && !busy.activity.close.is_cancelled());
        drop(newer);
        let slot = taking.await.unwrap();
        assert_eq!(slots.taken.lock().unwrap().len(), 3);
        drop(slot);
        assert_eq!(slots.taken.lock().unwrap().len(), 2);
    }
}
