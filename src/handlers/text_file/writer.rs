//! The thread a `TextFileHandler` does its file I/O on.
//!
//! An open or a write can block for as long as the file system likes (a
//! hung NFS server, a stalled disk, an on-access scanner that does not
//! answer). None runs on the runtime's threads: each handler has one writer
//! thread, started at its first event, that opens, writes and cuts back its
//! files in turn. An attempt hands it the line and awaits the answer, so the
//! chain's `timeout` and the daemon's stop bound the attempt, not the disk.
//!
//! A write whose attempt gave up before the thread got to it is not made
//! (the retry writes the line); one already under way when its attempt gave
//! up may still land, so a line can be written twice (delivery is at least
//! once). While one operation has been under way for longer than the
//! handler's `timeout`, later attempts fail at once, naming its file, rather
//! than queue behind it: however long the file system hangs, it holds one
//! thread and no worker for more than one `timeout`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::open_files::{FileError, OpenFiles};

/// Writes waiting for the thread at most. Each attempt queues one, and
/// attempts at one handler are bounded by the workers, so this is reached
/// only if the thread stops taking writes; then further attempts fail.
const QUEUE: usize = 1024;

/// A handler's writer thread, started at the first write (so building a
/// handler, as `jobhook check` and reloads do, starts none), and started
/// again should it ever have stopped.
#[derive(Debug, Default)]
pub struct Writer {
    thread: Mutex<Option<Thread>>,
}

#[derive(Debug, Clone)]
struct Thread {
    writes: mpsc::Sender<Write>,
    /// The operation under way, if any.
    busy: Arc<Mutex<Option<Busy>>>,
}

#[derive(Debug)]
struct Write {
    path: Arc<Path>,
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), FileError>>,
}

#[derive(Debug)]
struct Busy {
    path: Arc<Path>,
    since: Instant,
}

/// Why a line was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "the previous write to {} has not finished (under way for {})",
        path.display(),
        humantime::format_duration(*under_way)
    )]
    NotFinished {
        path: Arc<Path>,
        under_way: Duration,
    },
    #[error("cannot start a thread to write {}", path.display())]
    Spawn {
        path: Arc<Path>,
        #[source]
        source: std::io::Error,
    },
    #[error("the thread writing {} stopped before answering", path.display())]
    Stopped { path: Arc<Path> },
}

impl Writer {
    /// Appends `line` to the file at `path` on the writer thread. Fails at
    /// once while the thread is on an operation older than `patience`.
    pub async fn append(
        &self,
        path: Arc<Path>,
        line: Vec<u8>,
        patience: Duration,
    ) -> Result<(), WriteError> {
        let thread = self.thread(&path)?;
        if let Some(stuck) = thread.not_finished(patience) {
            return Err(stuck);
        }
        let (done, answer) = oneshot::channel();
        let write = Write {
            path: path.clone(),
            line,
            done,
        };
        match thread.writes.try_send(write) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(thread.not_finished(Duration::ZERO).unwrap_or(
                    WriteError::NotFinished {
                        path,
                        under_way: Duration::ZERO,
                    },
                ));
            }
            Err(TrySendError::Closed(_)) => return Err(WriteError::Stopped { path }),
        }
        match answer.await {
            Ok(written) => Ok(written?),
            Err(_) => Err(WriteError::Stopped { path }),
        }
    }

    /// The running thread, started if there is none.
    fn thread(&self, path: &Arc<Path>) -> Result<Thread, WriteError> {
        let mut slot = lock(&self.thread);
        if let Some(thread) = slot.as_ref().filter(|thread| !thread.writes.is_closed()) {
            return Ok(thread.clone());
        }
        let (writes, receiver) = mpsc::channel(QUEUE);
        let busy = Arc::new(Mutex::new(None));
        std::thread::Builder::new()
            .name("text-file".to_owned())
            .spawn({
                let busy = busy.clone();
                move || run(receiver, &busy)
            })
            .map_err(|source| WriteError::Spawn {
                path: path.clone(),
                source,
            })?;
        Ok(slot.insert(Thread { writes, busy }).clone())
    }
}

impl Thread {
    /// The operation under way, if it has been for longer than `patience`.
    fn not_finished(&self, patience: Duration) -> Option<WriteError> {
        let busy = lock(&self.busy);
        let busy = busy.as_ref()?;
        let under_way = busy.since.elapsed();
        (under_way > patience).then(|| WriteError::NotFinished {
            path: busy.path.clone(),
            // Milliseconds are precise enough for a person.
            under_way: Duration::from_millis(under_way.as_millis() as u64),
        })
    }
}

/// The writer thread: takes writes until the handler is dropped. Never
/// joined: a thread stuck in the kernel must not hold up a reload or a stop.
fn run(mut writes: mpsc::Receiver<Write>, busy: &Mutex<Option<Busy>>) {
    let mut files = OpenFiles::default();
    while let Some(write) = writes.blocking_recv() {
        if write.done.is_closed() {
            continue; // Its attempt timed out or was abandoned.
        }
        *lock(busy) = Some(Busy {
            path: write.path.clone(),
            since: Instant::now(),
        });
        let written = files.append(&write.path, &write.line);
        *lock(busy) = None;
        let _ = write.done.send(written);
    }
}

/// Locks a mutex whose holder may have panicked (the data stays usable:
/// every holder leaves it consistent between statements).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
