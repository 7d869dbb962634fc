//! What the daemon tells whoever supervises it: lifecycle events (ready,
//! reloading, reloaded, stopping) and a heartbeat of its event path.
//!
//! The daemon and the reloader call an [`Observer`]; systemd notification
//! (`service::systemd`), the Windows service and, later, the admin API each
//! implement the methods they care about — every method has a no-op default.
//! [`Observers`] hands each event to several in turn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The new config and pipeline serve every event that starts from now on.
    Applied,
    /// The change was refused (invalid, or it looks like an accident); the
    /// running config stays. Each problem as printed, `FILE:LINE:COL: …`
    /// where it has a place.
    Refused { problems: Vec<String> },
    /// A stop began before the reload finished; nothing was applied.
    Abandoned,
}

/// Receives the daemon's lifecycle events. Every method runs on the task
/// that emits the event and must return quickly: one that needs to wait
/// hands the work to a task or thread of its own.
pub trait Observer: Send + Sync {
    /// Once, when the socket is bound, the spool is open and the pipeline
    /// is built: events are accepted from now on.
    fn ready(&self) {}
    /// A reload begins, whatever asked for it (a file change, SIGHUP, the
    /// admin API): the changed files have settled and are being built.
    /// Exactly one [`Observer::reloaded`] follows.
    fn reloading(&self) {}
    /// A reload ended; events keep being accepted whatever the outcome.
    fn reloaded(&self, _outcome: &Reloaded) {}
    /// Once, when a stop begins: no new events are accepted, those accepted
    /// are given `shutdown_timeout` to finish, then the spool commits what
    /// is left; the whole stop should be over `within`.
    fn stopping(&self, _within: Duration) {}
}

/// Several observers, each told every event in the order they were given.
#[derive(Clone, Default)]
pub struct Observers(Arc<[Arc<dyn Observer>]>);

impl Observers {
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> Observers {
        Observers(observers.into())
    }
}

impl Observer for Observers {
    fn ready(&self) {
        self.0.iter().for_each(|observer| observer.ready());
    }

    fn reloading(&self) {
        self.0.iter().for_each(|observer| observer.reloading());
    }

    fn reloaded(&self, outcome: &Reloaded) {
        self.0
            .iter()
            .for_each(|observer| observer.reloaded(outcome));
    }

    fn stopping(&self, within: Duration) {
        self.0.iter().for_each(|observer| observer.stopping(within));
    }
}

/// What the daemon reports to (see `daemon::main`): the observers of its
/// lifecycle, and the heartbeats of its event path for a watchdog to read.
#[derive(Clone, Default)]
pub struct Supervision {
    pub observers: Observers,
    /// Beaten by the spool thread each time round its loop (at least once a
    /// second while idle).
    pub spool: Heartbeat,
    /// Beaten by a task on the daemon's runtime (once a second).
    pub runtime: Heartbeat,
}

impl Supervision {
    /// The part of the event path silent for longer than `limit`, if one
    /// is, and for how long.
    pub fn stuck(&self, limit: Duration) -> Option<(&'static str, Duration)> {
        [
            ("the spool thread", &self.spool),
            ("the runtime", &self.runtime),
        ]
        .into_iter()
        .find_map(|(part, heartbeat)| {
            heartbeat
                .age()
                .filter(|age| *age > limit)
                .map(|age| (part, age))
        })
    }
}

/// When a loop last came round: the thread that owns it calls
/// [`Heartbeat::beat`] once per turn, a watchdog reads [`Heartbeat::age`].
/// Clones share the beat. Cheap enough for every turn of a hot loop (one
/// relaxed store).
#[derive(Clone, Default)]
pub struct Heartbeat(Arc<AtomicU64>);

/// The origin of beat times: beats are stored as microseconds since it,
/// plus one (0 means "never beaten").
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Heartbeat {
    pub fn beat(&self) {
        let since = u64::try_from(origin().elapsed().as_micros()).unwrap_or(u64::MAX - 1);
        self.0.store(since + 1, Ordering::Relaxed);
    }

    /// How long ago the last beat was; `None` before the first one (the
    /// loop has not started: nothing to judge yet).
    pub fn age(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            beat => Some(
                origin()
                    .elapsed()
                    .saturating_sub(Duration::from_micros(beat - 1)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl Observer for Record {
        fn ready(&self) {
            self.0.lock().unwrap().push("ready".into());
        }

        fn reloaded(&self, outcome: &Reloaded) {
            self.0.lock().unwrap().push(format!("{outcome:?}"));
        }
    }

    #[test]
    fn every_observer_is_told_in_order_and_unimplemented_events_are_ignored() {
        let (first, second) = (Arc::new(Record::default()), Arc::new(Record::default()));
        let observers = Observers::new(vec![first.clone(), second.clone()]);
        observers.ready();
        observers.reloading();
        observers.reloaded(&Reloaded::Applied);
        observers.stopping(Duration::from_secs(1));
        for record in [first, second] {
            assert_eq!(*record.0.lock().unwrap(), ["ready", "Applied"]);
        }
    }

    #[test]
    fn the_part_silent_longer_than_the_limit_is_stuck_and_one_not_started_is_not() {
        let supervision = Supervision::default();
        assert_eq!(supervision.stuck(Duration::ZERO), None);
        supervision.spool.beat();
        supervision.runtime.beat();
        std::thread::sleep(Duration::from_millis(30));
        supervision.runtime.beat();
        assert_eq!(supervision.stuck(Duration::from_secs(5)), None);
        let (part, silent) = supervision.stuck(Duration::from_millis(20)).expect("stuck");
        assert_eq!(part, "the spool thread");
        assert!(silent >= Duration::from_millis(30), "{silent:?}");
    }

    #[test]
    fn a_heartbeat_has_no_age_until_it_beats_and_clones_share_it() {
        let heartbeat = Heartbeat::default();
        assert_eq!(heartbeat.age(), None);
        heartbeat.clone().beat();
        std::thread::sleep(Duration::from_millis(20));
        let age = heartbeat.age().expect("beaten");
        assert!(
            age >= Duration::from_millis(20) && age < Duration::from_secs(5),
            "{age:?}"
        );
    }
}
