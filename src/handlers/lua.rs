//! `LuaHandler`: runs a script's `handle(event)`; a table it returns becomes
//! the event for the rest of the chain.

pub mod settings;

use std::time::Duration;

use crate::event::Event;
use crate::lua::pool::{Called, Entry};
use crate::lua::{Limits, MAX_STATES, ScriptPool, ScriptSpec, Scripting, drop_in::DropIn};
use settings::Settings;

#[derive(Debug)]
pub struct LuaHandler {
    pool: ScriptPool,
}

impl LuaHandler {
    /// Compiles the script and starts its states; a syntax error or a
    /// failing chunk is reported with the script's file and line.
    pub fn new(
        name: &str,
        settings: &Settings,
        timeout: Duration,
        scripting: &Scripting,
    ) -> Result<LuaHandler, mlua::Error> {
        let limits = Limits {
            timeout,
            memory_limit: settings.memory_limit.0,
            allow_env: settings.allow_env.0.clone(),
        };
        let path = scripting.script_path(&settings.lua_script);
        let spec = ScriptSpec::new(name, path, Entry::Global, limits, scripting);
        Ok(LuaHandler {
            pool: ScriptPool::start(spec, MAX_STATES)?,
        })
    }

    /// The handler of a drop-in script.
    pub fn drop_in(drop_in: &DropIn, scripting: &Scripting) -> Result<LuaHandler, mlua::Error> {
        let spec = ScriptSpec::new(
            &drop_in.name,
            drop_in.path.clone(),
            Entry::Returned,
            drop_in.limits.clone(),
            scripting,
        );
        Ok(LuaHandler {
            pool: ScriptPool::start(spec, MAX_STATES)?,
        })
    }

    /// Runs the script for each event in turn; each call is bounded by
    /// `timeout`.
    pub async fn handle_many(&self, events: &[&Event], timeout: Duration) -> Vec<Called> {
        self.pool.call_many(events, timeout).await
    }

    /// Whether the script has made HTTP requests (`http`, `client`): then its
    /// events are handed to tasks of their own, like an HTTP handler's.
    pub fn waits_on_network(&self) -> bool {
        self.pool.waits_on_network()
    }

    /// A dead letter of this handler was replayed: the `[api]` client may
    /// try a logon its server refused once more.
    pub fn replayed(&self) {
        self.pool.replayed();
    }
}
