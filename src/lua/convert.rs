//! Values crossing between JSON and Lua without losing their types: `null`
//! stays `json.null`, integers stay integers, arrays (even empty ones) stay
//! arrays.
//!
//! Every event crosses twice per Lua handler, so both directions work on
//! Lua's stack directly (mlua's `exec_raw`) instead of through a handle per
//! value: in profiles of the Lua load run the round trip went from about
//! 17 to 7 µs per event (what is left is mostly Lua interning strings). The
//! unsafe code is kept to this file, and follows two rules: the stack is
//! grown (`lua_checkstack`) before each level pushes onto it, and reading
//! a table never calls anything that can raise a Lua error (strings are read
//! only when they are strings, so `lua_tolstring` never converts a key that
//! `lua_next` is walking).

use std::ffi::{CStr, c_int};

use mlua::{Lua, LuaSerdeExt, Value, ffi};
use serde_json::{Map, Value as Json};

/// Deepest nesting converted either way.
const MAX_DEPTH: usize = 64;

/// Stack slots one level of nesting uses at most: a table, a key, a value.
const SLOTS_PER_LEVEL: c_int = 3;

/// A JSON value as a Lua value.
pub fn to_lua(lua: &Lua, value: &Json) -> mlua::Result<Value> {
    push_with(lua, |state| unsafe { push_json(state, value, 0) })
}

/// An object (an event's fields) as a Lua table.
pub fn object_to_lua(lua: &Lua, fields: &Map<String, Json>) -> mlua::Result<mlua::Table> {
    match push_with(lua, |state| unsafe { push_object(state, fields, 0) })? {
        Value::Table(table) => Ok(table),
        other => Err(mlua::Error::runtime(format!(
            "an object became a {}",
            other.type_name()
        ))),
    }
}

/// A Lua value as JSON: `json.null` and `nil` become null, a table with a
/// sequence (or made by `json.array`) an array of that sequence (holes
/// become null), any other table an object.
pub fn from_lua(lua: &Lua, value: Value) -> mlua::Result<Json> {
    let array_metatable = lua.array_metatable();
    let marker = array_metatable.to_pointer();
    let mut read = Err(String::new());
    // SAFETY: `exec_raw` locks the state and runs the closure as a protected
    // Lua call with the value at stack index 1. `read_json` raises no Lua
    // error (see the module's rules), grows the stack before using it, and
    // leaves it as it found it; the closure leaves nothing behind.
    unsafe {
        lua.exec_raw::<()>(value, |state| {
            read = read_json(state, 1, marker, 0);
            ffi::lua_settop(state, 0);
        })?;
    }
    read.map_err(mlua::Error::runtime)
}

/// Runs `push`, which leaves one value on the stack (or an error), and
/// returns that value.
fn push_with(
    lua: &Lua,
    push: impl FnOnce(*mut ffi::lua_State) -> Result<(), String>,
) -> mlua::Result<Value> {
    let mut pushed = Ok(());
    let array_metatable = lua.array_metatable();
    // SAFETY: the closure runs as a protected Lua call with the array
    // metatable at stack index 1 (`ARRAY_METATABLE`). A Lua error raised by
    // an allocation (a script's memory limit) unwinds to that protected
    // call; the pushing functions own nothing that would leak then.
    let value = unsafe {
        lua.exec_raw::<Value>(array_metatable, |state| {
            pushed = push(state);
            if pushed.is_err() {
                ffi::lua_settop(state, 0);
                ffi::lua_pushnil(state);
            } else {
                ffi::lua_remove(state, ARRAY_METATABLE);
            }
        })?
    };
    pushed.map_err(mlua::Error::runtime)?;
    Ok(value)
}

/// Where `push_with` keeps the array metatable on the stack.
const ARRAY_METATABLE: c_int = 1;

