//! The ids accepted recently (the `seen` table), forgotten by age (a
//! commit's ids at a time, as `seen_batches` lists them) and, beyond a
//! bound on their bytes, oldest first.

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
    /// Forgets the ids accepted before `before` (ms), then the oldest while
    /// the ids left take more than `max_bytes` (`bytes` is what they take
    /// now), in one transaction.
    ///
    /// Commits are listed in the order they happened, at times that never
    /// go back (`NewEvents::list_remembered`), so the ones accepted before
    /// `before` come first.
    pub(in crate::spool::sqlite) fn forget_seen(
        &mut self,
        before: i64,
        bytes: u64,
        max_bytes: u64,
    ) -> rusqlite::Result<Forgotten> {
        let transaction = self.connection.transaction()?;
        let mut last = None;
        let mut aged = 0;
        let mut next = oldest_after(&transaction, last)?;
        while let Some((n, _)) = next.take_if(|(_, accepted_at)| *accepted_at < before) {
            aged += forget_ids(&transaction, n, u64::MAX)?.bytes;
            last = Some(n);
            next = oldest_after(&transaction, last)?;
        }
        let excess = bytes.saturating_sub(aged).saturating_sub(max_bytes);
        let (mut freed, mut early) = (0, 0);
        while freed < excess
            && let Some((n, _)) = next
        {
            let forgot = forget_ids(&transaction, n, excess - freed)?;
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
fn forget_ids(transaction: &Transaction, n: i64, enough: u64) -> rusqlite::Result<Forgot> {
    let ids: String = transaction
        .prepare_cached("SELECT ids FROM seen_batches WHERE n = ?1")?
        .query_row([n], |row| row.get(0))?;
    let mut forget = transaction.prepare_cached("DELETE FROM seen WHERE id = ?1")?;
    let mut forgot = Forgot {
        bytes: 0,
        count: 0,
        rest: None,
    };
    let mut left = ids.as_str();
    while !left.is_empty() {
        let (id, rest) = left.split_once('\n').unwrap_or((left, ""));
        left = rest;
        if forget.execute([id])? == 1 {
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

#[cfg(test)]
mod tests {
    use super::super::{Fsync, Store};

    /// Remembers `ids` in one commit accepted at `at`; the ids that were new.
    fn remember(store: &mut Store, at: i64, ids: &[&str]) -> Vec<String> {
        let batch = store.batch().unwrap();
        let mut new_events = batch.new_events().unwrap();
        let mut new = Vec::new();
        for id in ids {
            if new_events.store(id, b"{}", at).unwrap().is_some() {
                new.push(id.to_string());
            }
        }
        new_events.list_remembered(at).unwrap();
        drop(new_events);
        batch.commit().unwrap();
        new
    }

    #[test]
    fn ids_are_forgotten_a_commit_at_a_time_by_age_then_oldest_first_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Fsync::Never).unwrap();
        assert_eq!(remember(&mut store, 1_000, &["a", "bb", "a"]), ["a", "bb"]);
        assert_eq!(remember(&mut store, 2_000, &["ccc", "a"]), ["ccc"]);
        assert_eq!(remember(&mut store, 3_000, &["dddd"]), ["dddd"]);
        assert_eq!(remember(&mut store, 4_000, &["eeeee"]), ["eeeee"]);
        assert_eq!(store.seen_bytes().unwrap(), 15);

        // By age: the first commit only.
        let forgotten = store.forget_seen(1_500, 15, 100).unwrap();
        assert_eq!((forgotten.bytes, forgotten.early), (3, 0));
        assert_eq!(store.seen_bytes().unwrap(), 12);

        // Past a bound of 6 bytes: the oldest commits until within it.
        let forgotten = store.forget_seen(1_500, 12, 6).unwrap();
        assert_eq!((forgotten.bytes, forgotten.early), (7, 2));
        assert_eq!(store.seen_bytes().unwrap(), 5);

        // What is forgotten is new again; what is not, a duplicate.
        assert_eq!(
            remember(&mut store, 5_000, &["a", "ccc", "eeeee"]),
            ["a", "ccc"]
        );

        // Within one commit, the oldest ids only; the rest stay listed.
        remember(&mut store, 6_000, &["f1", "f2", "f3", "f4"]);
        let bytes = store.seen_bytes().unwrap();
        assert_eq!(bytes, 5 + 4 + 8);
        let forgotten = store.forget_seen(0, bytes, 8).unwrap();
        assert_eq!((forgotten.bytes, forgotten.early), (9, 3), "eeeee, a, ccc");
        let forgotten = store.forget_seen(0, 8, 4).unwrap();
        assert_eq!((forgotten.bytes, forgotten.early), (4, 2), "f1 and f2");
        assert_eq!(remember(&mut store, 7_000, &["f2", "f3", "f4"]), ["f2"]);
        let forgotten = store.forget_seen(8_000, 6, 100).unwrap();
        assert_eq!(forgotten.bytes, 6, "f3 and f4, listed still, and f2");
        let listed: i64 = store
            .connection
            .query_row("SELECT count(*) FROM seen_batches", [], |row| row.get(0))
            .unwrap();
        assert_eq!(listed, 0, "the lists of forgotten commits go with them");
    }

    #[test]
    fn a_spool_with_seen_indexed_by_time_lists_its_ids_by_time_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Fsync::Never).unwrap();
        store
            .connection
            .execute_batch(
                "DROP TABLE seen_batches;
                 CREATE INDEX seen_by_time ON seen (accepted_at);
                 INSERT INTO seen (id, accepted_at) VALUES ('old1', 10), ('old2', 10), ('new', 90);",
            )
            .unwrap();
        drop(store);
        let indexed = |store: &Store| -> i64 {
            store
                .connection
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'seen_by_time'",
                    [],
                    |row| row.get(0),
                )
                .unwrap()
        };
        // `jobhook deadletter` (no lock) leaves it to the daemon.
        let beside = Store::open_existing(dir.path(), Fsync::Never).unwrap();
        assert_eq!(indexed(&beside), 1, "not converted without the lock");
        drop(beside);
        let mut store = Store::open(dir.path(), Fsync::Never).unwrap();
        assert_eq!(indexed(&store), 0, "the index is dropped");
        let forgotten = store.forget_seen(50, 11, 100).unwrap();
        assert_eq!((forgotten.bytes, forgotten.early), (8, 0));
        assert_eq!(remember(&mut store, 100, &["old1", "new"]), ["old1"]);
    }
}
