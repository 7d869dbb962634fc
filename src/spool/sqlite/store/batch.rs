//! What one group commit writes: the new events it admits (in packs, with
//! the cursors of the sources that brought them), the workers' progress
//! records, and the finished events it deletes — keeping count of the
//! bytes of event bodies stored and deleted.

use std::borrow::Cow;
use std::cell::RefCell;

use rusqlite::{OptionalExtension, Transaction, params};

use super::packs::{Pack, Packing, ReadBack};
use super::{INSERT_EVENT, Store, dead_letters};
use crate::spool::protocol::{Dead, Receipt, Record, Retry, StageDone};

/// Marks a handler done with an event: it is not run again for it.
const STAGE_DONE: &str =
    "INSERT OR REPLACE INTO progress (seq, stage, state) VALUES (?1, ?2, 'done')";

/// What [`Batch::delete_events`] deleted.
#[derive(Debug, Default)]
pub(in crate::spool::sqlite) struct Deleted {
    pub(in crate::spool::sqlite) events: u64,
    pub(in crate::spool::sqlite) bytes: i64,
}

/// One group commit's transaction: nothing of it is kept unless
/// [`Batch::commit`] succeeds.
pub(in crate::spool::sqlite) struct Batch<'c> {
    transaction: Transaction<'c>,
    packing: &'c mut Packing,
    /// The store's last pack read (an event taken out of its pack for a
    /// retry is read from it; the retries of an outage come in order).
    read_back: &'c RefCell<ReadBack>,
}

/// Stores a batch's new events.
pub(in crate::spool::sqlite) struct NewEvents<'t> {
    transaction: &'t Transaction<'t>,
    packing: &'t mut Packing,
    /// The ids remembered so far, newline-separated: one `seen_batches`
    /// row ([`NewEvents::finish`]).
    remembered: String,
}

impl Store {
    pub(in crate::spool::sqlite) fn batch(&mut self) -> rusqlite::Result<Batch<'_>> {
        Ok(Batch {
            transaction: self.connection.transaction()?,
            packing: &mut self.packing,
            read_back: &self.read_back,
        })
    }
}

