//! The spool's SQLite database (WAL): accepted events, each handler's
//! progress on them, the lists of ids seen recently, dead letters and the
//! sources' cursors. Every SQL statement of the crate is in this folder,
//! behind typed methods.
//!
//! Only the spool thread writes events and ids, and only one daemon opens a
//! spool (`lock.rs`); `jobhook deadletter` opens the same file from
//! another process (SQLite's locking makes that safe) to list, mark for
//! replay and purge dead letters.

mod batch;
mod dead_letters;
mod load;
mod lock;
mod open_error;
mod packs;
mod run_marker;
mod schema;
mod seen;

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, FileControl, OpenFlags, OptionalExtension, params};
use serde::Deserialize;

use crate::spool::protocol::{Receipt, Replay, Resume};
pub(super) use batch::{Batch, NewEvents};
use lock::SpoolLock;
pub use open_error::OpenError;
use packs::{Packing, ReadBack};
pub(super) use seen::Forgotten;

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

/// SQLite's page cache for the spool, in KiB (its default is 2,000). The
/// pages written are the newest events' and the oldest's (deleted), and
/// the dedupe ids are not in a B-tree any more (`dedupe.rs`): 1 MiB keeps
/// the daemon's peak memory about 1 MiB lower at the same speed.
const CACHE_KIB: u32 = 1024;

/// Stores an event in a row of its own: its seq, id, body, the only
/// handler it runs (a replay's) and the dead letter it replays, and when
/// it was accepted.
const INSERT_EVENT: &str = "INSERT INTO events (seq, id, body, only_stage, replay_of, accepted_at) \
                            VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// An event that was accepted and not finished, as the spool holds it.
#[derive(Debug)]
pub(super) struct Stored {
    pub receipt: Receipt,
    pub body: Vec<u8>,
    /// Handlers that already succeeded for it.
    pub done: Vec<String>,
    /// Where a waiting retry picks up (its due time is read at start).
    pub resume: Option<Resume>,
    pub replay: Option<Replay>,
}

/// The events a start finds not finished.
pub(super) struct Unfinished {
    /// Events to hand to the lanes, oldest first.
    pub to_run: Vec<Receipt>,
    /// Events waiting for a retry: (due, receipt).
    pub waiting: Vec<(i64, Receipt)>,
}

/// The open spool database.
pub struct Store {
    connection: Connection,
    path: PathBuf,
    /// The pack being filled, and the next seq.
    packing: Packing,
    /// The last pack read back (read by `&self`, as the rest of the backlog's
    /// reads are).
    read_back: RefCell<ReadBack>,
    /// The daemon's store holds the spool's lock: one daemon per spool.
    _lock: Option<SpoolLock>,
}

