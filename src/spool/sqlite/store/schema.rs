//! The spool's tables, and the upgrades of spools made by earlier
//! versions, applied when a spool is opened.

use rusqlite::Connection;

const SCHEMA: &str = "
-- Events stored one to a row: those that come one at a time (queue events,
-- replays), those a handler changed or that wait for a retry (taken out
-- of their pack), and every event of a spool written before packs.
CREATE TABLE IF NOT EXISTS events (
    -- Given by the daemon, from the same count as the packs' (`packs.rs`).
    -- A seq freed by a finished event may be reused after a restart, which
    -- is safe as nothing refers to a finished event's seq any more.
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    only_stage TEXT,
    accepted_at INTEGER NOT NULL,
    -- The dead letter a replay is of (it stays until the handler has run).
    replay_of INTEGER
);
-- The new events of a group commit, in one row (`packs.rs`): their bodies
-- end to end, and where each ends (little-endian u32s). Its events' seqs
-- are first_seq to first_seq + count - 1.
CREATE TABLE IF NOT EXISTS event_packs (
    first_seq INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    ends BLOB NOT NULL,
    -- Last: a pack is found and counted without reading its bodies.
    bodies BLOB NOT NULL
);
-- Which of a pack's events are gone (finished, or moved to `events`), one
-- bit each from the lowest bit of the first byte; no row while none is.
CREATE TABLE IF NOT EXISTS pack_gone (
    first_seq INTEGER PRIMARY KEY,
    bits BLOB NOT NULL
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
-- The ids remembered for dedupe, as earlier versions of jobhook kept them
-- (beside `seen_batches`, which lists them too): read to list the ids of a
-- spool older still (`LIST_SEEN_IN_BATCHES`), then emptied at start. The
-- ids are looked up in memory now (`dedupe.rs`): this B-tree took a page
-- write at a random place for almost every event.
CREATE TABLE IF NOT EXISTS seen (
    id TEXT PRIMARY KEY,
    accepted_at INTEGER NOT NULL
) WITHOUT ROWID;
-- The ids each commit remembered, one row per commit in the order
-- committed (`ids`: newline-separated, as an Id has no control
-- characters): what the daemon reads back at start and what forgetting by
-- age reads.
CREATE TABLE IF NOT EXISTS seen_batches (
    n INTEGER PRIMARY KEY,
    accepted_at INTEGER NOT NULL,
    ids TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    event BLOB NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_attempt INTEGER NOT NULL,
    last_attempt INTEGER NOT NULL,
    -- 0, 1 once asked to be replayed, 2 while its replay runs.
    replay INTEGER NOT NULL DEFAULT 0
);
-- Looked for every second: without it, every dead letter is read each time.
CREATE INDEX IF NOT EXISTS dead_letters_to_replay ON dead_letters (id) WHERE replay = 1;
-- Where each event source ([sources.NAME]) stands: written in the commit that
-- stores the events it brought.
CREATE TABLE IF NOT EXISTS source_cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
) WITHOUT ROWID;
-- The daemon's current or last run (`spool/run_marker.rs`).
CREATE TABLE IF NOT EXISTS run (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    started_at INTEGER NOT NULL,
    -- NULL while it runs, and after a run that did not stop cleanly.
    stopped_at INTEGER
);
";

/// For spools made before replays kept their dead letter: the column, and
/// each replay then under way (its dead letter already deleted) made a dead
/// letter again, marked for replay.
const ADD_REPLAY_OF: &str = "
BEGIN;
ALTER TABLE events ADD COLUMN replay_of INTEGER;
INSERT INTO dead_letters
    (event_id, handler, event, error, attempts, first_attempt, last_attempt, replay)
    SELECT id, only_stage, body, 'replay interrupted by an upgrade of jobhook', 0,
        accepted_at, accepted_at, 1
    FROM events WHERE only_stage IS NOT NULL;
DELETE FROM progress WHERE seq IN (SELECT seq FROM events WHERE only_stage IS NOT NULL);
DELETE FROM events WHERE only_stage IS NOT NULL;
COMMIT;
";

/// For spools made when `seen` had an index by time: the ids listed by the
/// time they were accepted, then the index dropped. Whatever the table
/// held is listed anew (a spool opened by an older jobhook in between has
/// `seen` rows the table does not list).
const LIST_SEEN_IN_BATCHES: &str = "
BEGIN;
DELETE FROM seen_batches;
INSERT INTO seen_batches (accepted_at, ids)
    SELECT accepted_at, group_concat(id, char(10)) FROM seen
    GROUP BY accepted_at ORDER BY accepted_at;
DROP INDEX seen_by_time;
COMMIT;
";

/// Creates what is missing, and upgrades a spool made by an earlier
/// version. `daemon`: opened by the daemon, which holds the spool's lock;
/// the dedupe ids are converted only then (`jobhook deadletter` may open
/// the spool of an older daemon still running, which reads `seen`).
pub(super) fn create_or_upgrade(connection: &Connection, daemon: bool) -> rusqlite::Result<()> {
    connection.execute_batch(SCHEMA)?;
    if connection
        .prepare("SELECT replay_of FROM events LIMIT 0")
        .is_err()
    {
        connection.execute_batch(ADD_REPLAY_OF)?;
    }
    let seen_by_time = connection.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'seen_by_time'",
        [],
        |row| row.get::<_, i64>(0),
    )? > 0;
    if daemon {
        if seen_by_time {
            connection.execute_batch(LIST_SEEN_IN_BATCHES)?;
        }
        connection.execute("DELETE FROM seen", [])?;
    }
    Ok(())
}
