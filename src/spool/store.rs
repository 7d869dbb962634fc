//! The spool's SQLite database (WAL): accepted events, each handler's
//! progress on them, the ids seen recently, and dead letters.
//!
//! Only the spool thread writes during normal work; `jobhook deadletter`
//! opens the same file from another process (SQLite's locking makes that
//! safe) to list, replay and purge.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Deserialize;

use crate::queue::Resume;

/// What `fsync` asks of each commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Every event is committed and synced on its own before its ack.
    Always,
    /// Events arriving together are committed and synced together before
    /// their acks: every ack is durable, even across a power loss.
    #[default]
    Batch,
    /// Commits are not synced: an ack survives the process being killed, not
    /// the machine losing power.
    Never,
}

pub const FILE_NAME: &str = "spool.db";

/// The write-ahead log is copied into the database once it holds this many
/// pages (64 MiB), not SQLite's 1,000: an event's rows are written and
/// deleted within seconds, so a longer log copies each page once for many
/// commits (6% less CPU per event under load).
const CHECKPOINT_PAGES: u32 = 16_384;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    -- No AUTOINCREMENT (it costs a write per insert, ~15%): a seq freed by a
    -- finished event may be reused, which is safe as nothing refers to a
    -- finished event's seq any more.
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    only_stage TEXT,
    accepted_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    seq INTEGER NOT NULL,
    stage TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt INTEGER,
    due_at INTEGER,
    PRIMARY KEY (seq, stage)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    id TEXT PRIMARY KEY,
    accepted_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (accepted_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    event BLOB NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_attempt INTEGER NOT NULL,
    last_attempt INTEGER NOT NULL,
    replay INTEGER NOT NULL DEFAULT 0
);
-- Looked for every second: without it, every dead letter is read each time.
CREATE INDEX IF NOT EXISTS dead_letters_to_replay ON dead_letters (id) WHERE replay = 1;
";

/// An event that was accepted and not finished, as the spool holds it.
#[derive(Debug)]
pub struct Stored {
    pub seq: i64,
    pub body: Vec<u8>,
    /// Handlers that already succeeded for it.
    pub done: Vec<String>,
    /// Where a waiting retry picks up (its due time is read at start).
    pub resume: Option<Resume>,
    /// Replays run only this handler.
    pub only: Option<String>,
}

/// The events a start finds not finished.
pub struct Unfinished {
    /// Seqs to hand to the lanes, oldest first.
    pub to_run: Vec<i64>,
    /// Events waiting for a retry: (due, seq).
    pub waiting: Vec<(i64, i64)>,
}

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

