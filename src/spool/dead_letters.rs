//! Dead letters as `jobhook deadletter` sees them, whatever the backend:
//! list, mark for replay, purge. A running daemon picks up the replays
//! itself ([`super::Spool`]); these operations never need it running.

use std::time::Duration;

use super::protocol::DeadLetterId;

/// The operations on the dead letters a spool keeps. Each is one
/// transaction of its own, beside a running daemon's.
pub trait DeadLetters {
    /// Where the spool is, for messages (a file; never a password).
    fn location(&self) -> String;

    /// Dead letters, oldest first; only `handler`'s when given.
    fn list(&self, handler: Option<&str>) -> Result<Vec<DeadLetter>, BackendError>;

    /// Marks dead letters for replay (the daemon picks them up within a
    /// second; a stopped daemon at its next start). `ids` empty: all of
    /// them. An id that names no dead letter (of `handler`, when given)
    /// marks nothing at all: the ids were mistyped, or listed from another
    /// spool. A dead letter stays until its replay's handler has run.
    fn request_replay(
        &mut self,
        ids: &[DeadLetterId],
        handler: Option<&str>,
    ) -> Result<Marked, ReplayError>;

    /// Deletes the dead letters whose last attempt is `older_than` ago or
    /// more (all of them when `None`); returns how many.
    fn purge(&mut self, older_than: Option<Duration>) -> Result<usize, BackendError>;
}

/// One dead letter, as `jobhook deadletter list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub id: DeadLetterId,
    pub event_id: String,
    pub handler: String,
    pub error: String,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub first_attempt: i64,
    pub last_attempt: i64,
    pub event: serde_json::Value,
}

/// What [`DeadLetters::request_replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    /// Dead letters newly marked for replay.
    pub marked: usize,
    /// Dead letters already marked, or being replayed.
    pub already: usize,
}

/// Why [`DeadLetters::request_replay`] marked nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "no dead letter {}{}; nothing marked for replay",
        list(.ids),
        .handler.as_ref().map(|handler| format!(" of handler `{handler}`")).unwrap_or_default()
    )]
    Unknown {
        ids: Vec<DeadLetterId>,
        handler: Option<String>,
    },
    #[error(transparent)]
    Spool(#[from] BackendError),
}

fn list(ids: &[DeadLetterId]) -> String {
    let ids: Vec<String> = ids.iter().map(DeadLetterId::to_string).collect();
    ids.join(", ")
}

/// A backend's own error (SQLite's, say), shown as it is, its causes kept.
#[derive(Debug)]
pub struct BackendError(pub(super) Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
