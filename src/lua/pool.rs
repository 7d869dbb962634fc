//! A script's states, each on a thread of its own, lent to one caller at a
//! time.
//!
//! Nothing a script does runs on the daemon's runtime threads: a state lives
//! on its thread, the calls of a batch are handed to it at once and their
//! answers awaited (see `crate::handoff`). The HTTP a script asks for still
//! runs on the runtime (the state's thread waits on it). A call that does
//! not answer in time — a C function that runs on, a metamethod past its
//! deadline — is abandoned: its thread is left to finish by itself and its
//! state is never used again; the calls after it get a fresh thread.
//! Nothing ever waits for a script's thread: not a reload, not a stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, oneshot};

use crate::handoff::{Progress, Pulse, handoff};
use tracing::{error, warn};

use super::api::ScriptEnv;
use super::state::ScriptState;
use super::{Limits, Scripting, describe};
use crate::event::Event;
use crate::failure::HandlerError;

/// Where a script keeps its `handle` function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A global `handle` (or `handler`) function: scripts named by a section.
    Global,
    /// The `handle` field of the table the chunk returns: drop-in scripts.
    Returned,
}

/// Everything a state of one script is built from.
#[derive(Debug, Clone)]
pub struct ScriptSpec {
    pub path: PathBuf,
    pub scripts_dir: PathBuf,
    pub entry: Entry,
    pub limits: Limits,
    pub(super) env: ScriptEnv,
}

impl ScriptSpec {
    pub fn new(
        name: &str,
        path: PathBuf,
        entry: Entry,
        limits: Limits,
        scripting: &Scripting,
    ) -> ScriptSpec {
        ScriptSpec {
            env: scripting.env(name, &limits.allow_env, limits.memory_limit),
            path,
            scripts_dir: scripting.scripts_dir.clone(),
            entry,
            limits,
        }
    }
}

/// States abandoned mid-call since the daemon started (their threads were
/// left to finish by themselves).
static ABANDONED: AtomicU64 = AtomicU64::new(0);

/// Abandoned states a script may have still running before its calls fail
/// at once instead of starting more threads: a script stuck in a C call on
/// every event would otherwise add a busy thread per event.
const MAX_STUCK: usize = 4;

/// The states running one script.
#[derive(Debug)]
pub struct ScriptPool {
    spec: ScriptSpec,
    free: Mutex<Vec<StateThread>>,
    /// One permit per state.
    permits: Semaphore,
    /// Threads of this script abandoned mid-call and not yet ended.
    stuck: Arc<AtomicUsize>,
}

impl ScriptPool {
    /// Starts one state (compiling the script and running its chunk), so
    /// that a broken script is reported before anything starts; more, up to
    /// `states`, are started as calls overlap.
    pub fn start(spec: ScriptSpec, states: usize) -> mlua::Result<ScriptPool> {
        let stuck = Arc::new(AtomicUsize::new(0));
        let (thread, ready) = StateThread::spawn(spec.clone(), stuck.clone())?;
        ready.blocking_recv().map_err(|_| thread_ended())??;
        Ok(ScriptPool {
            spec,
            free: Mutex::new(vec![thread]),
            permits: Semaphore::new(states.max(1)),
            stuck,
        })
    }

    /// Runs `handle(event)` for each event in turn; a table it returns is
    /// that event from now on. An event's call is given up once it has run
    /// for `patience`; the events after it go to another state.
    pub async fn call_many(&self, events: &[&Event], patience: Duration) -> Vec<Called> {
        let mut called = Vec::with_capacity(events.len());
        while called.len() < events.len() {
            let rest = &events[called.len()..];
            if let Err(error) = self.call_on_one_state(rest, patience, &mut called).await {
                called.resize(events.len(), Err(error));
            }
        }
        called
    }

    /// Runs `events` in turn on one state, for as long as it can (a call that
    /// spoils the state or is given up on ends its turn), adding the outcome
    /// of each event it ran or gave up on: at least one. Fails when no state
    /// can be had.
    async fn call_on_one_state(
        &self,
        events: &[&Event],
        patience: Duration,
        called: &mut Vec<Called>,
    ) -> Result<(), HandlerError> {
        // Waiting for a state is backpressure, not part of an attempt: each
        // state is lent to calls that are bounded themselves.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HandlerError::retryable("the script's Lua states are closed"))?;
        let thread = self.free.lock().pop();
        let thread = match thread {
            Some(thread) => thread,
            None => self.fresh_thread(patience).await?,
        };
        let (waiting, progress) = handoff(events.len(), &thread.pulse);
        let job = Job {
            events: events.iter().map(|&event| event.clone()).collect(),
            runtime: Handle::current(),
            progress,
        };
        if thread.jobs.send(job).is_err() {
            return Err(HandlerError::retryable(describe(&thread_ended())));
        }
        let mut borrowed = Borrowed {
            pool: self,
            thread: Some(thread),
            answered: false,
        };
        let outcome = waiting.outcome(patience).await;
        let ran = outcome.results.len();
        let mut spoiled = false;
        for (result, spoils) in outcome.results {
            called.push(result);
            spoiled = spoils;
        }
        if ran == events.len() || spoiled {
            borrowed.answered = true;
            if spoiled {
                // Its thread ends after this answer, dropping the state there.
                borrowed.thread = None;
            }
            return Ok(());
        }
        let error = match outcome.stuck {
            // `Borrowed` counts and logs the state abandoned.
            Some(_) => format!("timed out after {}", humantime::format_duration(patience)),
            None => {
                // The thread ended by itself: nothing was given up on.
                borrowed.thread = None;
                describe(&thread_ended())
            }
        };
        called.push(Err(HandlerError::retryable(error)));
        Ok(())
    }