impl<'c> Batch<'c> {
    pub(in crate::spool::sqlite) fn new_events(&mut self) -> NewEvents<'_> {
        // What a failed commit left in it is not to be written.
        self.packing.forget();
        NewEvents {
            transaction: &self.transaction,
            packing: self.packing,
            remembered: String::new(),
        }
    }

    pub(in crate::spool::sqlite) fn commit(self) -> rusqlite::Result<()> {
        self.transaction.commit()
    }

    /// Deletes the events finished in a batch: marks them gone from their
    /// packs (a pack goes with its last event), and deletes those in rows
    /// of `events` one statement per run of consecutive rows. Says how
    /// many events went, and the bytes of the packs and rows deleted.
    ///
    /// The rows are counted by a query before the delete rather than by
    /// `DELETE … RETURNING`: SQLite gathers returned rows in a temporary
    /// table, which cost a quarter of the spool's time per event.
    pub(in crate::spool::sqlite) fn delete_events(
        &self,
        finished: &mut [Receipt],
    ) -> rusqlite::Result<Deleted> {
        finished.sort_unstable_by_key(|receipt| receipt.0);
        let mut deleted = Deleted::default();
        let mut in_rows = Vec::new();
        let mut rest = &finished[..];
        while let Some(Receipt(first)) = rest.first() {
            let Some(pack) = Pack::of(&self.transaction, *first)? else {
                in_rows.push(*first);
                rest = &rest[1..];
                continue;
            };
            let (in_pack, after) = rest.split_at(rest.partition_point(|r| r.0 < pack.end()));
            let gone = pack.finish(
                &self.transaction,
                in_pack.iter().map(|receipt| receipt.0),
                &mut in_rows,
            )?;
            deleted.events += gone.events;
            deleted.bytes += gone.freed;
            rest = after;
        }
        let mut measure = self.transaction.prepare_cached(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM events \
             WHERE seq BETWEEN ?1 AND ?2",
        )?;
        let mut delete = self
            .transaction
            .prepare_cached("DELETE FROM events WHERE seq BETWEEN ?1 AND ?2")?;
        in_rows.sort_unstable();
        for run in in_rows.chunk_by(|a, b| b - a == 1) {
            let range = [run[0], run[run.len() - 1]];
            let (events, bytes) = measure.query_row(range, |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })?;
            delete.execute(range)?;
            deleted.events += events as u64;
            deleted.bytes += bytes;
        }
        Ok(deleted)
    }

    /// Records progress; returns whether the event left the workers' lanes
    /// (finished, or waiting for a retry). A finished event's progress rows
    /// are cleared when `progress_rows` says it has some. What a change of
    /// body, or an event taken out of its pack to wait for a retry, adds to
    /// the pending bytes is added to `grown`.
    pub(in crate::spool::sqlite) fn apply(
        &self,
        record: &Record,
        now: i64,
        progress_rows: bool,
        grown: &mut i64,
    ) -> rusqlite::Result<bool> {
        let transaction = &self.transaction;
        match record {
            Record::StageDone(StageDone {
                receipt: Receipt(seq),
                stage,
                changed,
            }) => {
                transaction
                    .prepare_cached(STAGE_DONE)?
                    .execute(params![seq, stage])?;
                if let Some(body) = changed {
                    *grown += self.change(*seq, body)?;
                }
            }
            Record::Retry(Retry {
                receipt: Receipt(seq),
                stage,
                attempts,
                first_attempt,
                due,
            }) => {
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO progress \
                         (seq, stage, state, attempts, first_attempt, due_at) \
                         VALUES (?1, ?2, 'retry', ?3, ?4, ?5)",
                    )?
                    .execute(params![seq, stage, attempts, first_attempt, due])?;
                *grown += self.take_out(*seq, None)?;
                return Ok(true);
            }
            Record::Dead(Dead {
                receipt: Receipt(seq),
                event_id,
                stage,
                event,
                error,
                attempts,
                first_attempt,
            }) => {
                transaction
                    .prepare_cached(
                        "INSERT INTO dead_letters \
                         (event_id, handler, event, error, attempts, first_attempt, last_attempt) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        event_id,
                        stage,
                        &event[..],
                        error,
                        attempts,
                        first_attempt,
                        now
                    ])?;
                transaction
                    .prepare_cached(STAGE_DONE)?
                    .execute(params![seq, stage])?;
            }
            Record::Replayed { dead_letter, ran } => {
                dead_letters::settle_replay(transaction, *dead_letter, *ran)?;
            }
            // The event goes with the batch's others (`delete_events`).
            Record::Finished(Receipt(seq)) => {
                if progress_rows {
                    transaction
                        .prepare_cached("DELETE FROM progress WHERE seq = ?1")?
                        .execute([seq])?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Batch<'_> {
    /// Stores the body a handler gave event `seq`: in its row, or in a row
    /// taken out of its pack. Says by how many bytes the pending events
    /// grew.
    fn change(&self, seq: i64, body: &[u8]) -> rusqlite::Result<i64> {
        let transaction = &self.transaction;
        let before: Option<i64> = transaction
            .prepare_cached("SELECT length(body) FROM events WHERE seq = ?1")?
            .query_row([seq], |row| row.get(0))
            .optional()?;
        if let Some(before) = before {
            transaction
                .prepare_cached("UPDATE events SET body = ?2 WHERE seq = ?1")?
                .execute(params![seq, body])?;
            return Ok(body.len() as i64 - before);
        }
        self.take_out(seq, Some(body))
    }

    /// Moves event `seq` out of its pack into a row of `events`, with
    /// `changed` as its body or the one the pack holds: for an event a
    /// handler changed, and for one that waits for a retry, which may wait
    /// for hours and would hold its whole pack's bytes until then. The
    /// pack goes once none of its events is left in it. Says by how many
    /// bytes the pending events grew; nothing is done for an event in no
    /// pack, or gone from it (finished, or in a row already).
    fn take_out(&self, seq: i64, changed: Option<&[u8]>) -> rusqlite::Result<i64> {
        let transaction = &self.transaction;
        let Some(pack) = Pack::of(transaction, seq)? else {
            return Ok(0);
        };
        let taken = pack.take_out(transaction, seq, || match changed {
            Some(body) => Ok(Cow::Borrowed(body)),
            None => (self.read_back.borrow_mut())
                .body(transaction, &pack, seq)
                .map(Cow::Owned),
        })?;
        let Some((body, freed)) = taken else {
            return Ok(0);
        };
        // The id column is left empty: the body holds the id, and nothing
        // reads the column (`schema.rs`).
        transaction.prepare_cached(INSERT_EVENT)?.execute(params![
            seq,
            "",
            &body[..],
            None::<String>,
            None::<i64>,
            pack.accepted_at
        ])?;
        Ok(body.len() as i64 - freed)
    }
}

impl NewEvents<'_> {
    /// Stores an event whose `Id` is new (`dedupe.rs` decides), listing
    /// the id with the commit's: its receipt.
    pub(in crate::spool::sqlite) fn store(
        &mut self,
        id: &str,
        body: &[u8],
        now: i64,
    ) -> rusqlite::Result<Receipt> {
        if !self.remembered.is_empty() {
            self.remembered.push('\n');
        }
        self.remembered.push_str(id);
        self.packing.add(self.transaction, body, now).map(Receipt)
    }

    /// Writes the last pack, and lists the ids this commit remembered, as
    /// accepted at `now`, for forgetting them by age (`seen.rs`). The
    /// lists' times never go back: after the clock went back, a commit is
    /// listed at the last time written, so its ids are remembered longer
    /// by at most the jump.
    pub(in crate::spool::sqlite) fn finish(&mut self, now: i64) -> rusqlite::Result<()> {
        self.packing.write(self.transaction, now)?;
        if self.remembered.is_empty() {
            return Ok(());
        }
        self.transaction
            .prepare_cached(
                "INSERT INTO seen_batches (accepted_at, ids) VALUES (max(?1, coalesce(\
                 (SELECT accepted_at FROM seen_batches ORDER BY n DESC LIMIT 1), ?1)), ?2)",
            )?
            .execute(params![now, &self.remembered])?;
        self.remembered.clear();
        Ok(())
    }

    /// Sets where `source` stands, in the same transaction as its events.
    pub(in crate::spool::sqlite) fn set_cursor(
        &self,
        source: &str,
        cursor: &str,
    ) -> rusqlite::Result<()> {
        self.transaction
            .prepare_cached(
                "INSERT INTO source_cursors (source, cursor) VALUES (?1, ?2) \
                 ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
            )?
            .execute(params![source, cursor])?;
        Ok(())
    }
}
