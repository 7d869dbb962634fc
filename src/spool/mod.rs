//! The durable spool: an event is acked only once it is committed, and stays
//! there until every handler of its chain is done with it.
//!
//! Everything outside this module talks to the spool through a small,
//! backend-neutral interface; [`sqlite`] is the one backend (embedded, one
//! daemon per spool), and another (a database several daemons share) would
//! sit beside it without touching ingest, chain or workers:
//!
//! - ingest submits an event with [`Queue::submit`] and gets a [`Ticket`];
//! - a source submits what one look found, with its cursor, as a
//!   [`SourceBatch`] ([`Queue::submit_batch`]), and reads its cursor back at
//!   start ([`Queue::cursor`]);
//! - the spool hands committed and due events to the workers as [`Work`] in
//!   [`Lanes`] (by `JobId`);
//! - a chain reports each step through [`Progress`] ([`Recorder`]);
//! - `jobhook deadletter` lists, replays and purges through [`DeadLetters`]
//!   ([`open_dead_letters`]);
//! - the daemon opens the backend ([`Store::open`]), starts it
//!   ([`Spool::start`]) and stops it ([`Spool::close_lanes`], [`Spool::stop`]);
//! - `/health` and `/metrics` read its levels from a [`Status`].
//!
//! What every backend guarantees:
//!
//! - **Ack after a durable commit.** A ticket resolves `Ok` only once the
//!   event is committed (synced as `fsync` says); a refusal says why
//!   ([`Rejection`]), and a refused event was not kept.
//! - **A source's cursor goes with its events.** A [`SourceBatch`]'s events
//!   and cursor are committed in one transaction, or not at all: after a
//!   crash the source resumes from a cursor that matches what the spool
//!   holds, so it neither loses nor re-delivers a record.
//! - **Dedupe.** An `Id` accepted within `dedupe_window` is answered as a
//!   duplicate and not handled again.
//! - **At least once, per handler.** A handler whose success was recorded
//!   ([`Progress::stage_done`]) is not run again for that event; a step not
//!   yet committed when the daemon stops or crashes is redone at the next
//!   start. An event leaves the spool only when its chain finished.
//! - **Order per `JobId`.** Events of one job go to one lane, in the order
//!   accepted, also when resumed after a restart.
//! - **Durable retries.** A retry is stored with its due time, not slept on:
//!   it fires when due and the lanes have room, also after a restart.
//! - **Dead letters are kept** until purged, and while replayed: a replay
//!   whose handler does not run leaves its dead letter in place.
//! - **Bounded.** At most `queue_capacity` events are in the lanes (the
//!   rest wait on disk) and `max_spool_bytes` pending; beyond, new events
//!   are refused `overloaded`. Crossing the thresholds raises queue events.
//!   Events
//!   submitted and not yet answered take at most `submitted_bytes` of
//!   memory together ([`budget`]); beyond, [`Queue::submit`] waits.
//!
//! [`Receipt`]s and [`DeadLetterId`]s are opaque outside the spool: only
//! the backend knows what they stand for.

mod budget;
mod dead_letters;
mod handle;
mod lanes;
mod progress;
mod protocol;
mod sqlite;
mod status;

use std::path::Path;

pub use budget::budget_bytes;
pub use dead_letters::{BackendError, DeadLetter, DeadLetters, Marked, ReplayError};
pub use handle::{CursorError, Limits, Queue, Spool, StartError, Ticket};
pub use lanes::{Lane, Lanes};
pub use progress::{Progress, Recorder};
pub use protocol::{
    Accepted, Dead, DeadLetterId, Receipt, Rejection, Replay, Resume, Retry, SourceBatch,
    StageDone, Work, millis, now_ms,
};
pub use sqlite::{Fsync, OpenError, Store};
pub use status::Status;

/// Opens the dead letters of the spool in `spool_dir`, beside a running
/// daemon or a stopped one, for `jobhook deadletter`; never creates a spool.
pub fn open_dead_letters(
    spool_dir: &Path,
    fsync: Fsync,
) -> Result<Box<dyn DeadLetters>, OpenError> {
    Ok(Box::new(Store::open_existing(spool_dir, fsync)?))
}
