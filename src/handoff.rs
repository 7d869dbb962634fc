//! Handing a batch of items to a thread of its own and awaiting the results,
//! with a limit on each item rather than on the batch.
//!
//! Scripts and file writes run on threads of their own, so that one stuck in
//! a C call or in the kernel cannot stall the runtime. Waking a sleeping
//! thread, and being woken back, costs more than the work itself, so a caller
//! hands over every item it has at once and is woken once, when the thread is
//! done with all of them. The thread reports each item as it starts and as it
//! ends; when no progress has been made for longer than the caller's
//! patience, the caller gives up: it keeps the results made so far, learns
//! how long the item under way has been running, and the thread — once it
//! gets back, if ever — starts none of the remaining items.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The last sign of progress of one thread, over every batch handed to it:
/// a batch waiting behind others on a thread that keeps going is not given
/// up; one behind an item that is stuck is.
#[derive(Debug)]
pub struct Pulse(Mutex<Instant>);

impl Pulse {
    pub fn new() -> Arc<Pulse> {
        Arc::new(Pulse(Mutex::new(Instant::now())))
    }

    fn beat(&self) {
        *self.0.lock() = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock()
    }
}

/// Starts a handoff of up to `items` items to the thread whose progress
/// `pulse` shows: the caller's end and the thread's end.
pub fn handoff<R>(items: usize, pulse: &Arc<Pulse>) -> (Waiting<R>, Progress<R>) {
    let shared = Arc::new(Mutex::new(Shared {
        results: Vec::with_capacity(items),
        handed_over: Instant::now(),
        pulse: pulse.clone(),
        given_up: false,
    }));
    let (done, finished) = oneshot::channel();
    (
        Waiting {
            shared: shared.clone(),
            finished,
        },
        Progress {
            shared,
            _done: done,
        },
    )
}

struct Shared<R> {
    results: Vec<R>,
    handed_over: Instant,
    pulse: Arc<Pulse>,
    given_up: bool,
}

impl<R> Shared<R> {
    /// Ends the batch for the thread (no item starts after this) and takes
    /// the results so far.
    fn give_up(&mut self, stuck: Option<Duration>) -> Outcome<R> {
        self.given_up = true;
        Outcome {
            results: std::mem::take(&mut self.results),
            stuck,
        }
    }

    /// The last sign of progress that counts for this batch.
    fn since(&self) -> Instant {
        self.handed_over.max(self.pulse.last())
    }
}

/// The thread's end: dropping it tells the caller the thread is done.
pub struct Progress<R> {
    shared: Arc<Mutex<Shared<R>>>,
    /// Never sent: its drop wakes the caller.
    _done: oneshot::Sender<()>,
}

impl<R> Progress<R> {
    /// Marks the start of the next item; false once the caller gave up (the
    /// item must not be started).
    pub fn begin(&self) -> bool {
        let shared = self.shared.lock();
        if shared.given_up {
            return false;
        }
        shared.pulse.beat();
        true
    }

    /// The result of the item begun last.
    pub fn end(&self, result: R) {
        self.shared.lock().results.push(result);
    }
}

/// The caller's end. Dropping it (the caller was cancelled) gives up.
pub struct Waiting<R> {
    shared: Arc<Mutex<Shared<R>>>,
    finished: oneshot::Receiver<()>,
}

/// What the thread did with a batch.
pub struct Outcome<R> {
    /// The results of the first items, in order; fewer than the items when
    /// the thread stopped or was given up on.
    pub results: Vec<R>,
    /// Set when given up on: how long the thread had gone without starting
    /// an item (the one under way, or one of a batch ahead of this one).
    pub stuck: Option<Duration>,
}

