//! The durable spool: an event is acked only once it is committed to disk,
//! and stays there until every handler of its chain is done with it.
//!
//! One thread owns the database. It takes what arrives together — new
//! events from every connection, progress records from the workers — and
//! commits it in one transaction (group commit), then answers the events and
//! hands them to the worker lanes. Each handler's success, each scheduled
//! retry (a row with a due time, not a sleeping task) and each dead letter is
//! recorded the same way. After a crash or a stop, the events left are
//! resumed at start: handlers already done are skipped, a waiting retry fires
//! at its due time, and an event a script changed resumes as changed.

mod batch;
mod commit;
pub mod dead_letters;
mod dedupe;
mod lock;
mod open_error;
mod run_marker;
pub mod store;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::params;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::event::Event;
use crate::queue::{Accepted, Lanes, Rejection, Work};
use batch::Reply;
use commit::{RETRY_FAILED_COMMIT, Unwritten};
use dedupe::Dedupe;
pub use store::{Fsync, Store};

/// Most events committed in one transaction.
const MAX_BATCH: usize = 1024;
/// How often dead letters marked for replay are looked for and the ids seen
/// long ago forgotten.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How long a new event waits for room in the lanes before it is refused as
/// `overloaded`. While it waits its client gets no ack, which slows a
/// pipelining client down to the pace of the workers; a burst is absorbed,
/// a queue that stays full is reported.
const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// What the spool is told: by ingest (new events), by workers (progress).
pub enum Message {
    /// A new event (its JSON already made by the sender, off this thread).
    Submit {
        event: Event,
        reply: oneshot::Sender<Result<Accepted, Rejection>>,
    },
    Record(Record),
    /// No more events go to the workers (they are finishing up).
    CloseLanes,
    Stop,
}

/// Progress of one event through its chain.
#[derive(Debug)]
pub enum Record {
    /// `stage` succeeded; `changed` is the event as it left it (its JSON),
    /// if it changed it.
    StageDone {
        seq: i64,
        stage: String,
        changed: Option<std::sync::Arc<[u8]>>,
    },
    /// `stage` failed and is tried again at `due` (ms since the epoch).
    Retry {
        seq: i64,
        stage: String,
        attempts: u32,
        first_attempt: i64,
        due: i64,
    },
    /// `stage` gave up: the event as it saw it is kept for a person.
    Dead {
        seq: i64,
        event_id: String,
        stage: String,
        event: std::sync::Arc<[u8]>,
        error: String,
        attempts: u32,
        first_attempt: i64,
    },
    /// A replay's handler ran (`ran`), or was skipped: its dead letter goes,
    /// or stays.
    Replayed { dead_letter: i64, ran: bool },
    /// The chain is done with the event.
    Finished { seq: i64 },
}

/// Settings the spool thread works by.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub fsync: Fsync,
    /// Events in the workers' lanes at most; more wait for room, and are
    /// `overloaded` after `ADMISSION_WAIT`.
    pub in_memory: usize,
    /// Bytes of pending events at most; more are `overloaded`.
    pub max_bytes: u64,
    /// An `Id` accepted within this long is a duplicate.
    pub dedupe_window: Duration,
    /// Bytes of ids remembered for dedupe at most; beyond, the oldest are
    /// forgotten early.
    pub max_dedupe_bytes: u64,
    /// Fractions of `max_bytes` at which `QueueFilling` and `QueueEmptying`
    /// are raised.
    pub filling: f64,
    pub emptying: f64,
}

/// How full the spool is, as the `OnQueueEvent` chain was last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Normal,
    Filling,
    Full,
    Emptying,
}

/// The workers' side: sends progress records to the spool.
#[derive(Clone)]
pub struct Recorder(mpsc::Sender<Message>);

impl Recorder {
    pub fn record(&self, record: Record) {
        // The spool outlives every worker (it is stopped after them).
        let _ = self.0.send(Message::Record(record));
    }
}

