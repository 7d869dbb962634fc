//! Values crossing between JSON and Lua without losing their types: `null`
//! stays `json.null`, integers stay integers, arrays (even empty ones) stay
//! arrays.
//!
//! Every event crosses twice per Lua handler, so both directions work on
//! Lua's stack directly (mlua's `exec_raw`) instead of through a handle per
//! value. An event goes in from its JSON text: read into a flat list of
//! tokens (`tokens`, strings borrowed from the text), then pushed (`push`);
//! it never becomes a map of values on the way. A table read back is
//! written as JSON text as it is walked (`write`), which is what the spool,
//! a file and an HTTP body use; `from_lua` (for settings, rarely) parses
//! that text.
//!
//! The unsafe code is kept to this folder, and follows three rules: nothing
//! with a destructor lives in a frame a Lua error can unwind through (it is
//! a `longjmp`), the stack is grown (`lua_checkstack`) before each level
//! pushes onto it, and reading a table never calls anything that can raise
//! a Lua error (strings are read only when they are strings, so
//! `lua_tolstring` never converts a key that `lua_next` is walking).

mod push;
mod tokens;
mod write;

use std::cell::Cell;
use std::ffi::c_int;

use mlua::{Lua, LuaSerdeExt, Value, ffi};
use serde_json::Value as Json;

pub use push::FieldNames;
use push::push_tokens;
use tokens::{Token, tokenize};
use write::write_json;

/// Deepest nesting converted either way.
const MAX_DEPTH: usize = 64;

/// Stack slots one level of nesting uses at most: a table, a key, a value.
const SLOTS_PER_LEVEL: c_int = 3;

/// Why a value did not cross. A script sees it as a Lua runtime error with
/// this message, so none of these has a cause to keep: where one exists (a
/// JSON syntax error) it is part of the message.
#[derive(Debug, thiserror::Error)]
enum ConvertError {
    #[error("the event is not JSON: {0}")]
    EventNotJson(serde_json::Error),
    #[error("the event is not a JSON object")]
    EventNotObject,
    #[error("an object became a {0}")]
    ObjectBecame(&'static str),
    #[error("it is a list; an event must be a table with named fields")]
    EventIsList,
    #[error("JSON ended early")]
    EndedEarly,
    #[error("a JSON object key is not a string")]
    KeyNotString,
    #[error("value nested deeper than {MAX_DEPTH} levels (or a table that contains itself)")]
    TooDeep,
    #[error("value nested too deeply for Lua's stack")]
    StackFull,
    #[error("{0} is not a JSON number")]
    NotANumber(f64),
    #[error("a {0} cannot be converted to JSON")]
    Unconvertible(String),
    /// Refused only while writing straight from the stack; `text` then
    /// goes through a map (see there).
    #[error("a number key")]
    NumberKey,
    #[error("a field name must be a string, not a {0}")]
    FieldName(String),
    #[error("a string is not valid UTF-8")]
    NotUtf8,
}

impl From<ConvertError> for mlua::Error {
    /// A runtime error, as scripts and `lua::describe` have always seen it.
    fn from(err: ConvertError) -> mlua::Error {
        mlua::Error::runtime(err)
    }
}

/// JSON text as a Lua value (`Ok(Err(..))`: the text is not JSON).
pub fn json_to_lua(lua: &Lua, text: &[u8]) -> mlua::Result<Result<Value, serde_json::Error>> {
    match tokenize(text) {
        Ok(tokens) => push_tokens(lua, None, &tokens).map(Ok),
        Err(err) => Ok(Err(err)),
    }
}

/// An event's JSON (an object) as a Lua table.
pub fn event_to_lua(lua: &Lua, names: &FieldNames, json: &[u8]) -> mlua::Result<mlua::Table> {
    let tokens = tokenize(json).map_err(ConvertError::EventNotJson)?;
    if !matches!(tokens.first(), Some(Token::Object(_))) {
        return Err(ConvertError::EventNotObject.into());
    }
    match push_tokens(lua, Some(names), &tokens)? {
        Value::Table(table) => Ok(table),
        other => Err(ConvertError::ObjectBecame(other.type_name()).into()),
    }
}

/// A Lua value as JSON: `json.null` and `nil` become null, a table with a
/// sequence (or made by `json.array`) an array of that sequence (holes
/// become null), any other table an object.
pub fn from_lua(lua: &Lua, value: Value) -> mlua::Result<Json> {
    let text = write_json(lua, value, &[], None)?;
    serde_json::from_slice(&text).map_err(|err| mlua::Error::runtime(err.to_string()))
}

/// A Lua value as JSON text, converted as `from_lua` does.
pub fn json_text(lua: &Lua, value: Value) -> mlua::Result<Vec<u8>> {
    text(lua, value, &[])
}

/// The table a script returned as an event, as JSON text: its fields, but
/// `fixed` ones (name, value) with the values given, where the table has
/// them or else at the end.
pub fn event_json(lua: &Lua, table: mlua::Table, fixed: &[(&str, &str)]) -> mlua::Result<Vec<u8>> {
    let marked = table
        .metatable()
        .is_some_and(|metatable| metatable.to_pointer() == lua.array_metatable().to_pointer());
    if marked || table.raw_len() > 0 {
        return Err(ConvertError::EventIsList.into());
    }
    text(lua, Value::Table(table), fixed)
}

/// Written straight from Lua's stack, or, when a table has a number key
/// (whose name could also be a string key of the same table), through a
/// map that keeps one of them.
fn text(lua: &Lua, value: Value, fixed: &[(&str, &str)]) -> mlua::Result<Vec<u8>> {
    let number_key = Cell::new(false);
    match write_json(lua, value.clone(), fixed, Some(&number_key)) {
        Err(_) if number_key.get() => {
            let json: Json = serde_json::from_slice(&write_json(lua, value, fixed, None)?)
                .map_err(|err| mlua::Error::runtime(err.to_string()))?;
            Ok(serde_json::to_vec(&json).expect("serialise JSON value"))
        }
        written => written,
    }
}

/// Checks the depth and makes room on the stack for one more level; both
/// directions call it once a table.
///
/// # Safety
/// `state` is a valid state (`lua_checkstack` raises no error).
#[inline]
unsafe fn enter(state: *mut ffi::lua_State, depth: usize) -> Result<(), ConvertError> {
    if depth >= MAX_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    if unsafe { ffi::lua_checkstack(state, SLOTS_PER_LEVEL) } == 0 {
        return Err(ConvertError::StackFull);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