/// Pushes `value`.
///
/// # Safety
/// `state` is a running protected call set up by `push_with`.
unsafe fn push_json(state: *mut ffi::lua_State, value: &Json, depth: usize) -> Result<(), String> {
    unsafe {
        match value {
            Json::Null => ffi::lua_pushlightuserdata(state, std::ptr::null_mut()),
            Json::Bool(flag) => ffi::lua_pushboolean(state, c_int::from(*flag)),
            Json::Number(number) => match number.as_i64() {
                Some(integer) => ffi::lua_pushinteger(state, integer),
                None => ffi::lua_pushnumber(state, number.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(text) => push_str(state, text),
            Json::Array(items) => {
                enter(state, depth)?;
                ffi::lua_createtable(state, c_int::try_from(items.len()).unwrap_or(0), 0);
                for (index, item) in items.iter().enumerate() {
                    push_json(state, item, depth + 1)?;
                    ffi::lua_rawseti(state, -2, index as ffi::lua_Integer + 1);
                }
                ffi::lua_pushvalue(state, ARRAY_METATABLE);
                ffi::lua_setmetatable(state, -2);
            }
            Json::Object(fields) => push_object(state, fields, depth)?,
        }
    }
    Ok(())
}

/// Pushes a table with `fields`.
///
/// # Safety
/// As `push_json`.
unsafe fn push_object(
    state: *mut ffi::lua_State,
    fields: &Map<String, Json>,
    depth: usize,
) -> Result<(), String> {
    unsafe {
        enter(state, depth)?;
        ffi::lua_createtable(state, 0, c_int::try_from(fields.len()).unwrap_or(0));
        for (key, value) in fields {
            push_str(state, key);
            push_json(state, value, depth + 1)?;
            ffi::lua_rawset(state, -3);
        }
    }
    Ok(())
}

unsafe fn push_str(state: *mut ffi::lua_State, text: &str) {
    unsafe {
        ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
    }
}

/// Checks the depth and makes room on the stack for one more level.
///
/// # Safety
/// `state` is a valid state (`lua_checkstack` raises no error).
unsafe fn enter(state: *mut ffi::lua_State, depth: usize) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "value nested deeper than {MAX_DEPTH} levels (or a table that contains itself)"
        ));
    }
    if unsafe { ffi::lua_checkstack(state, SLOTS_PER_LEVEL) } == 0 {
        return Err("value nested too deeply for Lua's stack".to_owned());
    }
    Ok(())
}

/// Reads the value at absolute stack `index`; `array_marker` is the
/// address of the array metatable.
///
/// # Safety
/// `state` is locked and `index` is a valid absolute index. Raises no Lua
/// error and leaves the stack as it found it (when it returns `Ok`; after
/// an error the caller clears the stack).
unsafe fn read_json(
    state: *mut ffi::lua_State,
    index: c_int,
    array_marker: *const std::ffi::c_void,
    depth: usize,
) -> Result<Json, String> {
    unsafe {
        Ok(match ffi::lua_type(state, index) {
            ffi::LUA_TNIL => Json::Null,
            ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(state, index).is_null() => Json::Null,
            ffi::LUA_TBOOLEAN => Json::Bool(ffi::lua_toboolean(state, index) != 0),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(state, index) != 0 => {
                Json::from(ffi::lua_tointeger(state, index))
            }
            ffi::LUA_TNUMBER => {
                let number = ffi::lua_tonumber(state, index);
                serde_json::Number::from_f64(number)
                    .map(Json::Number)
                    .ok_or_else(|| format!("{number} is not a JSON number"))?
            }
            ffi::LUA_TSTRING => Json::String(read_str(state, index)?.to_owned()),
            ffi::LUA_TTABLE => {
                enter(state, depth)?;
                let is_array = ffi::lua_getmetatable(state, index) != 0 && {
                    let marked = ffi::lua_topointer(state, -1) == array_marker;
                    ffi::lua_pop(state, 1);
                    marked
                };
                let length = ffi::lua_rawlen(state, index);
                if is_array || length > 0 {
                    let mut items = Vec::with_capacity(length);
                    for position in 1..=length {
                        ffi::lua_rawgeti(state, index, position as ffi::lua_Integer);
                        let item =
                            read_json(state, ffi::lua_gettop(state), array_marker, depth + 1);
                        ffi::lua_pop(state, 1);
                        items.push(item?);
                    }
                    Json::Array(items)
                } else {
                    let mut fields = Map::new();
                    ffi::lua_pushnil(state);
                    while ffi::lua_next(state, index) != 0 {
                        let top = ffi::lua_gettop(state);
                        let key = read_key(state, top - 1)?;
                        let value = read_json(state, top, array_marker, depth + 1)?;
                        fields.insert(key, value);
                        ffi::lua_pop(state, 1);
                    }
                    Json::Object(fields)
                }
            }
            other => {
                let name = CStr::from_ptr(ffi::lua_typename(state, other));
                return Err(format!(
                    "a {} cannot be converted to JSON",
                    name.to_string_lossy()
                ));
            }
        })
    }
}

/// A table key as a field name: strings as they are, numbers written out.
///
/// # Safety
/// As `read_json`.
unsafe fn read_key(state: *mut ffi::lua_State, index: c_int) -> Result<String, String> {
    unsafe {
        match ffi::lua_type(state, index) {
            ffi::LUA_TSTRING => Ok(read_str(state, index)?.to_owned()),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(state, index) != 0 => {
                Ok(ffi::lua_tointeger(state, index).to_string())
            }
            ffi::LUA_TNUMBER => Ok(ffi::lua_tonumber(state, index).to_string()),
            other => {
                let name = CStr::from_ptr(ffi::lua_typename(state, other));
                Err(format!(
                    "a field name must be a string, not a {}",
                    name.to_string_lossy()
                ))
            }
        }
    }
}

