//! What one spool commit writes besides dead letters: the new events it
//! admits, the workers' progress records, and the finished events it
//! deletes — keeping count of the bytes of event bodies stored and deleted.

use rusqlite::{OptionalExtension, params};
use tokio::sync::oneshot;

use super::{Record, dead_letters};
use crate::event::Event;
use crate::queue::{Accepted, Rejection, Work};

/// How a new event's client is answered.
pub(super) type Reply = oneshot::Sender<Result<Accepted, Rejection>>;

/// The batch's new events: each is stored (the statements prepared once per
/// batch), or refused, and its answer and its work lined up for after the
/// commit.
pub(super) struct Admission<'t, 'a> {
    transaction: &'t rusqlite::Transaction<'t>,
    remember_id: rusqlite::CachedStatement<'t>,
    insert: rusqlite::CachedStatement<'t>,
    now: i64,
    answers: &'a mut Vec<(Reply, Result<Accepted, Rejection>)>,
    dispatch: &'a mut Vec<Work>,
    /// Bytes of the bodies stored, and of the ids remembered.
    pub(super) stored_bytes: u64,
    pub(super) remembered_bytes: u64,
}

impl<'t, 'a> Admission<'t, 'a> {
    pub(super) fn prepare(
        transaction: &'t rusqlite::Transaction<'t>,
        now: i64,
        answers: &'a mut Vec<(Reply, Result<Accepted, Rejection>)>,
        dispatch: &'a mut Vec<Work>,
    ) -> rusqlite::Result<Admission<'t, 'a>> {
        Ok(Admission {
            transaction,
            remember_id: transaction
                .prepare_cached("INSERT OR IGNORE INTO seen (id, accepted_at) VALUES (?1, ?2)")?,
            insert: transaction
                .prepare_cached("INSERT INTO events (id, body, accepted_at) VALUES (?1, ?2, ?3)")?,
            now,
            answers,
            dispatch,
            stored_bytes: 0,
            remembered_bytes: 0,
        })
    }

    /// Stores the event, unless its `Id` was seen within the dedupe window
    /// (then it is answered as a duplicate and not handled again).
    /// A statement that fails fails the commit; the event is still
    /// answered, with the cause, as the rest of the batch will be.
    pub(super) fn take(&mut self, event: Event, reply: Reply) -> rusqlite::Result<()> {
        match self.store(event) {
            Ok(accepted) => {
                self.answers.push((reply, Ok(accepted)));
                Ok(())
            }
            Err(err) => {
                let cause = Rejection::Unwritable(err.to_string().into());
                self.answers.push((reply, Err(cause)));
                Err(err)
            }
        }
    }

    fn store(&mut self, event: Event) -> rusqlite::Result<Accepted> {
        let id = event.id();
        let fresh = self.remember_id.execute(params![id, self.now])? == 1;
        if fresh {
            let body = event.json();
            self.insert.execute(params![id, &body[..], self.now])?;
            self.stored_bytes += body.len() as u64;
            self.remembered_bytes += id.len() as u64;
        }
        let accepted = Accepted {
            id: id.to_owned(),
            duplicate: !fresh,
        };
        if fresh {
            let seq = self.transaction.last_insert_rowid();
            self.dispatch.push(Work::new(seq, event));
        }
        Ok(accepted)
    }

    pub(super) fn refuse(&mut self, reply: Reply, rejection: Rejection) {
        self.answers.push((reply, Err(rejection)));
    }

    /// New events stored in this batch so far.
    pub(super) fn taken(&self) -> usize {
        self.dispatch.len()
    }
}

/// Deletes the events finished in a batch, one statement per run of
/// consecutive seqs (events finish in nearly the order they came); returns
/// the bytes of their bodies.
pub(super) fn delete_events(
    transaction: &rusqlite::Transaction<'_>,
    seqs: &mut [i64],
) -> rusqlite::Result<i64> {
    seqs.sort_unstable();
    let mut delete = transaction
        .prepare_cached("DELETE FROM events WHERE seq BETWEEN ?1 AND ?2 RETURNING length(body)")?;
    let mut bytes = 0;
    for run in seqs.chunk_by(|a, b| b - a == 1) {
        for length in delete.query_map([run[0], run[run.len() - 1]], |row| row.get::<_, i64>(0))? {
            bytes += length?;
        }
    }
    Ok(bytes)
}

/// Records progress; returns whether the event left the workers' lanes
/// (finished, or waiting for a retry). A finished
/// event's progress rows are cleared when `progress_rows` says it has some.
/// An event a handler changed adds the change of its size to `grown`.
pub(super) fn apply(
    transaction: &rusqlite::Transaction<'_>,
    record: &Record,
    now: i64,
    progress_rows: bool,
    grown: &mut i64,
) -> rusqlite::Result<bool> {
    match record {
        Record::StageDone {
            seq,
            stage,
            changed,
        } => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO progress (seq, stage, state) VALUES (?1, ?2, 'done')",
                )?
                .execute(params![seq, stage])?;
            if let Some(body) = changed {
                let before: Option<i64> = transaction
                    .prepare_cached("SELECT length(body) FROM events WHERE seq = ?1")?
                    .query_row([seq], |row| row.get(0))
                    .optional()?;
                if let Some(before) = before {
                    transaction
                        .prepare_cached("UPDATE events SET body = ?2 WHERE seq = ?1")?
                        .execute(params![seq, &body[..]])?;
                    *grown += body.len() as i64 - before;
                }
            }
        }
        Record::Retry {
            seq,
            stage,
            attempts,
            first_attempt,
            due,
        } => {
            transaction.prepare_cached("INSERT OR REPLACE INTO progress (seq, stage, state, attempts, first_attempt, due_at)
                     VALUES (?1, ?2, 'retry', ?3, ?4, ?5)")?.execute(
                    params![seq, stage, attempts, first_attempt, due],
                )?;
            return Ok(true);
        }
        Record::Dead {
            seq,
            event_id,
            stage,
            event,
            error,
            attempts,
            first_attempt,
        } => {
            transaction.prepare_cached("INSERT INTO dead_letters (event_id, handler, event, error, attempts, first_attempt, last_attempt)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
                    params![event_id, stage, &event[..], error, attempts, first_attempt, now],
                )?;
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO progress (seq, stage, state) VALUES (?1, ?2, 'done')",
                )?
                .execute(params![seq, stage])?;
        }
        Record::Replayed { dead_letter, ran } => {
            dead_letters::settle_replay(transaction, *dead_letter, *ran)?;
        }
        // The event's row goes with the batch's others (`delete_events`).
        Record::Finished { seq } => {
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
