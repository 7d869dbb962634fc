//! The ingest socket: clients connect, write NDJSON events, read one reply per line.
//!
//! Unix: a stream socket; Windows: a named pipe. Both serve connections with
//! the same protocol code ([`connection::serve`]) and the same limits, and
//! share out connections the same way ([`slots`]). [`http`] takes events
//! posted over HTTP(S) and answers each with the same [`reply`].

mod connection;
mod framing;
pub mod http;
#[cfg(windows)]
mod pipe_access;
mod reply;
mod slots;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

use std::time::Duration;

/// After a failed accept (out of file descriptors, say), how long before
/// the next.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

#[cfg(unix)]
pub use unix::Listener;
#[cfg(windows)]
pub use windows::Listener;

/// Why the ingest endpoint could not be opened (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{path}: another jobhook is already listening there")]
    InUse { path: String },
    #[cfg(unix)]
    #[error("{path} is {kind}, not a socket; refusing to replace it (check `[daemon] socket`)")]
    NotASocket { path: String, kind: &'static str },
    #[error("cannot listen on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Limits that apply to every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_event_bytes: usize,
    /// A client silent this long between lines, with no reply owed, is
    /// disconnected.
    pub idle_timeout: Duration,
    /// A client that takes this long to finish a line it began, or to read
    /// a reply, is disconnected.
    pub stall_timeout: Duration,
}
