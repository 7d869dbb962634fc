//! A script's states, lent to one call at a time.

use std::path::PathBuf;
use std::sync::Mutex;

use mlua::{Function, Lua, MultiValue, Table, Value};
use tokio::sync::Semaphore;
use tracing::error;

use super::api::{self, CurrentEvent, ScriptEnv};
use super::convert::{FieldNames, event_json, event_to_lua};
use super::sandbox;
use super::{Limits, Scripting, describe};
use crate::event::Event;
use crate::handlers::HandlerError;

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
    env: ScriptEnv,
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

/// The states running one script. A call borrows a free state; scripts run
/// as coroutines on the daemon's runtime and yield every couple of
/// milliseconds, and while they wait for HTTP, so they never hold a runtime
/// thread for long.
#[derive(Debug)]
pub struct ScriptPool {
    spec: ScriptSpec,
    free: Mutex<Vec<ScriptState>>,
    /// One permit per state.
    permits: Semaphore,
}

impl ScriptPool {
    /// Compiles the script and runs its chunk in every state, so that a
    /// broken script is reported before anything starts.
    pub fn start(spec: ScriptSpec, states: usize) -> mlua::Result<ScriptPool> {
        let states = states.max(1);
        let free = (0..states)
            .map(|_| ScriptState::new(&spec))
            .collect::<mlua::Result<Vec<_>>>()?;
        Ok(ScriptPool {
            spec,
            free: Mutex::new(free),
            permits: Semaphore::new(states),
        })
    }

    /// Runs `handle(event)`; a table it returns is the event from now on.
    pub async fn call(&self, event: &Event) -> Result<Option<Event>, HandlerError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HandlerError::retryable("the script's Lua states are closed"))?;
        let state = self.free.lock().ok().and_then(|mut free| free.pop());
        let state = match state {
            Some(state) => state,
            None => self.fresh_state().await?,
        };
        let mut borrowed = Borrowed {
            pool: self,
            state: Some(state),
            spoiled: true,
        };
        let (result, spoiled) = borrowed.state.as_mut().expect("state").run(event).await;
        borrowed.spoiled = spoiled;
        result
    }

    /// A new state, its chunk run on a blocking thread: a slow chunk must
    /// not hold a runtime thread (it is bounded by the deadline and memory
    /// limit, but a deadline is seconds).
    async fn fresh_state(&self) -> Result<ScriptState, HandlerError> {
        let spec = self.spec.clone();
        let built = tokio::task::spawn_blocking(move || ScriptState::new(&spec)).await;
        match built {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(err)) => {
                error!(script = %self.spec.path.display(), "cannot renew a Lua state: {}", describe(&err));
                Err(HandlerError::retryable(describe(&err)))
            }
            Err(err) => Err(HandlerError::retryable(format!(
                "building a Lua state failed: {err}"
            ))),
        }
    }

    fn give_back(&self, state: ScriptState, spoiled: bool) {
        // A state stopped mid-call (deadline, memory, a cancelled attempt)
        // may hold half-updated globals: it is dropped, and the next call
        // builds a fresh one.
        if spoiled {
            return;
        }
        if let Ok(mut free) = self.free.lock() {
            free.push(state);
        }
    }
}

/// A state out of the pool; goes back when dropped, also when the call is
/// cancelled half-way (then `spoiled` is still true).
struct Borrowed<'a> {
    pool: &'a ScriptPool,
    state: Option<ScriptState>,
    spoiled: bool,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.pool.give_back(state, self.spoiled);
        }
    }
}

/// A state with the script loaded and its `handle` function found.
#[derive(Debug)]
struct ScriptState {
    lua: Lua,
    handle: Function,
    names: FieldNames,
    /// Set only while the script runs: with a limit set, mlua guards each of
    /// its own operations, which made converting an event 3× slower.
    memory_limit: usize,
}

