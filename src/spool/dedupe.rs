//! The ids accepted recently (the `seen` table), which make a resent event
//! a duplicate. They are not pending events, so they are kept out of
//! `max_spool_bytes` and bounded on their own: forgotten once older than
//! `dedupe_window`, and, beyond `max_dedupe_bytes` of ids, the oldest
//! forgotten early (a warning says so).

use std::time::Duration;

use tracing::warn;

use super::store::Store;

/// The spool thread's account of the ids it remembers.
pub struct Dedupe {
    window: Duration,
    max_bytes: u64,
    /// Bytes of the ids remembered now.
    bytes: u64,
    /// Whether ids are being forgotten early (warned once per episode).
    evicting: bool,
}

impl Dedupe {
    /// Measures the ids the spool remembers.
    pub fn new(store: &Store, window: Duration, max_bytes: u64) -> rusqlite::Result<Dedupe> {
        Ok(Dedupe {
            window,
            max_bytes,
            bytes: store.seen_bytes()?,
            evicting: false,
        })
    }

    /// `bytes` of new ids were committed.
    pub fn remembered(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    /// Forgets the ids older than the window, then the oldest while they
    /// take more than `max_dedupe_bytes`.
    pub fn forget(&mut self, store: &mut Store, now: i64) {
        let before = now.saturating_sub(super::millis(self.window));
        let forgotten = (|| -> rusqlite::Result<(u64, u64)> {
            let transaction = store.transaction()?;
            let mut bytes = 0;
            for length in transaction
                .prepare_cached(
                    "DELETE FROM seen WHERE accepted_at < ?1 RETURNING octet_length(id)",
                )?
                .query_map([before], |row| row.get::<_, i64>(0))?
            {
                bytes += length?.max(0) as u64;
            }
            // Then the oldest, as many as it takes to be within the bound.
            let excess = self
                .bytes
                .saturating_sub(bytes)
                .saturating_sub(self.max_bytes);
            let mut oldest = Vec::new();
            let mut freed = 0;
            if excess > 0 {
                let mut statement = transaction
                    .prepare_cached("SELECT id, octet_length(id) FROM seen ORDER BY accepted_at")?;
                let mut rows = statement.query([])?;
                while freed < excess
                    && let Some(row) = rows.next()?
                {
                    oldest.push(row.get::<_, String>(0)?);
                    freed += row.get::<_, i64>(1)?.max(0) as u64;
                }
            }
            let mut forget = transaction.prepare_cached("DELETE FROM seen WHERE id = ?1")?;
            for id in &oldest {
                forget.execute([id])?;
            }
            drop(forget);
            transaction.commit()?;
            Ok((bytes + freed, oldest.len() as u64))
        })();
        let (bytes, early) = match forgotten {
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