/// The running spool thread.
pub struct Spool {
    sender: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl Spool {
    /// Resumes what the store holds and starts the thread.
    pub fn start(store: Store, limits: Limits, lanes: Lanes) -> Result<Spool, String> {
        let unreadable = |err| format!("cannot read the spool {}: {err}", store.path().display());
        let recovered = store.unfinished().map_err(unreadable)?;
        let pending_bytes = store.pending_bytes().map_err(unreadable)?;
        let dedupe = Dedupe::new(&store, limits.dedupe_window, limits.max_dedupe_bytes)
            .map_err(unreadable)?;
        let (sender, receiver) = mpsc::channel();
        let mut thread = SpoolThread {
            store,
            limits,
            lanes: Some(lanes),
            due: BinaryHeap::new(),
            in_lanes: 0,
            pending_bytes,
            dedupe,
            level: Level::Normal,
            with_progress: HashSet::new(),
            waiting_for_room: VecDeque::new(),
            backlog: VecDeque::new(),
            unwritten: Unwritten::default(),
        };
        thread.resume(recovered);
        let thread = std::thread::Builder::new()
            .name("spool".to_owned())
            .spawn(move || thread.run(&receiver))
            .map_err(|err| format!("cannot start the spool thread: {err}"))?;
        Ok(Spool {
            sender,
            thread: Some(thread),
        })
    }

    pub fn sender(&self) -> mpsc::Sender<Message> {
        self.sender.clone()
    }

    pub fn recorder(&self) -> Recorder {
        Recorder(self.sender.clone())
    }

    /// Stops handing events to the workers.
    pub fn close_lanes(&self) {
        let _ = self.sender.send(Message::CloseLanes);
    }

    /// Commits what is left and stops the thread.
    pub fn stop(mut self) {
        let _ = self.sender.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct SpoolThread {
    store: Store,
    limits: Limits,
    /// Gone once the workers are finishing up.
    lanes: Option<Lanes>,
    /// Retries waiting, by due time (ms) then seq.
    due: BinaryHeap<Reverse<(i64, i64)>>,
    /// Events handed to the lanes whose chain has not finished or paused.
    in_lanes: usize,
    /// Events left from the last run not yet loaded: they are read into the
    /// lanes as room frees up, so a large backlog is never all in memory.
    backlog: VecDeque<i64>,
    /// Bytes of the pending events' bodies, kept as they are stored and
    /// deleted: what `max_bytes` bounds.
    pending_bytes: u64,
    dedupe: Dedupe,
    level: Level,
    /// Events with progress rows written, to clear when they finish.
    with_progress: HashSet<i64>,
    /// New events waiting for room in the lanes, oldest first.
    waiting_for_room: VecDeque<WaitingForRoom>,
    /// What failed commits left to write.
    unwritten: Unwritten,
}

/// A new event that found the lanes full.
struct WaitingForRoom {
    since: Instant,
    event: Event,
    reply: Reply,
}

/// Now, as the spool stores times: milliseconds since the epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A duration in whole milliseconds, saturating (times in the spool are
/// milliseconds since the epoch, added to and subtracted from with these).
pub fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl SpoolThread {
    fn run(mut self, receiver: &mpsc::Receiver<Message>) {
        let mut housekeeping = Instant::now();
        // With `fsync = "always"` a second new event waits for the next commit.
        let mut held: Option<Message> = None;
        // Reused from batch to batch.
        let mut batch: Vec<Message> = Vec::new();
        loop {
            let first = match held.take() {
                Some(message) => Some(message),
                None => match receiver.recv_timeout(self.next_wake(housekeeping)) {
                    Ok(message) => Some(message),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
            };
            batch.extend(first);
            let one_event_each = self.limits.fsync == Fsync::Always;
            let mut events = batch
                .iter()
                .filter(|message| matches!(message, Message::Submit { .. }))
                .count();
            while batch.len() < MAX_BATCH {
                let Ok(message) = receiver.try_recv() else {
                    break;
                };
                if matches!(message, Message::Submit { .. }) {
                    if one_event_each && events == 1 {
                        held = Some(message);
                        break;
                    }
                    events += 1;
                }
                batch.push(message);
            }
            let stop = self.commit(&mut batch);
            self.load_backlog();
            self.fire_due_retries();
            if housekeeping.elapsed() >= HOUSEKEEPING {
                housekeeping = Instant::now();
                self.housekeeping();
            }
            if stop {
                for waiting in self.waiting_for_room.drain(..) {
                    let _ = waiting.reply.send(Err(Rejection::ShuttingDown));
                }
                if let Err(err) = self.store.end_run() {
                    error!(
                        spool = %self.store.path().display(),
                        "cannot mark the run stopped: {err}; the next start takes it for a crash"
                    );
                }
                return;
            }
        }
    }

    fn next_wake(&self, housekeeping: Instant) -> Duration {
        let until_housekeeping = HOUSEKEEPING.saturating_sub(housekeeping.elapsed());
        let until_due = self.due.peek().map_or(Duration::MAX, |Reverse((due, _))| {
            Duration::from_millis((due - now_ms()).max(0) as u64)
        });
        // Events waiting for room are taken as soon as there is some, and
        // refused when they have waited long enough.
        let until_refused = self
            .waiting_for_room
            .front()
            .map_or(Duration::MAX, |waiting| {
                if self.lanes.is_none() || self.room() > 0 {
                    Duration::ZERO
                } else {
                    ADMISSION_WAIT.saturating_sub(waiting.since.elapsed())
                }
            });
        let until_commit_retried = if self.unwritten.records.is_empty() {
            Duration::MAX
        } else {
            RETRY_FAILED_COMMIT
        };
        until_housekeeping
            .min(until_due)
            .min(until_refused)
            .min(until_commit_retried)
    }

    /// How many more new events the lanes take now: none while events left
    /// from the last run wait to be loaded (they go first, which keeps each
    /// job's events in order).
    fn room(&self) -> usize {
        if self.pending_bytes >= self.limits.max_bytes || !self.backlog.is_empty() {
            0
        } else {
            self.limits.in_memory.saturating_sub(self.in_lanes)
        }
    }

    /// Hands an event to its lane; while stopping, it stays in the spool
    /// for the next start instead.
    fn dispatch(&mut self, work: Work) {
        if let Some(lanes) = &self.lanes {
            self.in_lanes += 1;
            lanes.send(work);
        }
    }

    /// Events whose retry is due go back to their lane.
    fn fire_due_retries(&mut self) {
        let now = now_ms();
        while let Some(Reverse((due, seq))) = self.due.peek().copied() {
            if due > now || self.lanes.is_none() {
                return;
            }
            self.due.pop();
            self.load_and_dispatch(seq, "a due retry");
        }
    }

    /// Reads event `seq` from the spool (as handlers left it) into its lane;
    /// one that cannot be read stays in the spool and is logged as `what`.
    fn load_and_dispatch(&mut self, seq: i64, what: &str) {
        match self.store.load(seq) {
            Ok(Some(stored)) => {
                if let Some(work) = work_from(stored) {
                    self.dispatch(work);
                }
            }
            Ok(None) => {}
            Err(err) => error!(seq, "cannot read {what} from the spool: {err}"),
        }
    }

    fn housekeeping(&mut self) {
        // Replays wait for room like any event: `queue_capacity` at a time,
        // after the backlog, within `max_spool_bytes`.
        let room = self.room();
        if self.lanes.is_some() && room > 0 {
            match self.store.take_replays(now_ms(), room) {
                Ok(replays) => {
                    if !replays.is_empty() {
                        info!(count = replays.len(), "replaying dead letters");
                    }
                    for stored in replays {
                        self.pending_bytes += stored.body.len() as u64;
                        if let Some(work) = work_from(stored) {
                            self.dispatch(work);
                        }
                    }
                }
                Err(err) => error!("cannot read dead letters to replay: {err}"),
            }
        }
        self.dedupe.forget(&mut self.store, now_ms());
        self.watch_level();
    }

    /// Raises a queue event when the spool crosses a threshold.
    fn watch_level(&mut self) {
        let max = self.limits.max_bytes.max(1);
        let fraction = self.pending_bytes as f64 / max as f64;
        let pending = || self.store.pending().unwrap_or(u64::MAX);
        let next = match self.level {
            level if self.pending_bytes >= max && level != Level::Full => {
                Some((Level::Full, "QueueFull"))
            }
            Level::Normal | Level::Emptying if fraction >= self.limits.filling => {
                Some((Level::Filling, "QueueFilling"))
            }
            Level::Filling | Level::Full if fraction < self.limits.emptying => {
                Some((Level::Emptying, "QueueEmptying"))
            }
            Level::Emptying if pending() == 0 => Some((Level::Normal, "QueueEmpty")),
            _ => None,
        };
        let Some((level, state)) = next else {
            return;
        };
        self.level = level;
        let pending = pending();
        let percent = fraction * 100.0;
        match level {
            Level::Filling | Level::Full => {
                warn!(
                    state,
                    spool_bytes = self.pending_bytes,
                    pending,
                    "spool at {percent:.0}% of max_spool_bytes"
                )
            }
            Level::Emptying | Level::Normal => {
                info!(
                    state,
                    spool_bytes = self.pending_bytes,
                    pending,
                    "spool at {percent:.0}% of max_spool_bytes"
                )
            }
        }
        let event = Event::queue_event(state, self.pending_bytes, max, pending);
        let body = event.json();
        let stored = self.store.transaction().and_then(|transaction| {
            transaction
                .prepare_cached("INSERT INTO events (id, body, accepted_at) VALUES (?1, ?2, ?3)")?
                .execute(params![event.id(), &body[..], now_ms()])?;
            let seq = transaction.last_insert_rowid();
            transaction.commit()?;
            Ok(seq)
        });
        match stored {
            Ok(seq) => {
                self.pending_bytes += body.len() as u64;
                self.dispatch(Work::new(seq, event));
            }
            Err(err) => error!("cannot store the {state} queue event: {err}"),
        }
    }

    /// Events found in the spool at start: resumed, or scheduled when their
    /// retry is due.
    fn resume(&mut self, unfinished: store::Unfinished) {
        let count = unfinished.to_run.len() + unfinished.waiting.len();
        if count == 0 {
            return;
        }
        info!(events = count, "resuming events left in the spool");
        for (due, seq) in unfinished.waiting {
            self.due.push(Reverse((due, seq)));
        }
        self.backlog = unfinished.to_run.into();
        self.load_backlog();
    }

    /// Hands events left from the last run to the lanes while they have
    /// room (`queue_capacity`).
    fn load_backlog(&mut self) {
        while self.lanes.is_some() && self.in_lanes < self.limits.in_memory {
            let Some(seq) = self.backlog.pop_front() else {
                return;
            };
            self.load_and_dispatch(seq, "an event left from the last run");
        }
    }
}

/// The work for a stored event; one whose body no longer parses is logged
/// and left in the spool for a person.
fn work_from(stored: store::Stored) -> Option<Work> {
    match Event::restore(&stored.body) {
        Ok(event) => Some(Work {
            seq: stored.seq,
            event,
            done: stored.done,
            resume: stored.resume,
            replay: stored.replay,
        }),
        Err(err) => {
            error!(
                seq = stored.seq,
                "an event in the spool cannot be read back: {err}"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::queue::Queue;

    fn limits(in_memory: usize) -> Limits {
        Limits {
            fsync: Fsync::Never,
            in_memory,
            max_bytes: 1 << 30,
            dedupe_window: Duration::from_secs(3600),
            max_dedupe_bytes: 1 << 20,
            filling: 0.8,
            emptying: 0.2,
        }
    }

    async fn submit(spool: &Spool, id: &str) -> Result<Accepted, Rejection> {
        let line = format!(r#"{{"Id":"{id}","JobId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}}"#);
        let event = Event::from_line(line.as_bytes(), jiff::Timestamp::now()).unwrap();
        Queue::new(spool.sender()).submit(event).outcome().await
    }

    #[tokio::test]
    async fn events_left_from_the_last_run_are_loaded_as_the_lanes_have_room() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Store::open(dir.path(), Fsync::Never).unwrap();
        // Twenty events of one job accepted, never handled.
        let (lanes, unhandled) = Lanes::new(1);
        let spool = Spool::start(open(), limits(100), lanes).unwrap();
        for i in 0..20 {
            assert!(submit(&spool, &format!("old{i}")).await.is_ok());
        }
        spool.stop();
        drop(unhandled);

        let (lanes, mut receivers) = Lanes::new(1);
        let spool = Arc::new(Spool::start(open(), limits(5), lanes).unwrap());
        let lane = &mut receivers[0];
        let recorder = spool.recorder();
        let mut newer = None;
        for i in 0..20 {
            let work = lane.recv().await.unwrap();
            assert_eq!(work.event.id(), format!("old{i}"));
            assert!(
                lane.len() < 5,
                "{} in the lane besides this one",
                lane.len()
            );
            if i == 0 {
                // A new event of the same job waits for the old ones.
                let spool = spool.clone();
                newer = Some(tokio::spawn(async move { submit(&spool, "new").await }));
            }
            recorder.record(Record::Finished { seq: work.seq });
        }
        assert_eq!(lane.recv().await.unwrap().event.id(), "new");
        assert!(newer.unwrap().await.unwrap().is_ok());
    }
}
