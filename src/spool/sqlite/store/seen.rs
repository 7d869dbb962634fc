//! The ids accepted recently (the `seen` table), forgotten by age and,
//! beyond a bound on their bytes, oldest first.

use super::Store;

/// What [`Store::forget_seen`] forgot.
pub(in crate::spool::sqlite) struct Forgotten {
    /// Bytes of the ids forgotten.
    pub bytes: u64,
    /// Ids forgotten before their time, to stay within the bound.
    pub early: u64,
}

impl Store {
    /// Forgets the ids accepted before `before` (ms), then the oldest while
    /// the ids left take more than `max_bytes` (`bytes` is what they take
    /// now), in one transaction.
    pub(in crate::spool::sqlite) fn forget_seen(
        &mut self,
        before: i64,
        bytes: u64,
        max_bytes: u64,
    ) -> rusqlite::Result<Forgotten> {
        let transaction = self.connection.transaction()?;
        let mut aged = 0;
        for length in transaction
            .prepare_cached("DELETE FROM seen WHERE accepted_at < ?1 RETURNING octet_length(id)")?
            .query_map([before], |row| row.get::<_, i64>(0))?
        {
            aged += length?.max(0) as u64;
        }
        let excess = bytes.saturating_sub(aged).saturating_sub(max_bytes);
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
        Ok(Forgotten {
            bytes: aged + freed,
            early: oldest.len() as u64,
        })
    }
}
