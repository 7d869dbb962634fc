//! The thread a `TextFileHandler` does its file I/O on.
//!
//! An open or a write can block for as long as the file system likes (a
//! hung NFS server, a stalled disk, an on-access scanner that does not
//! answer). None runs on the runtime's threads: each handler has one writer
//! thread, started at its first event, that opens, writes and cuts back its
//! files in turn. A call hands it the lines of a group of events at once
//! and awaits the answers (see `crate::handoff`), so the chain's `timeout`
//! (for each line) and the daemon's stop bound the attempts, not the disk.
//!
//! A write whose attempt gave up before the thread got to it is not made
//! (the retry writes the line); one already under way when its attempt gave
//! up may still land, so a line can be written twice (delivery is at least
//! once). While one operation has been under way for longer than the
//! handler's `timeout`, later attempts fail at once, naming its file, rather
//! than queue behind it: however long the file system hangs, it holds one
//! thread and no worker for more than one `timeout`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::open_files::{FileError, OpenFiles};
use crate::handoff::{Progress, Pulse, handoff};

/// Batches waiting for the thread at most. Workers and the tasks of network
/// chains may queue more; they wait for room while the thread keeps going,
/// and fail once it has not for the handler's `timeout`.
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
    /// The thread's last sign of progress, over every batch.
    pulse: Arc<Pulse>,
}

/// Lines handed to the thread at once, each with the file it goes to.
struct Write {
    lines: Vec<(Arc<Path>, Vec<u8>)>,
    progress: Progress<Result<(), FileError>>,
}

#[derive(Debug)]
struct Busy {
    path: Arc<Path>,
    since: Instant,
}

/// Why a line was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "the previous write to {} has not finished (under way for {})",
        path.display(),
        humantime::format_duration(*under_way)
    )]
    NotFinished {
        path: Arc<Path>,
        under_way: Duration,
    },
    /// Also the error of the lines handed over after it.
    #[error("timed out after {} writing {}", humantime::format_duration(*after), path.display())]
    TimedOut { path: Arc<Path>, after: Duration },
    #[error("cannot start a thread to write {}", path.display())]
    Spawn {
        path: Arc<Path>,
        #[source]
        source: std::io::Error,
    },
    #[error("the thread writing {} stopped before answering", path.display())]
    Stopped { path: Arc<Path> },
}

/// What became of lines handed to [`Writer::append_many`].
#[derive(Debug)]
pub struct Appended {
    /// The outcome of each of the first lines, in order.
    pub written: Vec<Result<(), FileError>>,
    /// Why the lines after those were not written (or not known to be).
    pub rest: Option<WriteError>,
}

impl Writer {
    /// Appends each line to its file, in order, on the writer thread. Fails
    /// at once while the thread is on an operation older than `patience`;
    /// gives up on the lines not written once one has been under way for
    /// `patience`.
    pub async fn append_many(
        &self,
        lines: Vec<(Arc<Path>, Vec<u8>)>,
        patience: Duration,
    ) -> Appended {
        let not_written = |error| Appended {
            written: Vec::new(),
            rest: Some(error),
        };
        let Some((first, _)) = lines.first() else {
            return Appended {
                written: Vec::new(),
                rest: None,
            };
        };
        let first = first.clone();
        let thread = match self.thread(&first) {
            Ok(thread) => thread,
            Err(error) => return not_written(error),
        };
        if let Some(stuck) = thread.not_finished(patience) {
            return not_written(stuck);
        }
        let (waiting, progress) = handoff(lines.len(), &thread.pulse);
        let paths: Vec<Arc<Path>> = lines.iter().map(|(path, _)| path.clone()).collect();
        // A full queue is backpressure while the thread keeps going; one that
        // stays full for `patience` means it does not.
        match tokio::time::timeout(patience, thread.writes.send(Write { lines, progress })).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return not_written(WriteError::Stopped { path: first }),
            Err(_) => {
                return not_written(thread.not_finished(Duration::ZERO).unwrap_or(
                    WriteError::NotFinished {
                        path: first,
                        under_way: patience,
                    },
                ));
            }
        }
        let outcome = waiting.outcome(patience).await;
        let rest = paths
            .get(outcome.results.len())
            .map(|path| match outcome.stuck {
                Some(_) => WriteError::TimedOut {
                    path: path.clone(),
                    after: patience,
                },
                None => WriteError::Stopped { path: path.clone() },
            });
        Appended {
            written: outcome.results,
            rest,
        }
    }

    /// The running thread, started if there is none.
    fn thread(&self, path: &Arc<Path>) -> Result<Thread, WriteError> {
        let mut slot = self.thread.lock();
        if let Some(thread) = slot.as_ref().filter(|thread| !thread.writes.is_closed()) {
            return Ok(thread.clone());
        }
        let (writes, receiver) = mpsc::channel(QUEUE);
        let busy = Arc::new(Mutex::new(None));
        let pulse = Pulse::new();
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
        Ok(slot
            .insert(Thread {
                writes,
                busy,
                pulse,
            })
            .clone())
    }
}

impl Thread {
    /// The operation under way, if it has been for longer than `patience`.
    fn not_finished(&self, patience: Duration) -> Option<WriteError> {
        let busy = self.busy.lock();
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
    let mut together = Vec::new();
    while let Some(Write { lines, progress }) = writes.blocking_recv() {
        let mut lines = lines.into_iter().peekable();
        while let Some((path, line)) = lines.next() {
            if !progress.begin() {
                break; // Its attempts timed out or were abandoned.
            }
            // Lines in a row for one file are written with one call: they
            // land, or are cut back, together.
            together.clear();
            together.extend_from_slice(&line);
            let mut count = 1;
            while let Some((_, next)) =
                lines.next_if(|(next, _)| Arc::ptr_eq(next, &path) || *next == path)
            {
                together.extend_from_slice(&next);
                count += 1;
            }
            *busy.lock() = Some(Busy {
                path: path.clone(),
                since: Instant::now(),
            });
            let written = files.append(&path, &together);
            *busy.lock() = None;
            for _ in 1..count {
                progress.end(written.as_ref().map_err(FileError::again).copied());
            }
            progress.end(written);
        }
    }
}