/// The text of the string at `index`.
///
/// # Safety
/// The value at `index` is a string (so reading it converts nothing), and
/// stays on the stack while the returned slice is used.
unsafe fn read_str<'a>(state: *mut ffi::lua_State, index: c_int) -> Result<&'a str, String> {
    let mut length = 0;
    let bytes = unsafe {
        let pointer = ffi::lua_tolstring(state, index, &mut length);
        std::slice::from_raw_parts(pointer.cast::<u8>(), length)
    };
    std::str::from_utf8(bytes).map_err(|_| "a string is not valid UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_their_types() {
        let lua = Lua::new();
        let original = serde_json::json!({
            "CertificateId": null,
            "CurrentRetryCount": 3,
            "Ratio": 0.5,
            "Whole": 2.0,
            "Nested": {"List": [1, "two", {"three": true}], "Empty": []},
            "EmptyObject": {},
            "Text": "é ✓"
        });
        let lua_value = to_lua(&lua, &original).unwrap();
        lua.globals().set("event", lua_value.clone()).unwrap();
        lua.globals().set("null", lua.null()).unwrap();
        let checks: bool = lua
            .load(
                "return event.CertificateId == null and math.type(event.CurrentRetryCount) == 'integer' \
                 and math.type(event.Whole) == 'float' and event.Nested.List[3].three == true \
                 and getmetatable(event.Nested.Empty) ~= nil and event.Text == 'é ✓'",
            )
            .eval()
            .unwrap();
        assert!(checks);
        assert_eq!(from_lua(&lua, lua_value).unwrap(), original);
        let Json::Object(fields) = &original else {
            unreachable!()
        };
        let table = object_to_lua(&lua, fields).unwrap();
        assert_eq!(from_lua(&lua, Value::Table(table)).unwrap(), original);
    }

    #[test]
    fn tables_made_in_lua_convert() {
        let lua = Lua::new();
        lua.globals().set("null", lua.null()).unwrap();
        let value: Value = lua
            .load(
                "return { list = {1, 2.5, 'x'}, holes = {1, nil, 3}, [7] = 'seven', \
                  nothing = null, yes = true, nested = { deeper = { n = -1 } } }",
            )
            .eval()
            .unwrap();
        assert_eq!(
            from_lua(&lua, value).unwrap(),
            serde_json::json!({
                "list": [1, 2.5, "x"], "holes": [1, null, 3], "7": "seven",
                "nothing": null, "yes": true, "nested": {"deeper": {"n": -1}}
            })
        );
    }

    /// Why the value a chunk returns cannot become JSON.
    fn refusal(lua: &Lua, chunk: &str) -> String {
        let value: Value = lua.load(chunk).eval().unwrap();
        from_lua(lua, value).unwrap_err().to_string()
    }

    #[test]
    fn functions_cycles_and_odd_keys_are_refused() {
        let lua = Lua::new();
        for (chunk, reason) in [
            ("local t = {} t.self = t return t", "nested deeper"),
            ("return { f = print }", "a function cannot be converted"),
            (
                "return { [{}] = 1 }",
                "field name must be a string, not a table",
            ),
            ("return { s = '\\xff' }", "not valid UTF-8"),
            ("return { n = 0/0 }", "is not a JSON number"),
            (
                "local t = {} for i = 1, 100 do t = {t} end return t",
                "nested deeper",
            ),
        ] {
            let refusal = refusal(&lua, chunk);
            assert!(refusal.contains(reason), "{chunk}: {refusal}");
        }
        let mut deep_json = serde_json::json!(1);
        for _ in 0..100 {
            deep_json = serde_json::json!([deep_json]);
        }
        assert!(
            to_lua(&lua, &deep_json)
                .unwrap_err()
                .to_string()
                .contains("nested deeper")
        );
        // After every refusal the state still works.
        let fine: Value = lua.load("return { ok = true }").eval().unwrap();
        assert_eq!(
            from_lua(&lua, fine).unwrap(),
            serde_json::json!({"ok": true})
        );
    }

    #[test]
    fn a_memory_limit_stops_a_large_conversion_cleanly() {
        let lua = Lua::new();
        let big = Json::Array(vec![Json::String("x".repeat(1024)); 4096]);
        lua.set_memory_limit(lua.used_memory() + 64 * 1024).unwrap();
        let err = to_lua(&lua, &big).unwrap_err();
        assert!(matches!(err, mlua::Error::MemoryError(_)), "{err}");
        lua.set_memory_limit(0).unwrap();
        assert!(to_lua(&lua, &big).is_ok());
    }
}
