//! The embedded spool backend: one SQLite database (WAL) in `spool_dir`,
//! owned by one thread of one daemon.
//!
//! That thread takes what arrives together — new events from every
//! connection, progress records from the workers — and commits it in one
//! transaction (group commit, [`commit`]), then answers the events and hands
//! them to the lanes ([`thread`]), or to the [`backlog`] on disk while
//! the lanes are full. New events are admitted while the byte bound has
//! room ([`admission`]); crossing the thresholds
//! raises queue events ([`levels`]); ids seen recently are bounded on their
//! own ([`dedupe`]). Every SQL statement is in [`store`].

mod admission;
mod backlog;
mod commit;
mod dedupe;
mod levels;
mod store;
mod thread;

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

pub use store::{Fsync, OpenError, Store};

use super::dead_letters::{BackendError, DeadLetter, DeadLetters, Marked, ReplayError};
use super::protocol::{DeadLetterId, Message, millis, now_ms};
use super::{Lanes, Limits, StartError, Status};
use crate::lifecycle::Heartbeat;

/// Resumes what `store` holds and starts the spool's thread, which takes
/// its messages from `messages`.
pub(super) fn start(
    store: Store,
    limits: Limits,
    lanes: Lanes,
    messages: mpsc::Receiver<Message>,
    heartbeat: Heartbeat,
    status: Arc<Status>,
) -> Result<JoinHandle<()>, StartError> {
    let spool = thread::SpoolThread::resume(store, limits, lanes, status)?;
    std::thread::Builder::new()
        .name("spool".to_owned())
        .spawn(move || spool.run(&messages, &heartbeat))
        .map_err(StartError::Thread)
}

impl From<rusqlite::Error> for BackendError {
    fn from(err: rusqlite::Error) -> BackendError {
        BackendError(Box::new(err))
    }
}

impl DeadLetters for Store {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn list(&self, handler: Option<&str>) -> Result<Vec<DeadLetter>, BackendError> {
        Ok(self.dead_letters(handler)?)
    }

    fn request_replay(
        &mut self,
        ids: &[DeadLetterId],
        handler: Option<&str>,
    ) -> Result<Marked, ReplayError> {
        self.mark_for_replay(ids, handler)
    }

    fn purge(&mut self, older_than: Option<std::time::Duration>) -> Result<usize, BackendError> {
        let before = now_ms().saturating_sub(older_than.map_or(0, millis));
        Ok(self.purge_dead_letters(before.saturating_add(1))?)
    }
}

impl From<rusqlite::Error> for ReplayError {
    fn from(err: rusqlite::Error) -> ReplayError {
        ReplayError::Spool(err.into())
    }
}
