//! One state of a script: the script loaded, its `handle` found, and one
//! call run under the script's limits. Used only on the state's own thread
//! (see `pool`).

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::api::{self, CurrentEvent};
use super::convert::{FieldNames, event_json, event_to_lua};
use super::describe;
use super::pool::{Entry, ScriptSpec};
use super::sandbox;
use crate::event::Event;
use crate::failure::HandlerError;

/// A state with the script loaded and its `handle` function found.
#[derive(Debug)]
pub struct ScriptState {
    lua: Lua,
    handle: Function,
    names: FieldNames,
    /// Set only while the script runs: with a limit set, mlua guards each of
    /// its own operations, which made converting an event 3× slower.
    memory_limit: usize,
}

impl ScriptState {
    pub fn new(spec: &ScriptSpec) -> mlua::Result<ScriptState> {
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
    pub async fn run(&mut self, event: &Event) -> (Result<Option<Event>, HandlerError>, bool) {
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