impl<R> Waiting<R> {
    /// Waits until the thread is done with the batch (or gone), or until it
    /// has started no item for longer than `patience`.
    pub async fn outcome(mut self, patience: Duration) -> Outcome<R> {
        loop {
            let since = self.shared.lock().since();
            let deadline = tokio::time::Instant::from_std(since + patience);
            if tokio::time::timeout_at(deadline, &mut self.finished)
                .await
                .is_ok()
            {
                return self.shared.lock().give_up(None);
            }
            // Checked and given up under one lock: an item the thread starts
            // meanwhile is either seen here or never started.
            let mut shared = self.shared.lock();
            let stalled = shared.since().elapsed();
            if stalled >= patience {
                return shared.give_up(Some(stalled));
            }
        }
    }
}

impl<R> Drop for Waiting<R> {
    fn drop(&mut self) {
        self.shared.lock().given_up = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_result_comes_back_in_order_with_one_wake_up() {
        let (waiting, progress) = handoff::<u32>(3, &Pulse::new());
        std::thread::spawn(move || {
            for item in 0..3 {
                assert!(progress.begin());
                progress.end(item * 10);
            }
        });
        let outcome = waiting.outcome(Duration::from_secs(5)).await;
        assert_eq!(outcome.results, vec![0, 10, 20]);
        assert_eq!(outcome.stuck, None);
    }

    #[tokio::test]
    async fn a_stuck_item_gives_up_the_rest_but_keeps_what_was_done() {
        let (waiting, progress) = handoff::<u32>(3, &Pulse::new());
        let (release, wait_for_release) = std::sync::mpsc::channel::<()>();
        let (started_after, started) = std::sync::mpsc::channel::<bool>();
        std::thread::spawn(move || {
            assert!(progress.begin());
            progress.end(1);
            assert!(progress.begin());
            let _ = wait_for_release.recv(); // stuck until the caller gave up
            progress.end(2);
            let _ = started_after.send(progress.begin());
        });
        let outcome = waiting.outcome(Duration::from_millis(200)).await;
        assert_eq!(outcome.results, vec![1]);
        assert!(outcome.stuck.unwrap() >= Duration::from_millis(200));
        release.send(()).unwrap();
        assert!(!started.recv().unwrap(), "no item starts once given up");
    }

    #[tokio::test]
    async fn slow_items_that_keep_progressing_are_not_given_up() {
        let (waiting, progress) = handoff::<u32>(4, &Pulse::new());
        std::thread::spawn(move || {
            for item in 0..4 {
                assert!(progress.begin());
                std::thread::sleep(Duration::from_millis(60));
                progress.end(item);
            }
        });
        // Each item takes 60 ms; the batch 240 ms: only an item is bounded.
        let outcome = waiting.outcome(Duration::from_millis(150)).await;
        assert_eq!(outcome.results, vec![0, 1, 2, 3]);
        assert_eq!(outcome.stuck, None);
    }

    #[tokio::test]
    async fn a_batch_queued_behind_a_thread_that_keeps_going_is_not_given_up() {
        let pulse = Pulse::new();
        let (first, first_progress) = handoff::<u32>(5, &pulse);
        let (second, second_progress) = handoff::<u32>(1, &pulse);
        std::thread::spawn(move || {
            // Five items of 60 ms each before the second batch's turn.
            for item in 0..5 {
                assert!(first_progress.begin());
                std::thread::sleep(Duration::from_millis(60));
                first_progress.end(item);
            }
            drop(first_progress);
            assert!(second_progress.begin());
            second_progress.end(7);
        });
        let second = second.outcome(Duration::from_millis(150)).await;
        assert_eq!(second.results, vec![7]);
        assert_eq!(
            first
                .outcome(Duration::from_millis(150))
                .await
                .results
                .len(),
            5
        );
    }

    #[tokio::test]
    async fn a_thread_that_ends_early_is_not_waited_for() {
        let (waiting, progress) = handoff::<u32>(3, &Pulse::new());
        std::thread::spawn(move || {
            progress.begin();
            progress.end(7);
        });
        let outcome = waiting.outcome(Duration::from_secs(60)).await;
        assert_eq!(outcome.results, vec![7]);
        assert_eq!(outcome.stuck, None);
    }
}
