//! The ids accepted recently (the `seen` table), which make a resent event
//! a duplicate. They are not pending events, so they are kept out of
//! `max_spool_bytes` and bounded on their own: forgotten once older than
//! `dedupe_window`, and, beyond `max_dedupe_bytes` of ids, the oldest
//! forgotten early (a warning says so).

use std::time::Duration;

use tracing::warn;

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
}

impl Dedupe {
    /// Measures the ids the spool remembers.
    pub(super) fn new(store: &Store, window: Duration, max_bytes: u64) -> rusqlite::Result<Dedupe> {
        Ok(Dedupe {
            window,
            max_bytes,
            bytes: store.seen_bytes()?,
            evicting: false,
        })
    }

    /// `bytes` of new ids were committed.
    pub(super) fn remembered(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    /// Forgets the ids older than the window, then the oldest while they
    /// take more than `max_dedupe_bytes`.
    pub(super) fn forget(&mut self, store: &mut Store, now: i64) {
        let before = now.saturating_sub(millis(self.window));
        let forgotten = store.forget_seen(before, self.bytes, self.max_bytes);
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
