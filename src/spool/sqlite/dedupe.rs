//! The ids accepted recently, which make a resent event a duplicate. They
//! are not pending events, so they are kept out of `max_spool_bytes` and
//! bounded on their own: forgotten once older than `dedupe_window`, and,
//! beyond `max_dedupe_bytes` of ids, the oldest forgotten early (a warning
//! says so).
//!
//! Each commit lists the ids it remembered in one `seen_batches` row, in
//! the order committed: written in sequence, that list is what makes them
//! durable. They are looked up in memory, as 96-bit keyed hashes (11 bytes
//! an id in the table, 13 to 16 with its free room: `key_set.rs`), read
//! back from the lists at start. A B-tree keyed by id, as before, took a
//! page write at a random place for almost every event: with GUIDs as ids (Keyfactor's)
//! the daemon ran at a third of the speed (README, "Current figures"). Two
//! ids share a hash with a chance of one in 2^96 per pair (for the half
//! million GUIDs `max_dedupe_bytes` allows, about one in 10^18 per window),
//! far below a disk's undetected errors; the keys are drawn at each start,
//! so no one can make two ids collide on purpose.

mod key_set;

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tracing::warn;

use key_set::KeySet;

use super::store::{Forgotten, Store};
use crate::spool::protocol::millis;

/// The spool thread's account of the ids it remembers.
pub(super) struct Dedupe {
    window: Duration,
    max_bytes: u64,
    /// Bytes of the ids remembered now.
    bytes: u64,
    /// Whether ids are being forgotten early (warned once per episode).
    evicting: bool,
    keys: Keys,
    remembered: KeySet,
    /// What the commit under way remembered, and the bytes of those ids:
    /// forgotten again if it fails.
    uncommitted: Vec<Key>,
    uncommitted_bytes: u64,
}

impl Dedupe {
    /// Reads back the ids the spool lists.
    pub(super) fn new(store: &Store, window: Duration, max_bytes: u64) -> rusqlite::Result<Dedupe> {
        let mut dedupe = Dedupe {
            window,
            max_bytes,
            bytes: 0,
            evicting: false,
            keys: Keys::default(),
            remembered: KeySet::default(),
            uncommitted: Vec::new(),
            uncommitted_bytes: 0,
        };
        store.each_listed_id(|id| {
            if dedupe.remembered.insert(dedupe.keys.hash(id)) {
                dedupe.bytes += id.len() as u64;
            }
        })?;
        Ok(dedupe)
    }

    /// Remembers `id` unless it is remembered already: whether it is new.
    /// It is remembered for good once the commit under way succeeds
    /// ([`Dedupe::committed`]).
    pub(super) fn remember(&mut self, id: &str) -> bool {
        let hash = self.keys.hash(id);
        let new = self.remembered.insert(hash);
        if new {
            self.uncommitted.push(hash);
            self.uncommitted_bytes += id.len() as u64;
        }
        new
    }

    /// The commit succeeded: what it remembered is remembered for good.
    pub(super) fn committed(&mut self) {
        self.bytes += std::mem::take(&mut self.uncommitted_bytes);
        self.uncommitted.clear();
    }

    /// The commit failed: nothing it remembered is.
    pub(super) fn rolled_back(&mut self) {
        for hash in self.uncommitted.drain(..) {
            self.remembered.remove(&hash);
        }
        self.uncommitted_bytes = 0;
    }

    /// Forgets the ids older than the window, then the oldest while they
    /// take more than `max_dedupe_bytes`.
    pub(super) fn forget(&mut self, store: &mut Store, now: i64) {
        let before = now.saturating_sub(millis(self.window));
        let (keys, remembered) = (&self.keys, &mut self.remembered);
        let forgotten = store.forget_seen(before, self.bytes, self.max_bytes, &mut |id| {
            remembered.remove(&keys.hash(id))
        });
        let Forgotten { bytes, early } = match forgotten {
            Ok(forgotten) => forgotten,
            Err(err) => {
                warn!("cannot forget old event ids: {err}");
                return;
            }
        };
        self.bytes = self.bytes.saturating_sub(bytes);
        if early > 0 && !self.evicting {
            warn!(
                forgotten = early,
                max_dedupe_bytes = self.max_bytes,
                "the ids accepted within dedupe_window take more than max_dedupe_bytes: \
                 the oldest are forgotten early, so a resend of one is handled again"
            );
        }
        self.evicting = early > 0;
    }
}

/// An id as the set holds it: 96 bits of two keyed SipHashes of it, as
/// bytes so that it takes 12 (a `u64` and a `u32` would be padded to 16).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u8; 8], [u8; 4]);

/// The two SipHash keys, drawn at start.
#[derive(Default)]
struct Keys(RandomState, RandomState);

impl Keys {
    fn hash(&self, id: &str) -> Key {
        Key(
            self.0.hash_one(id).to_le_bytes(),
            (self.1.hash_one(id) as u32).to_le_bytes(),
        )
    }
}

#[cfg(test)]
mod tests;
