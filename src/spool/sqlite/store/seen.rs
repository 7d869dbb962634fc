//! The lists of the ids accepted recently (`seen_batches`, a row per
//! commit), read back at start and forgotten by age (a commit's ids at a
//! time) and, beyond a bound on their bytes, oldest first. The ids are
//! looked up in memory (`dedupe.rs`).

use rusqlite::{OptionalExtension, Transaction};

use super::Store;

/// What [`Store::forget_seen`] forgot.
pub(in crate::spool::sqlite) struct Forgotten {
    /// Bytes of the ids forgotten.
    pub bytes: u64,
    /// Ids forgotten before their time, to stay within the bound.
    pub early: u64,
}

impl Store {
    /// Calls `each` with every id listed, oldest first.
    pub(in crate::spool::sqlite) fn each_listed_id(
        &self,
        mut each: impl FnMut(&str),
    ) -> rusqlite::Result<()> {
        let mut statement = self
            .connection
            .prepare("SELECT ids FROM seen_batches ORDER BY n")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            row.get_ref(0)?.as_str()?.split('\n').for_each(&mut each);
        }
        Ok(())
    }

    /// Forgets the ids accepted before `before` (ms), then the oldest while
    /// the ids left take more than `max_bytes` (`bytes` is what they take
    /// now), in one transaction. `forget` forgets an id and says whether
    /// it was remembered.
    ///
    /// Commits are listed in the order they happened, at times that never
    /// go back (`NewEvents::finish`), so the ones accepted before
    /// `before` come first.
    pub(in crate::spool::sqlite) fn forget_seen(
        &mut self,
        before: i64,
        bytes: u64,
        max_bytes: u64,
        forget: &mut dyn FnMut(&str) -> bool,
    ) -> rusqlite::Result<Forgotten> {
        let transaction = self.connection.transaction()?;
        let mut last = None;
        let mut aged = 0;
        let mut next = oldest_after(&transaction, last)?;
        while let Some((n, _)) = next.take_if(|(_, accepted_at)| *accepted_at < before) {
            aged += forget_ids(&transaction, n, u64::MAX, forget)?.bytes;
            last = Some(n);
            next = oldest_after(&transaction, last)?;
        }
        let excess = bytes.saturating_sub(aged).saturating_sub(max_bytes);
        let (mut freed, mut early) = (0, 0);
        while freed < excess
            && let Some((n, _)) = next
        {
            let forgot = forget_ids(&transaction, n, excess - freed, forget)?;
            freed += forgot.bytes;
            early += forgot.count;
            if let Some(rest) = forgot.rest {
                // Enough: the commit's younger ids stay, listed.
                transaction
                    .prepare_cached("UPDATE seen_batches SET ids = ?2 WHERE n = ?1")?
                    .execute(rusqlite::params![n, rest])?;
                break;
            }
            last = Some(n);
            next = oldest_after(&transaction, last)?;
        }
        if let Some(last) = last {
            transaction
                .prepare_cached("DELETE FROM seen_batches WHERE n <= ?1")?
                .execute([last])?;
        }
        transaction.commit()?;
        Ok(Forgotten {
            bytes: aged + freed,
            early,
        })
    }
}

/// The first commit listed after the one numbered `last`: its number and
/// when it was accepted (its ids are read only if it is forgotten).
fn oldest_after(
    transaction: &Transaction,
    last: Option<i64>,
) -> rusqlite::Result<Option<(i64, i64)>> {
    transaction
        .prepare_cached("SELECT n, accepted_at FROM seen_batches WHERE n > ?1 ORDER BY n LIMIT 1")?
        .query_row([last.unwrap_or(i64::MIN)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
}

/// What [`forget_ids`] did with a commit's list.
struct Forgot {
    /// Bytes and number of the ids forgotten that were still remembered.
    bytes: u64,
    count: u64,
    /// The ids left listed, when it stopped part-way.
    rest: Option<String>,
}

/// Forgets the ids commit `n` listed, oldest first, until `enough` bytes
/// are freed.
fn forget_ids(
    transaction: &Transaction,
    n: i64,
    enough: u64,
    forget: &mut dyn FnMut(&str) -> bool,
) -> rusqlite::Result<Forgot> {
    let ids: String = transaction
        .prepare_cached("SELECT ids FROM seen_batches WHERE n = ?1")?
        .query_row([n], |row| row.get(0))?;
    let mut forgot = Forgot {
        bytes: 0,
        count: 0,
        rest: None,
    };
    let mut left = ids.as_str();
    while !left.is_empty() {
        let (id, rest) = left.split_once('\n').unwrap_or((left, ""));
        left = rest;
        if forget(id) {
            forgot.bytes += id.len() as u64;
            forgot.count += 1;
        }
        if forgot.bytes >= enough && !left.is_empty() {
            forgot.rest = Some(left.to_owned());
            break;
        }
    }
    Ok(forgot)
}