impl Store {
    /// Opens (creating if needed) the spool in `dir` for the daemon, which
    /// holds the spool's lock for as long as the store is open. A file that
    /// is not a healthy spool is an error naming it — never replaced by an
    /// empty one.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<Store, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Create {
            dir: dir.to_owned(),
            source,
        })?;
        let lock = SpoolLock::acquire(dir)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        Store::connect(dir, fsync, flags, Some(lock))
    }

    /// Opens the spool a daemon made in `dir`, without its lock: for
    /// `jobhook deadletter`, beside a running daemon (SQLite's own locking
    /// orders their transactions) or a stopped one. It is never created.
    pub(in crate::spool) fn open_existing(dir: &Path, fsync: Fsync) -> Result<Store, OpenError> {
        if !dir.join(FILE_NAME).exists() {
            return Err(OpenError::Missing {
                dir: dir.to_owned(),
            });
        }
        Store::connect(dir, fsync, OpenFlags::SQLITE_OPEN_READ_WRITE, None)
    }

    fn connect(
        dir: &Path,
        fsync: Fsync,
        flags: OpenFlags,
        lock: Option<SpoolLock>,
    ) -> Result<Store, OpenError> {
        let path = dir.join(FILE_NAME);
        // Looked at before SQLite opens the spool, which makes a log.
        let wal_found = run_marker::wal_of(&path).exists();
        let sqlite = |err| OpenError::sqlite(&path, err);
        let connection = Connection::open_with_flags(&path, flags).map_err(sqlite)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(sqlite)?;
        // rusqlite keeps 16 prepared statements by default; the spool uses
        // about 22, and the housekeeping's would push the hot ones out.
        connection.set_prepared_statement_cache_capacity(32);
        let synchronous = match fsync {
            Fsync::Always | Fsync::Batch => "FULL",
            Fsync::Never => "OFF",
        };
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
                 PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}; \
                 PRAGMA cache_size = -{CACHE_KIB};"
            ))
            .map_err(sqlite)?;
        let check: String = connection
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(sqlite)?;
        if check != "ok" {
            return Err(OpenError::Unreadable {
                path,
                reason: format!("quick_check: {check}"),
            });
        }
        // Only the daemon converts the dedupe ids (it holds the lock):
        // `jobhook deadletter` may open the spool of an older daemon still
        // running, which would go on remembering ids the list does not hold.
        schema::create_or_upgrade(&connection, lock.is_some()).map_err(sqlite)?;
        // Closing the spool must not delete its log (see `run_marker`)
        // unless the run ended cleanly: a `deadletter` command, or a daemon
        // that stopped part-way through its start (a socket it could not
        // bind), would otherwise make the next start see a crash whose log
        // was lost. `end_run` lets a clean stop delete it.
        connection
            .file_control(Some(rusqlite::MAIN_DB), FileControl::PersistWal(&mut 1))
            .map_err(sqlite)?;
        if lock.is_some() {
            run_marker::begin_run(&connection, &path, wal_found)?;
        }
        let packing = Packing::resume(&connection).map_err(sqlite)?;
        Ok(Store {
            connection,
            path,
            packing,
            read_back: RefCell::default(),
            _lock: lock,
        })
    }

    pub(in crate::spool) fn path(&self) -> &Path {
        &self.path
    }

    /// Stores one event in a transaction of its own (a queue event, raised
    /// between group commits).
    pub(super) fn insert_event(
        &mut self,
        id: &str,
        body: &[u8],
        now: i64,
    ) -> rusqlite::Result<Receipt> {
        let seq = self.packing.take_seq();
        let transaction = self.connection.transaction()?;
        transaction.prepare_cached(INSERT_EVENT)?.execute(params![
            seq,
            id,
            body,
            None::<String>,
            None::<i64>,
            now
        ])?;
        transaction.commit()?;
        Ok(Receipt(seq))
    }

    /// Bytes of the events accepted and not finished (their bodies, and a
    /// pack's until none of its events is left in it): what
    /// `max_spool_bytes` bounds. Read at start; the spool thread keeps the
    /// count from there.
    pub(super) fn pending_bytes(&self) -> rusqlite::Result<u64> {
        self.connection
            .query_row(
                "SELECT (SELECT coalesce(sum(length(body)), 0) FROM events) \
                 + (SELECT coalesce(sum(length(bodies)), 0) FROM event_packs)",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|bytes| bytes.max(0) as u64)
    }

    /// The cursor `source` last committed.
    pub(super) fn cursor(&self, source: &str) -> rusqlite::Result<Option<String>> {
        self.connection
            .query_row(
                "SELECT cursor FROM source_cursors WHERE source = ?1",
                [source],
                |row| row.get(0),
            )
            .optional()
    }

    /// Events accepted and not finished.
    pub(super) fn pending(&self) -> rusqlite::Result<u64> {
        Ok(self.live_seqs()?.len() as u64)
    }

    /// The seqs of the events not finished, ascending: in rows, or in
    /// packs and not gone. A start reads them once for
    /// [`Store::with_progress`] and [`Store::unfinished`].
    pub(super) fn live_seqs(&self) -> rusqlite::Result<Vec<i64>> {
        let mut live: Vec<i64> = self
            .connection
            .prepare("SELECT seq FROM events ORDER BY seq")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        live.extend(packs::live_in_packs(&self.connection)?);
        live.sort_unstable();
        live.dedup();
        Ok(live)
    }

    /// The events with progress rows, whose rows go when they finish.
    /// Progress rows of events no longer in the spool are deleted first:
    /// earlier versions left the rows of an event finished in a later run
    /// than they were written in, and a seq may be reused after a restart
    /// once the events above it are gone, so a new event would have
    /// inherited them. `live`: [`Store::live_seqs`]. Returns the events,
    /// and how many rows were deleted.
    pub(super) fn with_progress(
        &self,
        live: &[i64],
    ) -> rusqlite::Result<(HashSet<Receipt>, usize)> {
        let rows: Vec<i64> = self
            .connection
            .prepare("SELECT DISTINCT seq FROM progress")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let (kept, orphans): (Vec<i64>, Vec<i64>) = rows
            .into_iter()
            .partition(|seq| live.binary_search(seq).is_ok());
        let mut orphaned = 0;
        if !orphans.is_empty() {
            let transaction = self.connection.unchecked_transaction()?;
            let mut delete = transaction.prepare("DELETE FROM progress WHERE seq = ?1")?;
            for seq in orphans {
                orphaned += delete.execute([seq])?;
            }
            drop(delete);
            transaction.commit()?;
        }
        Ok((kept.into_iter().map(Receipt).collect(), orphaned))
    }

    /// Where the events not finished stand, without loading them: those
    /// to run, in acceptance order, and those waiting for a retry, of
    /// `live` ([`Store::live_seqs`]).
    pub(super) fn unfinished(&self, live: Vec<i64>) -> rusqlite::Result<Unfinished> {
        let mut waiting: Vec<(i64, Receipt)> = self
            .connection
            .prepare("SELECT coalesce(due_at, 0), seq FROM progress WHERE state = 'retry'")?
            .query_map([], |row| Ok((row.get(0)?, Receipt(row.get(1)?))))?
            .collect::<rusqlite::Result<_>>()?;
        waiting.retain(|(_, receipt)| live.binary_search(&receipt.0).is_ok());
        let retrying: HashSet<i64> = waiting.iter().map(|(_, receipt)| receipt.0).collect();
        let to_run = live
            .into_iter()
            .filter(|seq| !retrying.contains(seq))
            .map(Receipt)
            .collect();
        Ok(Unfinished { to_run, waiting })
    }
}
