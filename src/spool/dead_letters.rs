//! Dead letters in the spool: what `jobhook deadletter` lists, marks for
//! replay and purges (from its own process), and the replays the daemon
//! takes up.

use rusqlite::{OptionalExtension, params};

use super::store::{Store, Stored};
use crate::queue::Replay;

/// One dead letter, as `jobhook deadletter list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub event_id: String,
    pub handler: String,
    pub error: String,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub first_attempt: i64,
    pub last_attempt: i64,
    pub event: serde_json::Value,
}

impl Store {
    /// Dead letters asked to be replayed: each becomes a new event that runs
    /// only its handler, and is marked as replaying (one transaction). It
    /// stays until the replay ends (`settle_replay`), so a replay whose
    /// handler does not run loses nothing.
    /// At most `limit` at a time, oldest first.
    pub fn take_replays(&mut self, now: i64, limit: usize) -> rusqlite::Result<Vec<Stored>> {
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
            transaction.execute(
                "INSERT INTO events (id, body, only_stage, replay_of, accepted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![event_id, body, handler, dead, now],
            )?;
            replays.push(Stored {
                seq: transaction.last_insert_rowid(),
                body,
                done: Vec::new(),
                resume: None,
                replay: Some(Replay {
                    handler,
                    dead_letter: dead,
                }),
            });
            transaction.execute("UPDATE dead_letters SET replay = 2 WHERE id = ?1", [dead])?;
        }
        transaction.commit()?;
        Ok(replays)
    }
}

/// Ends the replay of `dead_letter`: once its handler ran, it goes (a
/// failure has left a new one); when it did not run, it stays, no longer
/// marked for replay.
pub(super) fn settle_replay(
    transaction: &rusqlite::Transaction<'_>,
    dead_letter: i64,
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

/// Dead letters, newest last; only `handler`'s when given.
pub fn list_dead_letters(
    store: &Store,
    handler: Option<&str>,
) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut statement = store.connection.prepare(
        "SELECT id, event_id, handler, error, attempts, first_attempt, last_attempt, event
         FROM dead_letters WHERE (?1 IS NULL OR handler = ?1) ORDER BY id",
    )?;
    let rows = statement.query_map([handler], |row| {
        let body: Vec<u8> = row.get(7)?;
        Ok(DeadLetter {
            id: row.get(0)?,
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

/// What [`request_replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    /// Dead letters newly marked for replay.
    pub marked: usize,
    /// Dead letters already marked, or being replayed.
    pub already: usize,
}

/// Why [`request_replay`] marked nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "no dead letter {}{}; nothing marked for replay",
        list(.ids),
        .handler.as_ref().map(|handler| format!(" of handler `{handler}`")).unwrap_or_default()
    )]
    Unknown {
        ids: Vec<i64>,
        handler: Option<String>,
    },
    #[error(transparent)]
    Spool(#[from] rusqlite::Error),
}

fn list(ids: &[i64]) -> String {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    ids.join(", ")
}

/// Marks dead letters for replay (the daemon picks them up within a
/// second; a stopped daemon at its next start). `ids` empty: all of them.
/// An id that names no dead letter (of `handler`, when given) marks
/// nothing at all: the ids were mistyped, or listed from another spool.
pub fn request_replay(
    store: &mut Store,
    ids: &[i64],
    handler: Option<&str>,
) -> Result<Marked, ReplayError> {
    let transaction = store.transaction()?;
    let mut done = Marked {
        marked: 0,
        already: 0,
    };
    if ids.is_empty() {
        done.already = transaction.query_row(
            "SELECT COUNT(*) FROM dead_letters WHERE replay <> 0 AND (?1 IS NULL OR handler = ?1)",
            [handler],
            |row| row.get::<_, i64>(0),
        )? as usize;
        done.marked = transaction.execute(
            "UPDATE dead_letters SET replay = 1 WHERE replay = 0 AND (?1 IS NULL OR handler = ?1)",
            [handler],
        )?;
    }
    let mut unknown = Vec::new();
    for &id in ids {
        let marked = transaction
            .query_row(
                "SELECT replay FROM dead_letters WHERE id = ?1 AND (?2 IS NULL OR handler = ?2)",
                params![id, handler],
                |row| row.get::<_, i64>(0),
            )
            .optional()?;
        match marked {
            None => unknown.push(id),
            Some(0) => {
                transaction.execute("UPDATE dead_letters SET replay = 1 WHERE id = ?1", [id])?;
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
pub fn purge_dead_letters(store: &Store, before: i64) -> rusqlite::Result<usize> {
    store
        .connection
        .execute("DELETE FROM dead_letters WHERE last_attempt < ?1", [before])
}
