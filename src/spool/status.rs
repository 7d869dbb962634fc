//! Where the spool stands, for `/health` and `/metrics`: written by the
//! backend's thread as it works, read by anyone without asking it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The spool's levels and whether it can be written.
#[derive(Debug, Default)]
pub struct Status {
    pending_events: AtomicU64,
    pending_bytes: AtomicU64,
    unwritable: AtomicBool,
}

impl Status {
    /// Events accepted whose chain has not finished (as of the last
    /// housekeeping, at most a second ago).
    pub fn pending_events(&self) -> u64 {
        self.pending_events.load(Ordering::Relaxed)
    }

    /// Bytes of those events' bodies: what `max_spool_bytes` bounds.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes.load(Ordering::Relaxed)
    }

    /// Whether the last commit succeeded (a full disk, a read-only or lost
    /// file system make it fail; new events are refused meanwhile).
    pub fn writable(&self) -> bool {
        !self.unwritable.load(Ordering::Relaxed)
    }

    pub(super) fn set_levels(&self, events: u64, bytes: u64) {
        self.pending_events.store(events, Ordering::Relaxed);
        self.pending_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(super) fn set_writable(&self, writable: bool) {
        self.unwritable.store(!writable, Ordering::Relaxed);
    }
}