    /// Whether the script has made requests: its calls wait on the network.
    pub fn waits_on_network(&self) -> bool {
        self.spec.env.networked.load(Ordering::Relaxed)
    }

    /// See [`crate::handlers::lua::LuaHandler::replayed`].
    pub fn replayed(&self) {
        if let Some(api) = &self.spec.env.api {
            api.rearm();
        }
    }

    /// A state on a new thread, its chunk run there.
    async fn fresh_thread(&self, patience: Duration) -> Result<StateThread, HandlerError> {
        let failed = |err: &mlua::Error| {
            error!(script = %self.spec.path.display(), "cannot renew a Lua state: {}", describe(err));
            HandlerError::retryable(describe(err))
        };
        let stuck = self.stuck.load(Ordering::Relaxed);
        if stuck >= MAX_STUCK {
            return Err(HandlerError::retryable(format!(
                "{stuck} of this script's Lua states are still stuck in calls given up on; \
                 no new state is started until they end"
            )));
        }
        let (thread, ready) = StateThread::spawn(self.spec.clone(), self.stuck.clone())
            .map_err(|err| failed(&err))?;
        match tokio::time::timeout(patience, ready).await {
            Ok(Ok(Ok(()))) => Ok(thread),
            Ok(Ok(Err(err))) => Err(failed(&err)),
            Ok(Err(_)) => Err(failed(&thread_ended())),
            Err(_) => {
                // Its chunk is stuck (a C call): left to its thread.
                thread.abandon(&self.stuck);
                Err(failed(&mlua::Error::runtime(format!(
                    "the script's chunk did not finish within {} while starting a state",
                    humantime::format_duration(patience)
                ))))
            }
        }
    }
}

/// A thread out of the pool. Put back when the call answered with a state
/// fit for more; dropped (its thread left to end by itself) otherwise, also
/// when the call is cancelled before its answer.
struct Borrowed<'a> {
    pool: &'a ScriptPool,
    thread: Option<StateThread>,
    answered: bool,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if self.answered {
            self.pool.free.lock().push(thread);
            return;
        }
        thread.abandon(&self.pool.stuck);
        let total = ABANDONED.fetch_add(1, Ordering::Relaxed) + 1;
        warn!(
            script = %self.pool.spec.path.display(),
            lua_states_abandoned_total = total,
            "a Lua call was given up before it answered; its state is never used again and its thread ends by itself"
        );
    }
}

/// What one call of `handle` came to.
pub type Called = Result<Option<Event>, HandlerError>;

/// Calls handed to a state's thread.
struct Job {
    events: Vec<Event>,
    /// The daemon's runtime, which runs the HTTP a script asks for.
    runtime: Handle,
    /// Each call's outcome, and whether the state must not be used again.
    progress: Progress<(Called, bool)>,
}

/// The sending end of a state's thread; dropping it ends the thread once
/// its current call (if any) is over.
#[derive(Debug)]
struct StateThread {
    jobs: mpsc::Sender<Job>,
    /// The thread's last sign of progress.
    pulse: Arc<Pulse>,
    /// `RUNNING`, `GIVEN_UP` or `ENDED`.
    fate: Arc<AtomicU8>,
}

const RUNNING: u8 = 0;
const GIVEN_UP: u8 = 1;
const ENDED: u8 = 2;

impl StateThread {
    /// Starts a thread that builds a state of `spec` and then runs the jobs
    /// sent to it; the receiver says whether the state was built.
    fn spawn(
        spec: ScriptSpec,
        stuck: Arc<AtomicUsize>,
    ) -> mlua::Result<(StateThread, oneshot::Receiver<mlua::Result<()>>)> {
        let (jobs, receive) = mpsc::channel::<Job>();
        let (ready, built) = oneshot::channel();
        let fate = Arc::new(AtomicU8::new(RUNNING));
        let ended = Ended {
            fate: fate.clone(),
            stuck,
        };
        std::thread::Builder::new()
            .name("jobhook-lua".to_owned())
            .spawn(move || {
                let _ended = ended;
                let mut state = match ScriptState::new(&spec) {
                    Ok(state) => state,
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                while let Ok(Job {
                    events,
                    runtime,
                    progress,
                }) = receive.recv()
                {
                    let spoiled = runtime.block_on(async {
                        for event in &events {
                            if !progress.begin() {
                                return false;
                            }
                            let (result, spoiled) = state.run(event).await;
                            progress.end((result, spoiled));
                            if spoiled {
                                return true;
                            }
                        }
                        false
                    });
                    if spoiled {
                        return;
                    }
                }
            })
            .map_err(|err| mlua::Error::runtime(format!("cannot start a Lua thread: {err}")))?;
        Ok((
            StateThread {
                jobs,
                fate,
                pulse: Pulse::new(),
            },
            built,
        ))
    }

    /// Counts the thread among the pool's `stuck` until it ends (unless it
    /// already has).
    fn abandon(&self, stuck: &AtomicUsize) {
        if self
            .fate
            .compare_exchange(RUNNING, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            stuck.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Dropped when a state's thread ends (or with the closure if the thread
/// could not start): an abandoned thread no longer counts as stuck.
struct Ended {
    fate: Arc<AtomicU8>,
    stuck: Arc<AtomicUsize>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        if self.fate.swap(ENDED, Ordering::AcqRel) == GIVEN_UP {
            self.stuck.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn thread_ended() -> mlua::Error {
    mlua::Error::runtime("the Lua state's thread ended unexpectedly")
}
