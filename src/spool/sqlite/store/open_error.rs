//! Why the spool could not be opened, told apart so the message gives the
//! advice that fits: a damaged file may be moved aside; a spool that cannot
//! be written needs its permissions, attributes, mount or free space seen
//! to, and moving it aside would not help.

use std::path::{Path, PathBuf};

use super::lock::LockError;

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create spool_dir {dir}")]
    Create {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no spool at {dir}: has the daemon run with this config?")]
    Missing { dir: PathBuf },
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(
        "the spool {path} is unreadable ({reason}). Accepted events may be in it, so jobhook \
         will not start with an empty one by itself: inspect it with `sqlite3 {path} \
         'PRAGMA integrity_check'`, or move it aside to start with an empty spool."
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "the spool {path} cannot be written (check the owner, permissions and attributes \
         (`lsattr`) of spool_dir and its files, whether its file system is mounted read-only, \
         and its free space)"
    )]
    Unwritable {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the spool's write-ahead log {wal} is missing, and the daemon's last run (started \
         {started}) did not stop cleanly: events acked since the last checkpoint may have been \
         in it, so jobhook will not start without them by itself. Put the file back if it was \
         moved; to start with what {path} holds, run `sqlite3 {path} 'DELETE FROM run'`; or \
         move {path} aside to start with an empty spool."
    )]
    LostWal {
        path: PathBuf,
        wal: PathBuf,
        started: jiff::Timestamp,
    },
}

impl OpenError {
    /// What an SQLite error opening the spool at `path` means: a file that
    /// is not a healthy database is unreadable; a file or file system that
    /// refuses writes (permissions, `chattr +i`, a read-only mount, a full
    /// disk, an I/O error) is unwritable, and moving the spool aside would
    /// not help.
    pub(super) fn sqlite(path: &Path, err: rusqlite::Error) -> OpenError {
        use rusqlite::ErrorCode::*;
        match err.sqlite_error_code() {
            Some(
                ReadOnly | CannotOpen | PermissionDenied | DiskFull | SystemIoFailure
                | DatabaseBusy | DatabaseLocked,
            ) => OpenError::Unwritable {
                path: path.to_owned(),
                source: err,
            },
            _ => OpenError::Unreadable {
                path: path.to_owned(),
                reason: err.to_string(),
            },
        }
    }
}