impl ScriptState {
    fn new(spec: &ScriptSpec) -> mlua::Result<ScriptState> {
        let lua = sandbox::new_state(&spec.scripts_dir, spec.limits.timeout)?;
        api::install(&lua, &spec.env)?;
        let chunk = sandbox::load_file(&lua, &spec.path)?;
        let limit = usize::try_from(spec.limits.memory_limit).unwrap_or(usize::MAX);
        // The chunk runs under the same limits as a call.
        let returned: Value = sandbox::with_limits(&lua, limit, || chunk.call(()))?;
        let handle = match spec.entry {
            Entry::Global => {
                let globals = lua.globals();
                match globals.get::<Value>("handle")? {
                    Value::Function(handle) => handle,
                    _ => globals.get::<Option<Function>>("handler")?.ok_or_else(|| {
                        mlua::Error::runtime(format!(
                            "{}: the script defines no `function handle(event)`",
                            spec.path.display()
                        ))
                    })?,
                }
            }
            Entry::Returned => match returned {
                Value::Table(table) => table.get::<Function>("handle")?,
                _ => {
                    return Err(mlua::Error::runtime(format!(
                        "{}: the chunk returns no table with `handle`",
                        spec.path.display()
                    )));
                }
            },
        };
        let in_use = lua.used_memory();
        if in_use >= limit {
            return Err(mlua::Error::runtime(format!(
                "memory_limit ({}) is below what the loaded script already uses ({})",
                bytesize::ByteSize(limit as u64),
                bytesize::ByteSize(in_use as u64)
            )));
        }
        Ok(ScriptState {
            names: FieldNames::new(&lua)?,
            lua,
            handle,
            memory_limit: limit,
        })
    }

    /// The outcome of one call, and whether the state must be rebuilt.
    async fn run(&mut self, event: &Event) -> (Result<Option<Event>, HandlerError>, bool) {
        self.lua.set_app_data(CurrentEvent(event.id().to_owned()));
        sandbox::start_deadline(&self.lua);
        let called = match event_to_lua(&self.lua, &self.names, event.json()) {
            Ok(table) => match self.lua.set_memory_limit(self.memory_limit) {
                Ok(_) => self.handle.call_async::<MultiValue>(table).await,
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        let values = match called {
            Ok(values) => values,
            Err(err) => {
                let _ = self.lua.set_memory_limit(0);
                let expired = sandbox::end_deadline(&self.lua);
                let spoiled = expired || is_memory_error(&err);
                return (Err(HandlerError::retryable(describe(&err))), spoiled);
            }
        };
        // What handle returned is read under the call's limits too: a
        // reason's `__tostring` or a table's `__index` is script code.
        let outcome = match values.front() {
            None | Some(Value::Nil) | Some(Value::Boolean(true)) => Ok(None),
            Some(Value::Table(table)) => self.replacement(event, table.clone()),
            Some(Value::Boolean(false)) => Err(HandlerError::retryable(match values.get(1) {
                Some(reason) if !reason.is_nil() => reason.to_string().unwrap_or_else(|err| {
                    format!(
                        "handle returned false; its reason cannot be turned into text: {}",
                        describe(&err)
                    )
                }),
                _ => "handle returned false".to_owned(),
            })),
            Some(other) => Err(HandlerError::retryable(format!(
                "handle returned a {}; expected nothing, true, a table, or false and a reason",
                other.type_name()
            ))),
        };
        let _ = self.lua.set_memory_limit(0);
        let expired = sandbox::end_deadline(&self.lua);
        (outcome, expired)
    }

    fn replacement(&self, event: &Event, table: Table) -> Result<Option<Event>, HandlerError> {
        match event_json(&self.lua, table, &event.fixed_fields()) {
            Ok(json) => Ok(Some(event.replaced_by_json(json))),
            Err(err) => Err(HandlerError::retryable(format!(
                "the returned event cannot be converted: {}",
                describe(&err)
            ))),
        }
    }
}

fn is_memory_error(err: &mlua::Error) -> bool {
    match err {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        _ => false,
    }
}
