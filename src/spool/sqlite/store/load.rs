//! Reading events back into the lanes: the backlog (runs of consecutive
//! events), due retries, and events left from the last run.

use std::collections::HashSet;

use rusqlite::Row;
use tracing::error;

use super::{Store, Stored, packs};
use crate::spool::protocol::{DeadLetterId, Receipt, Replay, Resume};

/// The events from one seq to another, as stored now (after any
/// transforms), with the dead letter each replays.
const EVENTS_BETWEEN: &str = "SELECT seq, body, only_stage, replay_of FROM events \
                              WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq";

impl Store {
    /// The events of `receipts` in one read transaction (one per event
    /// took the log's shared lock, an `fcntl`, each time). Consecutive
    /// ones, as the backlog's are, are read by one query that steps from
    /// row to row rather than one that looks each up. Only the events in
    /// `with_progress` have progress rows to read: most of the backlog is
    /// events no handler has seen yet.
    pub(in crate::spool::sqlite) fn load_all(
        &self,
        receipts: &[Receipt],
        with_progress: &HashSet<Receipt>,
    ) -> Vec<rusqlite::Result<Option<Stored>>> {
        // Reads only: there is nothing to lose if it cannot begin.
        let transaction = self.connection.unchecked_transaction().ok();
        let mut loaded = Vec::with_capacity(receipts.len());
        for run in receipts.chunk_by(|a, b| b.0 - a.0 == 1) {
            match self.load_run(run, with_progress) {
                Ok(run) => loaded.extend(run.into_iter().map(Ok)),
                // Read again one by one, so that each event has its own
                // answer: the one that cannot be read, and the others.
                Err(_) => loaded.extend(run.iter().map(|receipt| {
                    self.load_run(std::slice::from_ref(receipt), with_progress)
                        .map(|mut one| one.pop().flatten())
                })),
            }
        }
        // Ended here rather than on drop, which would hide a failure: a
        // transaction left open would make every later commit fail.
        if let Some(transaction) = transaction
            && let Err(err) = transaction.rollback()
        {
            error!(spool = %self.path.display(), "cannot end a read of the backlog: {err}");
        }
        loaded
    }

    /// The events of `run`, consecutive receipts, from their rows or their
    /// packs: `None` for one no longer in the spool.
    fn load_run(
        &self,
        run: &[Receipt],
        with_progress: &HashSet<Receipt>,
    ) -> rusqlite::Result<Vec<Option<Stored>>> {
        let first = run[0].0;
        let mut loaded: Vec<Option<Stored>> =
            std::iter::repeat_with(|| None).take(run.len()).collect();
        let mut statement = self.connection.prepare_cached(EVENTS_BETWEEN)?;
        let mut rows = statement.query([first, run[run.len() - 1].0])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let place = usize::try_from(seq - first)
                .ok()
                .and_then(|at| loaded.get_mut(at));
            if let Some(place) = place {
                *place = Some(stored_from(Receipt(seq), row)?);
            }
        }
        let last = run[run.len() - 1].0;
        let mut read_back = self.read_back.borrow_mut();
        packs::bodies_between(
            &self.connection,
            &mut read_back,
            first,
            last,
            |seq, body| {
                if let Some(place @ None) = loaded.get_mut((seq - first) as usize) {
                    *place = Some(Stored {
                        receipt: Receipt(seq),
                        body: body.to_vec(),
                        done: Vec::new(),
                        resume: None,
                        replay: None,
                    });
                }
            },
        )?;
        for stored in loaded.iter_mut().flatten() {
            if with_progress.contains(&stored.receipt) {
                self.read_progress(stored)?;
            }
        }
        Ok(loaded)
    }

    /// Adds the handlers done with `stored`, and the retry it waits for.
    fn read_progress(&self, stored: &mut Stored) -> rusqlite::Result<()> {
        let mut statement = self.connection.prepare_cached(
            "SELECT stage, state, attempts, first_attempt FROM progress WHERE seq = ?1",
        )?;
        let rows = statement.query_map([stored.receipt.0], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        })?;
        for row in rows {
            let (stage, state, attempts, first) = row?;
            match state.as_str() {
                "done" => stored.done.push(stage),
                _ => {
                    stored.resume = Some(Resume {
                        stage,
                        attempts,
                        first_attempt: first.unwrap_or(0),
                    })
                }
            }
        }
        Ok(())
    }
}

