//! The spool's thread: it waits for messages, takes what arrived together
//! into one group commit ([`commit`](super::commit)), then hands out what is
//! due as the lanes have room — events left from the last run or waiting on
//! disk, retries once due, replays asked for — and does the housekeeping.
//!
//! After a crash or a stop, the events left are resumed at start: handlers
//! already done are skipped, a waiting retry fires once due, and an
//! event a script changed resumes as changed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::backlog::Backlog;
use super::commit::{RETRY_FAILED_COMMIT, Scratch, Unwritten};
use super::dedupe::Dedupe;
use super::levels::Level;
use super::store::{self, Fsync, Store};
use crate::event::Event;
use crate::lifecycle::Heartbeat;
use crate::spool::StartError;
use crate::spool::protocol::{Message, Receipt, Work, now_ms};
use crate::spool::{Lanes, Limits, Status};
use crate::telemetry::AcceptedMetrics;

/// Events read back into the lanes (from the backlog, or due retries) in
/// one transaction, at most: enough to share its cost, few enough not to
/// hold up the next commit.
const LOAD_AT_ONCE: usize = 256;

/// Most messages (new events and progress records) taken into one commit.
pub(super) const MAX_BATCH: usize = 1024;
/// How often dead letters marked for replay are looked for and the ids seen
/// long ago forgotten.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// What the spool's thread owns and keeps track of.
pub(super) struct SpoolThread {
    pub(super) store: Store,
    pub(super) limits: Limits,
    /// Gone once the workers are finishing up.
    pub(super) lanes: Option<Lanes>,
    /// Retries waiting, by due time (ms) then receipt.
    pub(super) due: BinaryHeap<Reverse<(i64, i64)>>,
    /// Events handed to the lanes whose chain has not finished or paused.
    pub(super) in_lanes: usize,
    /// Events stored and not yet loaded (left from the last run, or
    /// accepted while the lanes were full): they are read into the lanes
    /// as room frees up, so a large backlog is never all in memory.
    pub(super) backlog: Backlog,
    /// Bytes of the pending events' bodies, kept as they are stored and
    /// deleted: what `max_bytes` bounds.
    pub(super) pending_bytes: u64,
    /// Pending events, counted as they are stored and deleted (counting
    /// the rows of a spool that holds an outage's worth would take the
    /// spool's thread a while, every time).
    pub(super) pending_events: u64,
    pub(super) dedupe: Dedupe,
    pub(super) level: Level,
    /// Events with progress rows written, to clear when they finish.
    pub(super) with_progress: HashSet<Receipt>,
    /// Whether due retries went first the last time they shared the room
    /// with the backlog ([`SpoolThread::hand_out`]).
    retries_first: bool,
    /// What failed commits left to write.
    pub(super) unwritten: Unwritten,
    /// The lists each commit fills and empties, kept for the next.
    pub(super) scratch: Scratch,
    /// Levels and writability, for `/health` and `/metrics`.
    pub(super) status: Arc<Status>,
    pub(super) accepted: AcceptedMetrics,
}

impl SpoolThread {
    /// Reads what `store` holds (where events stand, their bytes, the ids
    /// remembered) and lines up the events left from the last run.
    pub(super) fn resume(
        store: Store,
        limits: Limits,
        lanes: Lanes,
        status: Arc<Status>,
    ) -> Result<SpoolThread, StartError> {
        let unreadable = |source| StartError::Unreadable {
            path: store.path().to_owned(),
            source,
        };
        let live = store.live_seqs().map_err(unreadable)?;
        let pending_events = live.len() as u64;
        let (with_progress, orphaned) = store.with_progress(&live).map_err(unreadable)?;
        if orphaned > 0 {
            warn!(
                rows = orphaned,
                "deleted progress rows of events no longer in the spool (left by an earlier \
                 version when an event finished in a later run than its progress was written)"
            );
        }
        let unfinished = store.unfinished(live).map_err(unreadable)?;
        let pending_bytes = store.pending_bytes().map_err(unreadable)?;
        let dedupe = Dedupe::new(&store, limits.dedupe_window, limits.max_dedupe_bytes)
            .map_err(unreadable)?;
        let mut thread = SpoolThread {
            store,
            limits,
            lanes: Some(lanes),
            due: BinaryHeap::new(),
            in_lanes: 0,
            pending_bytes,
            pending_events,
            dedupe,
            level: Level::Normal,
            with_progress,
            retries_first: false,
            backlog: Backlog::default(),
            unwritten: Unwritten::default(),
            scratch: Scratch::default(),
            status,
            accepted: AcceptedMetrics::register(),
        };
        thread.schedule(unfinished);
        thread
            .status
            .set_levels(thread.pending_events, thread.pending_bytes);
        Ok(thread)
    }

