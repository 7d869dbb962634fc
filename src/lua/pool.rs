//! A script's states, each on a thread of its own, lent to one call at a
//! time.
//!
//! Nothing a script does runs on the daemon's runtime threads: a state lives
//! on its thread, a call is handed to it and its answer awaited. The HTTP a
//! script asks for still runs on the runtime (the state's thread waits on
//! it). A call that does not answer in time — a C function that runs on, a
//! metamethod past its deadline — is abandoned: its thread is left to finish
//! by itself and its state is never used again; the next call gets a fresh
//! thread. Nothing ever waits for a script's thread: not a reload, not a stop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::{Semaphore, oneshot};
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
    states: usize,
    /// Threads of this script still running: free, lent, or abandoned and
    /// not yet ended.
    threads: Arc<AtomicUsize>,
}

impl ScriptPool {
    /// Starts one state (compiling the script and running its chunk), so
    /// that a broken script is reported before anything starts; more, up to
    /// `states`, are started as calls overlap.
    pub fn start(spec: ScriptSpec, states: usize) -> mlua::Result<ScriptPool> {
        let threads = Arc::new(AtomicUsize::new(0));
        let (thread, ready) = StateThread::spawn(spec.clone(), threads.clone())?;
        ready.blocking_recv().map_err(|_| thread_ended())??;
        Ok(ScriptPool {
            spec,
            free: Mutex::new(vec![thread]),
            permits: Semaphore::new(states.max(1)),
            states: states.max(1),
            threads,
        })
    }

    /// Runs `handle(event)`; a table it returns is the event from now on.
    pub async fn call(&self, event: &Event) -> Result<Option<Event>, HandlerError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HandlerError::retryable("the script's Lua states are closed"))?;
        let thread = self.free.lock().ok().and_then(|mut free| free.pop());
        let thread = match thread {
            Some(thread) => thread,
            None => self.fresh_thread().await?,
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            event: event.clone(),
            runtime: Handle::current(),
            reply,
        };
        if thread.jobs.send(job).is_err() {
            return Err(HandlerError::retryable(describe(&thread_ended())));
        }
        let mut borrowed = Borrowed {
            pool: self,
            thread: Some(thread),
            answered: false,
        };
        let (result, spoiled) = answer.await.unwrap_or_else(|_| {
            (
                Err(HandlerError::retryable(describe(&thread_ended()))),
                true,
            )
        });
        borrowed.answered = true;
        if spoiled {
            // Its thread ends after this answer, dropping the state there.
            borrowed.thread = None;
        }
        result
    }

    /// See [`crate::handlers::lua::LuaHandler::replayed`].
    pub fn replayed(&self) {
        if let Some(api) = &self.spec.env.api {
            api.rearm();
        }
    }

    /// A state on a new thread, its chunk run there.
    async fn fresh_thread(&self) -> Result<StateThread, HandlerError> {
        let failed = |err: &mlua::Error| {
            error!(script = %self.spec.path.display(), "cannot renew a Lua state: {}", describe(err));
            HandlerError::retryable(describe(err))
        };
        let running = self.threads.load(Ordering::Relaxed);
        if running >= self.states + MAX_STUCK {
            return Err(HandlerError::retryable(format!(
                "{} of this script's Lua states are still stuck in calls given up on; \
                 no new state is started until they end",
                running + 1 - self.states
            )));
        }
        let (thread, ready) = StateThread::spawn(self.spec.clone(), self.threads.clone())
            .map_err(|err| failed(&err))?;
        match ready.await {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(err)) => Err(failed(&err)),
            Err(_) => Err(failed(&thread_ended())),
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
            if let Ok(mut free) = self.pool.free.lock() {
                free.push(thread);
            }
            return;
        }
        let total = ABANDONED.fetch_add(1, Ordering::Relaxed) + 1;
        warn!(
            script = %self.pool.spec.path.display(),
            lua_states_abandoned_total = total,
            "a Lua call was given up before it answered; its state is never used again and its thread ends by itself"
        );
    }
}

/// One call handed to a state's thread.
struct Job {
    event: Event,
    /// The daemon's runtime, which runs the HTTP a script asks for.
    runtime: Handle,
    /// The outcome, and whether the state must not be used again.
    reply: oneshot::Sender<(Result<Option<Event>, HandlerError>, bool)>,
}

/// The sending end of a state's thread; dropping it ends the thread once
/// its current call (if any) is over.
#[derive(Debug)]
struct StateThread {
    jobs: mpsc::Sender<Job>,
}

impl StateThread {
    /// Starts a thread that builds a state of `spec` and then runs the jobs
    /// sent to it; the receiver says whether the state was built.
    fn spawn(
        spec: ScriptSpec,
        threads: Arc<AtomicUsize>,
    ) -> mlua::Result<(StateThread, oneshot::Receiver<mlua::Result<()>>)> {
        let (jobs, receive) = mpsc::channel::<Job>();
        let (ready, built) = oneshot::channel();
        threads.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(threads);
        std::thread::Builder::new()
            .name("jobhook-lua".to_owned())
            .spawn(move || {
                let _counted = counted;
                let mut state = match ScriptState::new(&spec) {
                    Ok(state) => state,
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                while let Ok(job) = receive.recv() {
                    let (result, spoiled) = job.runtime.block_on(state.run(&job.event));
                    let _ = job.reply.send((result, spoiled));
                    if spoiled {
                        return;
                    }
                }
            })
            .map_err(|err| mlua::Error::runtime(format!("cannot start a Lua thread: {err}")))?;
        Ok((StateThread { jobs }, built))
    }
}

/// Counts a state's thread while it runs (dropped when the thread ends,
/// or with the closure if the thread could not start).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn thread_ended() -> mlua::Error {
    mlua::Error::runtime("the Lua state's thread ended unexpectedly")
}