pub struct Store {
    connection: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the spool in `dir`. A file that is not a
    /// healthy spool is an error naming it — never replaced by an empty one.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|err| format!("cannot create spool_dir {}: {err}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let unreadable = |err: &dyn std::fmt::Display| {
            format!(
                "the spool {} is unreadable ({err}). Accepted events may be in it, so jobhook \
                 will not start with an empty one by itself: inspect it with `sqlite3 {} \
                 'PRAGMA integrity_check'`, or move it aside to start with an empty spool.",
                path.display(),
                path.display()
            )
        };
        let connection = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|err| unreadable(&err))?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(|err| unreadable(&err))?;
        let synchronous = match fsync {
            Fsync::Always | Fsync::Batch => "FULL",
            Fsync::Never => "OFF",
        };
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
                 PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES};"
            ))
            .map_err(|err| unreadable(&err))?;
        let check: String = connection
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(|err| unreadable(&err))?;
        if check != "ok" {
            return Err(unreadable(&format!("quick_check: {check}")));
        }
        connection
            .execute_batch(SCHEMA)
            .map_err(|err| unreadable(&err))?;
        Ok(Store { connection, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn transaction(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        self.connection.transaction()
    }

    /// Bytes the spool's live pages take (free pages are reused, so the file
    /// itself does not shrink).
    pub fn used_bytes(&self) -> u64 {
        let pragma = |name: &str| -> i64 {
            self.connection
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                .unwrap_or(0)
        };
        let pages = pragma("page_count") - pragma("freelist_count");
        (pages.max(0) as u64) * pragma("page_size").max(0) as u64
    }

    /// Events accepted and not finished.
    pub fn pending(&self) -> rusqlite::Result<u64> {
        self.connection
            .query_row("SELECT COUNT(*) FROM events", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|count| count.max(0) as u64)
    }

    /// Where the events not finished stand, without loading them: those
    /// to run, in acceptance order, and those waiting for a retry.
    pub fn unfinished(&self) -> rusqlite::Result<Unfinished> {
        let waiting: Vec<(i64, i64)> = self
            .connection
            .prepare(
                "SELECT coalesce(p.due_at, 0), p.seq FROM progress p \
                 JOIN events e ON e.seq = p.seq WHERE p.state = 'retry'",
            )?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let to_run = self
            .connection
            .prepare(
                "SELECT seq FROM events WHERE seq NOT IN \
                 (SELECT seq FROM progress WHERE state = 'retry') ORDER BY seq",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Unfinished { to_run, waiting })
    }

    /// The event `seq` as stored now (after any transforms).
    pub fn load(&self, seq: i64) -> rusqlite::Result<Option<Stored>> {
        let found = self
            .connection
            .query_row(
                "SELECT body, only_stage FROM events WHERE seq = ?1",
                [seq],
                |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Option<String>>(1)?)),
            )
            .optional()?;
        let Some((body, only)) = found else {
            return Ok(None);
        };
        let mut statement = self.connection.prepare_cached(
            "SELECT stage, state, attempts, first_attempt FROM progress WHERE seq = ?1",
        )?;
        let mut done = Vec::new();
        let mut resume = None;
        let rows = statement.query_map([seq], |row| {
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
                "done" => done.push(stage),
                _ => {
                    resume = Some(Resume {
                        stage,
                        attempts,
                        first_attempt: first.unwrap_or(0),
                    })
                }
            }
        }
        Ok(Some(Stored {
            seq,
            body,
            done,
            resume,
            only,
        }))
    }

    /// Dead letters asked to be replayed: each becomes a new event that runs
    /// only its handler, and the dead letter goes (one transaction).
    pub fn take_replays(&mut self, now: i64) -> rusqlite::Result<Vec<Stored>> {
        let transaction = self.connection.transaction()?;
        let requested: Vec<(i64, String, Vec<u8>, String)> = {
            let mut statement = transaction.prepare(
                "SELECT id, event_id, event, handler FROM dead_letters WHERE replay = 1 ORDER BY id",
            )?;
            statement
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut replays = Vec::new();
        for (dead, event_id, body, handler) in requested {
            transaction.execute(
                "INSERT INTO events (id, body, only_stage, accepted_at) VALUES (?1, ?2, ?3, ?4)",
                params![event_id, body, handler, now],
            )?;
            replays.push(Stored {
                seq: transaction.last_insert_rowid(),
                body,
                done: Vec::new(),
                resume: None,
                only: Some(handler),
            });
            transaction.execute("DELETE FROM dead_letters WHERE id = ?1", [dead])?;
        }
        transaction.commit()?;
        Ok(replays)
    }
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

/// Marks dead letters for replay (the daemon picks them up within a
/// second; a stopped daemon at its next start). `ids` empty: all of them.
pub fn request_replay(
    store: &Store,
    ids: &[i64],
    handler: Option<&str>,
) -> rusqlite::Result<usize> {
    if ids.is_empty() {
        return store.connection.execute(
            "UPDATE dead_letters SET replay = 1 WHERE (?1 IS NULL OR handler = ?1)",
            [handler],
        );
    }
    let mut marked = 0;
    for id in ids {
        marked += store.connection.execute(
            "UPDATE dead_letters SET replay = 1 WHERE id = ?1 AND (?2 IS NULL OR handler = ?2)",
            params![id, handler],
        )?;
    }
    Ok(marked)
}

/// Deletes dead letters whose last attempt is before `before` (ms).
pub fn purge_dead_letters(store: &Store, before: i64) -> rusqlite::Result<usize> {
    store
        .connection
        .execute("DELETE FROM dead_letters WHERE last_attempt < ?1", [before])
}