    /// Runs until stopped, beating `heartbeat` each time round.
    pub(super) fn run(mut self, receiver: &mpsc::Receiver<Message>, heartbeat: &Heartbeat) {
        let mut housekeeping = Instant::now();
        // With `fsync = "always"` a second new event waits for the next commit.
        let mut held: Option<Message> = None;
        // Reused from batch to batch.
        let mut batch: Vec<Message> = Vec::new();
        loop {
            heartbeat.beat();
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
            self.watch_level();
            self.hand_out();
            if housekeeping.elapsed() >= HOUSEKEEPING {
                housekeeping = Instant::now();
                self.housekeeping();
            }
            if stop {
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
        // A retry due while nothing is handed out waits for the commit
        // retried below, and one due while the lanes are full for the
        // progress record that frees a place, not for a wake-up that would
        // spin.
        let until_due = match self.due.peek() {
            Some(Reverse((due, _))) if self.handing_out() && self.lanes_room() > 0 => {
                Duration::from_millis((due - now_ms()).max(0) as u64)
            }
            _ => Duration::MAX,
        };
        let until_commit_retried = if self.unwritten.records.is_empty() {
            Duration::MAX
        } else {
            RETRY_FAILED_COMMIT
        };
        until_housekeeping.min(until_due).min(until_commit_retried)
    }

    /// Hands an event to its lane; while stopping, it stays in the spool
    /// for the next start instead.
    pub(super) fn dispatch(&mut self, work: Work) {
        if let Some(lanes) = &self.lanes {
            self.in_lanes += 1;
            lanes.send(work);
        }
    }

    /// Whether the spool hands the workers more to do: not while their
    /// progress records cannot be written. The workers finish what they
    /// hold and wait, rather than running handlers whose progress would
    /// only pile up in memory, to be redone after a crash; they go on once
    /// a commit succeeds.
    fn handing_out(&self) -> bool {
        self.lanes.is_some() && self.unwritten.records.is_empty()
    }

    /// How many more events the lanes hold before `queue_capacity`.
    pub(super) fn lanes_room(&self) -> usize {
        self.limits.in_memory.saturating_sub(self.in_lanes)
    }

    /// Hands out due retries and the backlog as the lanes have room
    /// (`queue_capacity`): during an outage every event accepted may be
    /// waiting for its retry, and they must not all come into memory at
    /// once when they come due. When both wait they share the room: the
    /// one whose turn it is takes up to half (the odd place too), the
    /// other what it needs of the rest, then the first what is left; they
    /// take turns, so neither holds the lanes while the other waits.
    fn hand_out(&mut self) {
        let room = self.lanes_room();
        let now = now_ms();
        let retry_due = matches!(self.due.peek(), Some(Reverse((due, _))) if *due <= now);
        if room == 0 || !retry_due || self.backlog.is_empty() {
            // Nothing to share: the turn stays where it is.
            self.fire_due_retries(usize::MAX);
            self.load_backlog(usize::MAX);
            return;
        }
        let half = room.div_ceil(2);
        self.retries_first = !self.retries_first;
        if self.retries_first {
            self.fire_due_retries(half);
            self.load_backlog(usize::MAX);
            self.fire_due_retries(usize::MAX);
        } else {
            self.load_backlog(half);
            self.fire_due_retries(usize::MAX);
            self.load_backlog(usize::MAX);
        }
    }

    /// Up to `most` events whose retry is due go back to their lane.
    fn fire_due_retries(&mut self, most: usize) {
        let now = now_ms();
        self.fill_lanes("a due retry", most, |thread| {
            let Reverse((due, seq)) = *thread.due.peek()?;
            (due <= now).then(|| {
                thread.due.pop();
                Receipt(seq)
            })
        });
    }

    /// Reads up to `most` of the events `next` names into the lanes while
    /// they have room (`queue_capacity`), up to `LOAD_AT_ONCE` in one read
    /// transaction, until it names none. One that cannot be read stays in
    /// the spool and is logged as `what`.
    fn fill_lanes(
        &mut self,
        what: &str,
        mut most: usize,
        mut next: impl FnMut(&mut Self) -> Option<Receipt>,
    ) {
        while most > 0 && self.handing_out() && self.lanes_room() > 0 {
            let take = self.lanes_room().min(LOAD_AT_ONCE).min(most);
            let receipts: Vec<Receipt> = std::iter::from_fn(|| next(self)).take(take).collect();
            if receipts.is_empty() {
                return;
            }
            most -= receipts.len();
            let loaded = self.store.load_all(&receipts, &self.with_progress);
            for (receipt, loaded) in receipts.into_iter().zip(loaded) {
                self.dispatch_loaded(receipt, loaded, what);
            }
        }
    }

    fn dispatch_loaded(
        &mut self,
        receipt: Receipt,
        loaded: rusqlite::Result<Option<store::Stored>>,
        what: &str,
    ) {
        match loaded {
            Ok(Some(stored)) => {
                if let Some(work) = work_from(stored) {
                    self.dispatch(work);
                }
            }
            Ok(None) => {}
            Err(err) => error!(seq = receipt.0, "cannot read {what} from the spool: {err}"),
        }
    }

    fn housekeeping(&mut self) {
        // Replays wait for room like any event: `queue_capacity` at a time,
        // after the backlog, within `max_spool_bytes`.
        let room = self.room();
        if self.handing_out() && room > 0 {
            match self.store.take_replays(now_ms(), room) {
                Ok(replays) => {
                    if !replays.is_empty() {
                        info!(count = replays.len(), "replaying dead letters");
                    }
                    for stored in replays {
                        self.pending_bytes += stored.body.len() as u64;
                        self.pending_events += 1;
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
        self.status
            .set_levels(self.pending_events, self.pending_bytes);
    }

    /// Events found in the spool at start: resumed, or scheduled when their
    /// retry is due.
    fn schedule(&mut self, unfinished: store::Unfinished) {
        let count = unfinished.to_run.len() + unfinished.waiting.len();
        if count == 0 {
            return;
        }
        info!(events = count, "resuming events left in the spool");
        for (due, Receipt(seq)) in unfinished.waiting {
            self.due.push(Reverse((due, seq)));
        }
        self.backlog.extend(unfinished.to_run);
        self.load_backlog(usize::MAX);
    }

    /// Hands up to `most` events of the backlog to the lanes while they
    /// have room (`queue_capacity`).
    fn load_backlog(&mut self, most: usize) {
        self.fill_lanes("an event of the backlog", most, |thread| {
            thread.backlog.pop()
        });
    }
}

/// The work for a stored event; one whose body no longer parses is logged
/// and left in the spool for a person.
fn work_from(stored: store::Stored) -> Option<Work> {
    match Event::restore(&stored.body) {
        Ok(event) => Some(Work {
            receipt: stored.receipt,
            event,
            done: stored.done,
            resume: stored.resume,
            replay: stored.replay,
        }),
        Err(err) => {
            error!(
                seq = stored.receipt.0,
                "an event in the spool cannot be read back: {err}"
            );
            None
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
