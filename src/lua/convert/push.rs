//! Tokens pushed onto Lua's stack as one value: JSON into Lua.

use std::ffi::c_int;

use mlua::{Lua, LuaSerdeExt, Value, ffi};

use super::tokens::Token;
use super::{ConvertError, enter};
use crate::event::{FIELD_NAMES, Field};

/// The field names every event has or may have (`event::FIELD_NAMES`),
/// kept in a table of each script's state: an event's keys are pushed from
/// it instead of being hashed and looked up in Lua's string table each
/// time (short strings are hashed byte by byte, the most of pushing an
/// event).
#[derive(Debug)]
pub struct FieldNames(mlua::Table);

impl FieldNames {
    pub fn new(lua: &Lua) -> mlua::Result<FieldNames> {
        lua.create_sequence_from(FIELD_NAMES).map(FieldNames)
    }
}

/// Where `name` is in `FIELD_NAMES` (from 1, as Lua counts).
fn field_name_position(name: &str) -> Option<ffi::lua_Integer> {
    Field::from_name(name).map(|field| field as ffi::lua_Integer + 1)
}

/// The value `tokens` make, pushed onto Lua's stack and returned; with
/// `names`, known field names are taken from that table.
pub(super) fn push_tokens(
    lua: &Lua,
    names: Option<&FieldNames>,
    tokens: &[Token],
) -> mlua::Result<Value> {
    let mut pushed = Ok(());
    let array_metatable = lua.array_metatable();
    let names = names.map(|names| &names.0);
    // SAFETY: the closure runs as a protected Lua call with the array
    // metatable at stack index 1 (`ARRAY_METATABLE`) and the field names
    // (or nil) at 2 (`FIELD_NAMES_TABLE`). A Lua error raised by an
    // allocation (a script's memory limit) unwinds to that protected call;
    // the pushing functions own nothing that would leak then.
    let value = unsafe {
        lua.exec_raw::<Value>((array_metatable, names), |state| {
            pushed = push_token(state, &mut tokens.iter(), 0);
            if pushed.is_err() {
                ffi::lua_settop(state, 0);
                ffi::lua_pushnil(state);
            } else {
                ffi::lua_replace(state, ARRAY_METATABLE);
                ffi::lua_settop(state, 1);
            }
        })?
    };
    pushed?;
    Ok(value)
}

/// Where `push_tokens` keeps the array metatable on the stack.
const ARRAY_METATABLE: c_int = 1;
/// Where `push_tokens` keeps the `FieldNames` table (or nil) on the stack.
const FIELD_NAMES_TABLE: c_int = 2;

/// Pushes the value `tokens` starts with.
///
/// # Safety
/// `state` is a running protected call set up by `push_tokens`.
unsafe fn push_token(
    state: *mut ffi::lua_State,
    tokens: &mut std::slice::Iter<Token>,
    depth: usize,
) -> Result<(), ConvertError> {
    let Some(token) = tokens.next() else {
        return Err(ConvertError::EndedEarly);
    };
    unsafe {
        match token {
            Token::Null => ffi::lua_pushlightuserdata(state, std::ptr::null_mut()),
            Token::Bool(flag) => ffi::lua_pushboolean(state, c_int::from(*flag)),
            Token::Integer(integer) => ffi::lua_pushinteger(state, *integer),
            Token::Float(float) => ffi::lua_pushnumber(state, *float),
            Token::Text(text) => push_str(state, text),
            Token::Array(items) => {
                enter(state, depth)?;
                ffi::lua_createtable(state, c_int::try_from(*items).unwrap_or(0), 0);
                for index in 1..=*items {
                    let index = ffi::lua_Integer::try_from(index).unwrap_or(ffi::lua_Integer::MAX);
                    push_token(state, tokens, depth + 1)?;
                    ffi::lua_rawseti(state, -2, index);
                }
                ffi::lua_pushvalue(state, ARRAY_METATABLE);
                ffi::lua_setmetatable(state, -2);
            }
            Token::Object(fields) => {
                enter(state, depth)?;
                ffi::lua_createtable(state, 0, c_int::try_from(*fields).unwrap_or(0));
                for _ in 0..*fields {
                    push_key(state, tokens)?;
                    push_token(state, tokens, depth + 1)?;
                    ffi::lua_rawset(state, -3);
                }
            }
        }
    }
    Ok(())
}

/// Pushes the key `tokens` goes on with: a known field name from the
/// `FieldNames` table when there is one.
///
/// # Safety
/// As `push_token`.
unsafe fn push_key(
    state: *mut ffi::lua_State,
    tokens: &mut std::slice::Iter<Token>,
) -> Result<(), ConvertError> {
    let Some(Token::Text(name)) = tokens.next() else {
        return Err(ConvertError::KeyNotString);
    };
    unsafe {
        match field_name_position(name) {
            Some(position) if ffi::lua_type(state, FIELD_NAMES_TABLE) == ffi::LUA_TTABLE => {
                ffi::lua_rawgeti(state, FIELD_NAMES_TABLE, position);
            }
            _ => push_str(state, name),
        }
    }
    Ok(())
}

/// Pushes a string (Lua copies it).
///
/// # Safety
/// `state` is a valid state with room for one more value.
unsafe fn push_str(state: *mut ffi::lua_State, text: &str) {
    unsafe {
        ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
    }
}
