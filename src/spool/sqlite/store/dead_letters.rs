//! Dead letters in the spool: what `jobhook deadletter` lists, marks for
//! replay and purges (from its own process), and the replays the daemon
//! takes up.

use rusqlite::{OptionalExtension, params};

use super::{INSERT_EVENT, Store, Stored};
use crate::spool::dead_letters::{DeadLetter, Marked, ReplayError};
use crate::spool::protocol::{DeadLetterId, Receipt, Replay};

impl Store {
    /// Dead letters asked to be replayed: each becomes a new event that runs
    /// only its handler, and is marked as replaying (one transaction). It
    /// stays until the replay ends (`settle_replay`), so a replay whose
    /// handler does not run loses nothing.
    /// At most `limit` at a time, oldest first.
    pub(in crate::spool::sqlite) fn take_replays(
        &mut self,
        now: i64,
        limit: usize,
    ) -> rusqlite::Result<Vec<Stored>> {
        let transaction = self.connection.transaction()?;
        let requested: Vec<(i64, String, Vec<u8>, String)> = {
            let mut statement = transaction.prepare(
                "SELECT id, event_id, event, handler FROM dead_letters WHERE replay = 1 \
                 ORDER BY id LIMIT ?1",
            )?;
            statement
                .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut replays = Vec::new();
        for (dead, event_id, body, handler) in requested {
            let seq = self.packing.take_seq();
            transaction
                .prepare_cached(INSERT_EVENT)?
                .execute(params![seq, event_id, body, handler, dead, now])?;
            replays.push(Stored {
                receipt: Receipt(seq),
                body,
                done: Vec::new(),
                resume: None,
                replay: Some(Replay {
                    handler,
                    dead_letter: DeadLetterId(dead),
                }),
            });
            transaction.execute("UPDATE dead_letters SET replay = 2 WHERE id = ?1", [dead])?;
        }
        transaction.commit()?;
        Ok(replays)
    }

    /// Dead letters, newest last; only `handler`'s when given.
    pub(in crate::spool::sqlite) fn dead_letters(
        &self,
        handler: Option<&str>,
    ) -> rusqlite::Result<Vec<DeadLetter>> {
        let mut statement = self.connection.prepare(
            "SELECT id, event_id, handler, error, attempts, first_attempt, last_attempt, event
         FROM dead_letters WHERE (?1 IS NULL OR handler = ?1) ORDER BY id",
        )?;
        let rows = statement.query_map([handler], |row| {
            let body: Vec<u8> = row.get(7)?;
            Ok(DeadLetter {
                id: DeadLetterId(row.get(0)?),
                event_id: row.get(1)?,
                handler: row.get(2)?,
                error: row.get(3)?,
                attempts: row.get(4)?,
                first_attempt: row.get(5)?,
                last_attempt: row.get(6)?,
                event: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            })
        })?;
        rows.collect()
    }

    /// Marks dead letters for replay, as
    /// [`DeadLetters::request_replay`](crate::spool::DeadLetters::request_replay) says.
    pub(in crate::spool::sqlite) fn mark_for_replay(
        &mut self,
        ids: &[DeadLetterId],
        handler: Option<&str>,
    ) -> Result<Marked, ReplayError> {
        let transaction = self.connection.transaction()?;
        let mut done = Marked {
            marked: 0,
            already: 0,
        };
        if ids.is_empty() {
            done.already = transaction.query_row(
                "SELECT COUNT(*) FROM dead_letters \
                 WHERE replay <> 0 AND (?1 IS NULL OR handler = ?1)",
                [handler],
                |row| row.get::<_, i64>(0),
            )? as usize;
            done.marked = transaction.execute(
                "UPDATE dead_letters SET replay = 1 \
                 WHERE replay = 0 AND (?1 IS NULL OR handler = ?1)",
                [handler],
            )?;
        }
        let mut unknown = Vec::new();
        for &DeadLetterId(id) in ids {
            let marked = transaction
                .query_row(
                    "SELECT replay FROM dead_letters \
                     WHERE id = ?1 AND (?2 IS NULL OR handler = ?2)",
                    params![id, handler],
                    |row| row.get::<_, i64>(0),
                )
                .optional()?;
            match marked {
                None => unknown.push(DeadLetterId(id)),
                Some(0) => {
                    transaction
                        .execute("UPDATE dead_letters SET replay = 1 WHERE id = ?1", [id])?;
                    done.marked += 1;
                }
                Some(_) => done.already += 1,
            }
        }
        if !unknown.is_empty() {
            return Err(ReplayError::Unknown {
                ids: unknown,
                handler: handler.map(str::to_owned),
            });
        }
        transaction.commit()?;
        Ok(done)
    }

    /// Deletes dead letters whose last attempt is before `before` (ms).
    pub(in crate::spool::sqlite) fn purge_dead_letters(
        &self,
        before: i64,
    ) -> rusqlite::Result<usize> {
        self.connection
            .execute("DELETE FROM dead_letters WHERE last_attempt < ?1", [before])
    }
}

/// Ends the replay of `dead_letter`: once its handler ran, it goes (a
/// failure has left a new one); when it did not run, it stays, no longer
/// marked for replay.
pub(super) fn settle_replay(
    transaction: &rusqlite::Transaction<'_>,
    DeadLetterId(dead_letter): DeadLetterId,
    ran: bool,
) -> rusqlite::Result<()> {
    let statement = if ran {
        "DELETE FROM dead_letters WHERE id = ?1"
    } else {
        "UPDATE dead_letters SET replay = 0 WHERE id = ?1"
    };
    transaction
        .prepare_cached(statement)?
        .execute([dead_letter])?;
    Ok(())
}
