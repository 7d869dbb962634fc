//! Base-library functions a script could turn against the daemon, replaced
//! by guarded versions when a state is made.
//!
//! `setmetatable` refuses a metatable with `__gc`: Lua runs finalizers with
//! debug hooks off, so no deadline could stop a finalizer that loops, and
//! closing the state would run it too. (`debug.setmetatable` is not in the
//! sandbox, and `__gc` added to a metatable after `setmetatable` is ignored
//! by Lua.)

use mlua::{Function, Lua};

/// The Lua half: a wrapper over the original, given as arguments with the
/// functions it uses (a script may replace the globals afterwards).
const GUARDS: &str = r#"
local raw_setmetatable, rawget, error, type = ...
setmetatable = function(object, metatable)
  if type(metatable) == "table" and rawget(metatable, "__gc") ~= nil then
    error("__gc metamethods are not available to scripts", 2)
  end
  return raw_setmetatable(object, metatable)
end
"#;

/// Replaces `setmetatable`.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    lua.load(GUARDS).set_name("=guards").call::<()>((
        globals.get::<Function>("setmetatable")?,
        globals.get::<Function>("rawget")?,
        globals.get::<Function>("error")?,
        globals.get::<Function>("type")?,
    ))
}
