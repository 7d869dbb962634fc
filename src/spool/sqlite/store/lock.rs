//! One daemon per spool: the daemon holds an exclusive OS lock on
//! `spool_dir/lock` for as long as its spool is open, so a second daemon on
//! the same `spool_dir` is refused at start instead of resuming the first
//! one's events and handling each of them twice.
//!
//! The lock is the operating system's (`flock` on Unix, `LockFileEx` on
//! Windows): it goes with the process, even when the process is killed, so
//! a crash never leaves a stale lock behind. The file holds the holder's
//! PID, for the message that refuses the second daemon.

use std::fs::{File, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "lock";

/// Why the spool could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the spool {dir} is in use by another jobhook (pid {holder}, holding {lock}); \
         stop it first, or give this daemon another spool_dir"
    )]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        /// The PID the holder wrote, or why it cannot be read.
        holder: String,
    },
    #[error("the spool cannot be written: cannot lock it with {lock}")]
    Io {
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held while the daemon's spool is open; dropping it (or the process
/// ending) releases the lock.
#[derive(Debug)]
pub struct SpoolLock {
    _file: File,
}

impl SpoolLock {
    /// Takes the lock of the spool in `dir` (which exists), or says who
    /// holds it.
    pub fn acquire(dir: &Path) -> Result<SpoolLock, LockError> {
        let lock = dir.join(FILE_NAME);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        // Not truncated on open: until the lock is ours, the PID in it is
        // the holder's.
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder: holder(&mut file),
                    lock,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(SpoolLock { _file: file })
    }
}

/// The PID in a lock file another process holds. Windows does not let
/// others read a locked file, so there it may be unknown.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    match file.read_to_string(&mut text) {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        Ok(_) => "unknown: it has not written it yet".to_owned(),
        Err(err) => format!("unknown: {err}"),
    }
}