/// An event read by [`EVENTS_BETWEEN`], nothing done yet.
fn stored_from(receipt: Receipt, row: &Row) -> rusqlite::Result<Stored> {
    let replay = match (row.get(2)?, row.get(3)?) {
        (Some(handler), Some(dead_letter)) => Some(Replay {
            handler,
            dead_letter: DeadLetterId(dead_letter),
        }),
        _ => None,
    };
    Ok(Stored {
        receipt,
        body: row.get(1)?,
        done: Vec::new(),
        resume: None,
        replay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Fsync;

    #[test]
    fn a_run_is_read_whole_with_the_gaps_and_progress_of_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Fsync::Never).unwrap();
        let receipts: Vec<Receipt> = (1..=5)
            .map(|i| {
                let body = format!(r#"{{"Id":"e{i}"}}"#);
                store
                    .insert_event(&format!("e{i}"), body.as_bytes(), 0)
                    .unwrap()
            })
            .collect();
        let [_, _, gone, progressed, _] = receipts[..] else {
            panic!("five receipts")
        };
        store
            .connection
            .execute("DELETE FROM events WHERE seq = ?1", [gone.0])
            .unwrap();
        store
            .connection
            .execute(
                "INSERT INTO progress (seq, stage, state) VALUES (?1, 'first', 'done')",
                [progressed.0],
            )
            .unwrap();
        let with_progress = HashSet::from([progressed]);

        // The backlog's run, then receipts out of order (due retries).
        let out_of_order = [receipts[4], receipts[0]];
        for asked in [&receipts[..], &out_of_order[..]] {
            let loaded = store.load_all(asked, &with_progress);
            assert_eq!(loaded.len(), asked.len());
            for (receipt, loaded) in asked.iter().zip(loaded) {
                let loaded = loaded.unwrap();
                if *receipt == gone {
                    assert!(loaded.is_none(), "a deleted event came back");
                    continue;
                }
                let stored = loaded.expect("an event in the spool was not read");
                assert_eq!(stored.receipt, *receipt);
                let i = receipt.0 - receipts[0].0 + 1;
                assert_eq!(stored.body, format!(r#"{{"Id":"e{i}"}}"#).into_bytes());
                let done: &[&str] = if *receipt == progressed {
                    &["first"]
                } else {
                    &[]
                };
                assert_eq!(stored.done, done, "for e{i}");
            }
        }
    }

    #[test]
    fn an_event_that_cannot_be_read_fails_alone_and_its_run_is_read_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Fsync::Never).unwrap();
        let receipts: Vec<Receipt> = (1..=3)
            .map(|i| store.insert_event(&format!("e{i}"), b"{}", 0).unwrap())
            .collect();
        // A body stored as text, not bytes, fails to read back (as a
        // damaged row would): the range query fails with it.
        store
            .connection
            .execute(
                "UPDATE events SET body = CAST(body AS TEXT) WHERE seq = ?1",
                [receipts[1].0],
            )
            .unwrap();
        let loaded = store.load_all(&receipts, &HashSet::new());
        let read: Vec<Option<Receipt>> = loaded
            .iter()
            .map(|loaded| {
                loaded
                    .as_ref()
                    .ok()
                    .map(|stored| stored.as_ref().unwrap().receipt)
            })
            .collect();
        assert_eq!(read, [Some(receipts[0]), None, Some(receipts[2])]);
    }
}
