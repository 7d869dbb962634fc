//! Base-library functions a script could turn against the daemon, replaced
//! by guarded versions when a state is made.
//!
//! - `setmetatable` refuses a metatable with `__gc`: Lua runs finalizers with
//!   debug hooks off, so no deadline could stop a finalizer that loops, and
//!   closing the state would run it too.
//! - `coroutine.resume` and `coroutine.wrap` count how deep the script is in
//!   its own coroutines: the daemon's time-slice yields (see `sandbox`) are
//!   made only at depth 0, so they never show through as a yield of the
//!   script's coroutine (a generator would otherwise stop early).

use mlua::{Function, Lua};

use super::sandbox::Deadline;

/// The Lua half: wrappers over the originals, given as arguments.
const GUARDS: &str = r#"
local raw_setmetatable, rawget, error = ...
-- Captured now: a script may replace the globals afterwards.
local type = type
setmetatable = function(object, metatable)
  if type(metatable) == "table" and rawget(metatable, "__gc") ~= nil then
    error("__gc metamethods are not available to scripts", 2)
  end
  return raw_setmetatable(object, metatable)
end
local enter, leave = select(4, ...)
local create, resume = coroutine.create, coroutine.resume
local pack, unpack = table.pack, table.unpack
local function counted(co, ...)
  enter()
  local results = pack(resume(co, ...))
  leave()
  return unpack(results, 1, results.n)
end
coroutine.resume = counted
coroutine.wrap = function(body)
  local co = create(body)
  return function(...)
    local results = pack(counted(co, ...))
    if results[1] then
      return unpack(results, 2, results.n)
    end
    error(results[2], 0)
  end
end
"#;

/// Replaces `setmetatable`, `coroutine.resume` and `coroutine.wrap`.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    let enter = lua.create_function(|lua, ()| {
        if let Some(mut deadline) = lua.app_data_mut::<Deadline>() {
            deadline.nested += 1;
        }
        Ok(())
    })?;
    let leave = lua.create_function(|lua, ()| {
        if let Some(mut deadline) = lua.app_data_mut::<Deadline>() {
            deadline.nested = deadline.nested.saturating_sub(1);
        }
        Ok(())
    })?;
    lua.load(GUARDS).set_name("=guards").call::<()>((
        globals.get::<Function>("setmetatable")?,
        globals.get::<Function>("rawget")?,
        globals.get::<Function>("error")?,
        enter,
        leave,
    ))
}
