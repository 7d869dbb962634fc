//! The run marker: a row in `spool.db` that says whether the daemon's last
//! run stopped cleanly, which is how a lost write-ahead log is told from a
//! spool with nothing in it.
//!
//! Commits go to `spool.db-wal` and reach `spool.db` only at a checkpoint
//! (every 64 MiB, and when the last connection closes, which then deletes
//! the log). So at start the daemon writes the marker — its first write,
//! which also proves the spool can be written — and checkpoints: the schema
//! and the marker are in `spool.db` itself. A clean stop marks the run
//! stopped. A start that finds the last run not stopped and no log beside
//! `spool.db` knows the log was lost, with whatever was acked since the
//! last checkpoint, and refuses instead of starting with what is left.
//! Every connection keeps the log when it closes (persistent WAL) unless
//! the daemon's run ended cleanly, so neither `jobhook deadletter` after a
//! crash nor a start that failed part-way (a socket it could not bind) looks
//! like a loss to the next start.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, FileControl, OptionalExtension};
use tracing::warn;

use super::{OpenError, Store};
use crate::spool::protocol::now_ms;

/// The write-ahead log of the spool at `path`.
pub(super) fn wal_of(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Starts a run on the spool at `path`: refuses it if the last run did not
/// stop cleanly and its log is gone (`wal_found` says whether the log was
/// there before SQLite opened the spool), then marks this run started and
/// checkpoints.
pub(super) fn begin_run(
    connection: &Connection,
    path: &Path,
    wal_found: bool,
) -> Result<(), OpenError> {
    let unfinished: Option<i64> = connection
        .query_row(
            "SELECT started_at FROM run WHERE stopped_at IS NULL",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(|err| OpenError::sqlite(path, err))?;
    if let Some(started_at) = unfinished
        && !wal_found
    {
        return Err(OpenError::LostWal {
            path: path.to_owned(),
            wal: wal_of(path),
            started: jiff::Timestamp::from_millisecond(started_at).unwrap_or_default(),
        });
    }
    let unwritable = |source| OpenError::Unwritable {
        path: path.to_owned(),
        source,
    };
    connection
        .execute(
            "INSERT OR REPLACE INTO run (only, started_at, stopped_at) VALUES (1, ?1, NULL)",
            [now_ms()],
        )
        .map_err(unwritable)?;
    let busy: i64 = connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .map_err(unwritable)?;
    if busy != 0 {
        warn!(
            spool = %path.display(),
            "another process reads the spool: the start could not copy its log into it, \
             so a loss of the log before the next checkpoint may go unnoticed"
        );
    }
    Ok(())
}

impl Store {
    /// Marks the run stopped cleanly: nothing the log holds is needed any
    /// more once SQLite closes the spool (it copies the log in first).
    pub(in crate::spool::sqlite) fn end_run(&self) -> rusqlite::Result<()> {
        self.connection
            .execute("UPDATE run SET stopped_at = ?1", [now_ms()])?;
        // Only now may closing the spool fold the log in and delete it.
        self.connection
            .file_control(Some(rusqlite::MAIN_DB), FileControl::PersistWal(&mut 0))
    }
}
