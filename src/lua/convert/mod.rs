//! Values crossing between JSON and Lua without losing their types: `null`
//! stays `json.null`, integers stay integers, arrays (even empty ones) stay
//! arrays.
//!
//! Every event crosses twice per Lua handler, so both directions work on
//! Lua's stack directly (mlua's `exec_raw`) instead of through a handle per
//! value. An event goes in from its JSON text: read into a flat list of
//! tokens (strings borrowed from the text), then pushed; it never becomes a
//! map of values on the way. A table read back is written as JSON text as
//! it is walked (`Slot`), which is what the spool, a file and an HTTP body
//! use; `from_lua` (for settings, rarely) parses that text. In profiles of
//! the Lua load run the round trip went from about 17 µs per event
//! (through maps of values) to under 7, most of it Lua interning strings;
//! known field names pushed from a table, and strings written without
//! serde_json's byte-by-byte escaping, took 5% more off.
//!
//! The unsafe code is kept to this file, and follows three rules: nothing
//! with a destructor lives in a frame a Lua error can unwind through (it is
//! a `longjmp`), the stack is grown (`lua_checkstack`) before each level
//! pushes onto it, and reading a table never calls anything that can raise
//! a Lua error (strings are read only when they are strings, so
//! `lua_tolstring` never converts a key that `lua_next` is walking).

use std::borrow::Cow;
use std::cell::Cell;
use std::ffi::{CStr, c_int, c_void};

use mlua::{Lua, LuaSerdeExt, Value, ffi};
use serde::Serialize;
use serde_json::Value as Json;

use crate::event::FIELD_NAMES;

/// Deepest nesting converted either way.
const MAX_DEPTH: usize = 64;

/// Stack slots one level of nesting uses at most: a table, a key, a value.
const SLOTS_PER_LEVEL: c_int = 3;

/// JSON text as a Lua value (`Ok(Err(..))`: the text is not JSON).
pub fn json_to_lua(lua: &Lua, text: &[u8]) -> mlua::Result<Result<Value, serde_json::Error>> {
    match tokenize(text) {
        Ok(tokens) => push_tokens(lua, None, &tokens).map(Ok),
        Err(err) => Ok(Err(err)),
    }
}

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
    let position = FIELD_NAMES.iter().position(|known| *known == name)?;
    Some(position as ffi::lua_Integer + 1)
}

/// An event's JSON (an object) as a Lua table.
pub fn event_to_lua(lua: &Lua, names: &FieldNames, json: &[u8]) -> mlua::Result<mlua::Table> {
    let tokens = tokenize(json)
        .map_err(|err| mlua::Error::runtime(format!("the event is not JSON: {err}")))?;
    if !matches!(tokens.first(), Some(Token::Object(_))) {
        return Err(mlua::Error::runtime("the event is not a JSON object"));
    }
    match push_tokens(lua, Some(names), &tokens)? {
        Value::Table(table) => Ok(table),
        other => Err(mlua::Error::runtime(format!(
            "an object became a {}",
            other.type_name()
        ))),
    }
}

fn push_tokens(lua: &Lua, names: Option<&FieldNames>, tokens: &[Token]) -> mlua::Result<Value> {
    let names = names.map(|names| &names.0);
    push_with(lua, names, |state| unsafe {
        push_token(state, &mut tokens.iter(), 0)
    })
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
        return Err(mlua::Error::runtime(
            "it is a list; an event must be a table with named fields",
        ));
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

/// The value as JSON text, written as it is read off Lua's stack.
fn write_json(
    lua: &Lua,
    value: Value,
    fixed: &[(&str, &str)],
    number_key: Option<&Cell<bool>>,
) -> mlua::Result<Vec<u8>> {
    let array_marker = lua.array_metatable().to_pointer();
    let mut text = Vec::with_capacity(512);
    let mut written = Err("the value was not read".to_owned());
    // SAFETY: `exec_raw` locks the state and runs the closure as a protected
    // Lua call with the value at stack index 1. Reading raises no Lua error
    // (see the module's rules), grows the stack before using it, and leaves
    // it as it found it; the closure leaves nothing behind.
    unsafe {
        lua.exec_raw::<()>(value, |state| {
            let reading = Reading {
                state,
                array_marker,
                number_key,
            };
            let slot = Slot {
                reading: &reading,
                index: 1,
                depth: 0,
                fixed,
            };
            written = slot.write(&mut text);
            ffi::lua_settop(state, 0);
        })?;
    }
    written.map_err(mlua::Error::runtime)?;
    Ok(text)
}

/// Runs `push`, which leaves one value on the stack (or an error), and
/// returns that value.
fn push_with(
    lua: &Lua,
    names: Option<&mlua::Table>,
    push: impl FnOnce(*mut ffi::lua_State) -> Result<(), String>,
) -> mlua::Result<Value> {
    let mut pushed = Ok(());
    let array_metatable = lua.array_metatable();
    // SAFETY: the closure runs as a protected Lua call with the array
    // metatable at stack index 1 (`ARRAY_METATABLE`) and the field names
    // (or nil) at 2 (`FIELD_NAMES_TABLE`). A Lua error raised by an
    // allocation (a script's memory limit) unwinds to that protected call;
    // the pushing functions own nothing that would leak then.
    let value = unsafe {
        lua.exec_raw::<Value>((array_metatable, names), |state| {
            pushed = push(state);
            if pushed.is_err() {
                ffi::lua_settop(state, 0);
                ffi::lua_pushnil(state);
            } else {
                ffi::lua_replace(state, ARRAY_METATABLE);
                ffi::lua_settop(state, 1);
            }
        })?
    };
    pushed.map_err(mlua::Error::runtime)?;
    Ok(value)
}

/// Where `push_with` keeps the array metatable on the stack.
const ARRAY_METATABLE: c_int = 1;
/// Where `push_with` keeps the `FieldNames` table (or nil) on the stack.
const FIELD_NAMES_TABLE: c_int = 2;

/// Pushes the value `tokens` starts with.
///
/// # Safety
/// `state` is a running protected call set up by `push_with`.
unsafe fn push_token(
    state: *mut ffi::lua_State,
    tokens: &mut std::slice::Iter<Token>,
    depth: usize,
) -> Result<(), String> {
    let Some(token) = tokens.next() else {
        return Err("JSON ended early".to_owned());
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
) -> Result<(), String> {
    let Some(Token::Text(name)) = tokens.next() else {
        return Err("a JSON object key is not a string".to_owned());
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

/// JSON text read into a flat list, before anything is pushed: a Lua error
/// (the memory limit) can then unwind the pushing without skipping any
/// destructor, and strings without escapes stay borrowed from the text.
/// A container's token gives the number of values (for an object, key and
/// value pairs) that follow it.
enum Token<'a> {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(Cow<'a, str>),
    Array(usize),
    Object(usize),
}

fn tokenize(text: &[u8]) -> serde_json::Result<Vec<Token<'_>>> {
    let mut tokens = Vec::with_capacity(32);
    match std::str::from_utf8(text) {
        // Checked whole at once, the strings are not checked one by one
        // (a third of the reading); text that is not UTF-8 is read as bytes
        // for serde_json's error naming where.
        Ok(text) => read_tokens(serde_json::Deserializer::from_str(text), &mut tokens)?,
        Err(_) => read_tokens(serde_json::Deserializer::from_slice(text), &mut tokens)?,
    }
    Ok(tokens)
}

fn read_tokens<'a, R: serde_json::de::Read<'a>>(
    mut deserializer: serde_json::Deserializer<R>,
    tokens: &mut Vec<Token<'a>>,
) -> serde_json::Result<()> {
    serde::de::DeserializeSeed::deserialize(Tokens(tokens), &mut deserializer)?;
    deserializer.end()
}

/// Reads one value into the list.
struct Tokens<'t, 'a>(&'t mut Vec<Token<'a>>);

impl<'de> serde::de::DeserializeSeed<'de> for Tokens<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Tokens<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Token::Null);
        Ok(())
    }

    fn visit_bool<E>(self, flag: bool) -> Result<(), E> {
        self.0.push(Token::Bool(flag));
        Ok(())
    }

    fn visit_i64<E>(self, integer: i64) -> Result<(), E> {
        self.0.push(Token::Integer(integer));
        Ok(())
    }

    /// Beyond Lua's integers a number becomes a float.
    fn visit_u64<E>(self, integer: u64) -> Result<(), E> {
        self.0.push(match i64::try_from(integer) {
            Ok(integer) => Token::Integer(integer),
            Err(_) => Token::Float(integer as f64),
        });
        Ok(())
    }

    fn visit_f64<E>(self, float: f64) -> Result<(), E> {
        self.0.push(Token::Float(float));
        Ok(())
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<(), E> {
        self.0.push(Token::Text(Cow::Borrowed(text)));
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        self.0.push(Token::Text(Cow::Owned(text.to_owned())));
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(Token::Array(0));
        let mut items = 0;
        while seq.next_element_seed(Tokens(&mut *self.0))?.is_some() {
            items += 1;
        }
        self.0[at] = Token::Array(items);
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(Token::Object(0));
        let mut fields = 0;
        while map.next_key_seed(Tokens(&mut *self.0))?.is_some() {
            map.next_value_seed(Tokens(&mut *self.0))?;
            fields += 1;
        }
        self.0[at] = Token::Object(fields);
        Ok(())
    }
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

/// What reading a value off the stack needs throughout.
struct Reading<'a> {
    state: *mut ffi::lua_State,
    /// The address of the array metatable.
    array_marker: *const c_void,
    /// Where a refused number key is noted; `None`: number keys are
    /// written out as field names.
    number_key: Option<&'a Cell<bool>>,
}

/// The value at an absolute stack index, written as JSON as it is read.
///
/// Writing it requires what `write_json` sets up: the state locked in a
/// protected call, and `index` valid. It raises no Lua error and leaves
/// the stack as it found it when it succeeds (after an error the caller
/// clears the stack).
struct Slot<'a> {
    reading: &'a Reading<'a>,
    index: c_int,
    depth: usize,
    /// Fields written with these values instead of the table's.
    fixed: &'a [(&'a str, &'a str)],
}

impl Slot<'_> {
    fn write(&self, text: &mut Vec<u8>) -> Result<(), String> {
        let (state, index) = (self.reading.state, self.index);
        // SAFETY: as the type says.
        unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TNIL => text.extend_from_slice(b"null"),
                ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(state, index).is_null() => {
                    text.extend_from_slice(b"null")
                }
                ffi::LUA_TBOOLEAN => {
                    text.extend_from_slice(if ffi::lua_toboolean(state, index) != 0 {
                        b"true"
                    } else {
                        b"false"
                    })
                }
                ffi::LUA_TNUMBER if ffi::lua_isinteger(state, index) != 0 => {
                    write_number(text, ffi::lua_tointeger(state, index))
                }
                ffi::LUA_TNUMBER => match ffi::lua_tonumber(state, index) {
                    number if number.is_finite() => write_number(text, number),
                    number => return Err(format!("{number} is not a JSON number")),
                },
                ffi::LUA_TSTRING => write_str(text, read_str(state, index)?),
                ffi::LUA_TTABLE => {
                    enter(state, self.depth)?;
                    let is_array = ffi::lua_getmetatable(state, index) != 0 && {
                        let marked = ffi::lua_topointer(state, -1) == self.reading.array_marker;
                        ffi::lua_pop(state, 1);
                        marked
                    };
                    let length = ffi::lua_rawlen(state, index);
                    if is_array || length > 0 {
                        self.write_array(length, text)?
                    } else {
                        self.write_object(text)?
                    }
                }
                other => {
                    return Err(format!(
                        "a {} cannot be converted to JSON",
                        type_name(state, other)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Items `1..=length` of the table; other keys are left out.
    ///
    /// # Safety
    /// As the type; the slot holds a table.
    unsafe fn write_array(&self, length: usize, text: &mut Vec<u8>) -> Result<(), String> {
        let state = self.reading.state;
        text.push(b'[');
        for position in 1..=length {
            if position > 1 {
                text.push(b',');
            }
            unsafe {
                ffi::lua_rawgeti(state, self.index, position as ffi::lua_Integer);
                self.nested(ffi::lua_gettop(state)).write(text)?;
                ffi::lua_pop(state, 1);
            }
        }
        text.push(b']');
        Ok(())
    }

    /// Every key and value of the table, with the `fixed` fields' values.
    ///
    /// # Safety
    /// As the type; the slot holds a table.
    unsafe fn write_object(&self, text: &mut Vec<u8>) -> Result<(), String> {
        let state = self.reading.state;
        let mut fixed_written = vec![false; self.fixed.len()];
        let mut first = true;
        let mut separate = |text: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                text.push(b',');
            }
        };
        text.push(b'{');
        unsafe {
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, self.index) != 0 {
                let top = ffi::lua_gettop(state);
                let key = self.key(top - 1)?;
                separate(text);
                write_str(text, &key);
                text.push(b':');
                match self.fixed.iter().position(|(name, _)| *name == key) {
                    Some(at) => {
                        fixed_written[at] = true;
                        write_str(text, self.fixed[at].1);
                    }
                    None => self.nested(top).write(text)?,
                }
                ffi::lua_pop(state, 1);
            }
        }
        for ((name, value), written) in self.fixed.iter().zip(fixed_written) {
            if !written {
                separate(text);
                write_str(text, name);
                text.push(b':');
                write_str(text, value);
            }
        }
        text.push(b'}');
        Ok(())
    }

    fn nested(&self, index: c_int) -> Slot<'_> {
        Slot {
            reading: self.reading,
            index,
            depth: self.depth + 1,
            fixed: &[],
        }
    }

    /// A table key as a field name: strings as they are, numbers written
    /// out (when the reading allows them).
    ///
    /// # Safety
    /// As the type; `index` holds a key `lua_next` is walking.
    unsafe fn key(&self, index: c_int) -> Result<Cow<'_, str>, String> {
        let state = self.reading.state;
        unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TSTRING => Ok(Cow::Borrowed(read_str(state, index)?)),
                ffi::LUA_TNUMBER => {
                    if let Some(refused) = self.reading.number_key {
                        refused.set(true);
                        return Err("a number key".to_owned());
                    }
                    Ok(Cow::Owned(if ffi::lua_isinteger(state, index) != 0 {
                        ffi::lua_tointeger(state, index).to_string()
                    } else {
                        ffi::lua_tonumber(state, index).to_string()
                    }))
                }
                other => Err(format!(
                    "a field name must be a string, not a {}",
                    type_name(state, other)
                )),
            }
        }
    }
}

/// A number as serde_json writes it (integers as integers, `2.0` as `2.0`).
fn write_number(text: &mut Vec<u8>, number: impl Serialize) {
    serde_json::to_writer(text, &number).expect("a finite number is written");
}

/// A string in quotes, escaped as serde_json escapes. Most strings need no
/// escaping, which is checked 16 bytes at a time and then copied whole;
/// serde_json's writer looks up every byte in a table (7% of a Lua run's
/// instructions).
fn write_str(text: &mut Vec<u8>, value: &str) {
    if needs_escaping(value.as_bytes()) {
        serde_json::to_writer(text, value).expect("a string is written");
    } else {
        text.reserve(value.len() + 2);
        text.push(b'"');
        text.extend_from_slice(value.as_bytes());
        text.push(b'"');
    }
}

/// Whether JSON needs any of these bytes escaped: a control character, a
/// quote or a backslash. Read 8 bytes at a time (the last word padded with
/// spaces); every test below is exact for the whole word.
fn needs_escaping(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte below `limit` (≤ 0x80) borrows into its high bit, which a
    // byte of 0x80 or more has already set in `word`.
    let any_below =
        |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH_BITS != 0;
    let any_equal = |word: u64, byte: u8| any_below(word ^ (ONES * u64::from(byte)), 1);
    let needs =
        |word: u64| any_below(word, 0x20) || any_equal(word, b'"') || any_equal(word, b'\\');
    let mut words = bytes.chunks_exact(8);
    if words
        .by_ref()
        .any(|word| needs(u64::from_ne_bytes(word.try_into().expect("8 bytes"))))
    {
        return true;
    }
    let mut last = [b' '; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    needs(u64::from_ne_bytes(last))
}

/// The name of a Lua type.
///
/// # Safety
/// `state` is a valid state.
unsafe fn type_name(state: *mut ffi::lua_State, lua_type: c_int) -> String {
    unsafe { CStr::from_ptr(ffi::lua_typename(state, lua_type)) }
        .to_string_lossy()
        .into_owned()
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
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8 (and checked so, much faster for the short
        // strings an event is made of).
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
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
        let text = serde_json::to_vec(&original).unwrap();
        let lua_value = json_to_lua(&lua, &text).unwrap().unwrap();
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
        let table = event_to_lua(&lua, &FieldNames::new(&lua).unwrap(), &text).unwrap();
        assert_eq!(from_lua(&lua, Value::Table(table)).unwrap(), original);
        // Escaped strings, a key given twice (the last counts), integers
        // beyond Lua's.
        let value = json_to_lua(
            &lua,
            br#"{"a\u0041":"\u00e9\n","d":1,"d":2,"big":18446744073709551615}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            from_lua(&lua, value).unwrap(),
            serde_json::json!({"aA": "é\n", "d": 2, "big": 18446744073709551615.0})
        );
        assert!(json_to_lua(&lua, b"{} x").unwrap().is_err());
        assert!(event_to_lua(&lua, &FieldNames::new(&lua).unwrap(), b"[1]").is_err());
    }

    #[test]
    fn known_field_names_are_keys_like_any_other() {
        let lua = Lua::new();
        let names = FieldNames::new(&lua).unwrap();
        // Known at the top, nested, and spelled with an escape.
        let text = br#"{"JobId":"a","Inner":{"JobId":"b"},"J\u006fbType":"c","Other":"d"}"#;
        let table = event_to_lua(&lua, &names, text).unwrap();
        lua.globals().set("event", table.clone()).unwrap();
        let checks: bool = lua
            .load(
                "local count = 0 for _ in pairs(event) do count = count + 1 end \
                 return count == 4 and rawget(event, 'JobId') == 'a' and event.Inner.JobId == 'b' \
                 and event['Job' .. 'Type'] == 'c' and event.Other == 'd'",
            )
            .eval()
            .unwrap();
        assert!(checks);
        assert_eq!(
            from_lua(&lua, Value::Table(table)).unwrap(),
            serde_json::json!({"JobId": "a", "Inner": {"JobId": "b"}, "JobType": "c", "Other": "d"})
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes() {
        // Every character up to U+00FF, in 8-byte words and in the
        // padded last one.
        for code in 0..=255u8 {
            for at in [0, 7, 8, 15, 16, 39, 40] {
                let mut value = "x".repeat(41);
                value.replace_range(at..=at, &char::from(code).to_string());
                let mut written = Vec::new();
                write_str(&mut written, &value);
                assert_eq!(
                    written,
                    serde_json::to_vec(&value).unwrap(),
                    "{code} at {at}"
                );
            }
        }
        let mut written = Vec::new();
        write_str(&mut written, "é ✓ \u{2028}");
        assert_eq!(written, serde_json::to_vec("é ✓ \u{2028}").unwrap());
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

    #[test]
    fn json_text_is_what_from_lua_gives() {
        let lua = Lua::new();
        lua.globals().set("null", lua.null()).unwrap();
        for chunk in [
            r#"return { list = {1, 2.5, 'x'}, holes = {1, nil, 3}, nothing = null,
                yes = true, nested = { deeper = { n = -1, s = 'q"\n\\' } } }"#,
            r#"return 'a \\ "quoted" line\n\t\1'"#,
            "return 3",
            // Number keys go through a map: one name, one value.
            "return { [7] = 'seven', name = 'x' }",
            "return { [7] = 'number', ['7'] = 'string' }",
        ] {
            let value: Value = lua.load(chunk).eval().unwrap();
            let text = json_text(&lua, value.clone()).unwrap();
            let parsed: Json = serde_json::from_slice(&text).unwrap();
            assert_eq!(parsed, from_lua(&lua, value).unwrap(), "{chunk}");
        }
    }

    #[test]
    fn an_event_table_keeps_the_fixed_fields() {
        let lua = Lua::new();
        let fixed = [("Id", "e-1"), ("Phase", "OnFinish")];
        let text = |chunk: &str| {
            let table: mlua::Table = lua.load(chunk).eval().unwrap();
            event_json(&lua, table, &fixed).map(|text| String::from_utf8(text).unwrap())
        };
        // A script's own Id is overwritten where it stands; a missing Phase
        // is added at the end.
        assert_eq!(
            text("return { Id = 'forged' }").unwrap(),
            r#"{"Id":"e-1","Phase":"OnFinish"}"#
        );
        let with_number_key: Json =
            serde_json::from_str(&text("return { [1.5] = true, Phase = 'OnStart' }").unwrap())
                .unwrap();
        assert_eq!(
            with_number_key,
            serde_json::json!({"1.5": true, "Phase": "OnFinish", "Id": "e-1"})
        );
        for list in ["return {1, 2}", "return json_array()"] {
            lua.globals()
                .set(
                    "json_array",
                    lua.create_function(|lua, ()| {
                        let table = lua.create_table()?;
                        table.set_metatable(Some(lua.array_metatable()))?;
                        Ok(table)
                    })
                    .unwrap(),
                )
                .unwrap();
            let err = text(list).unwrap_err().to_string();
            assert!(err.contains("it is a list"), "{list}: {err}");
        }
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
        let deep_json = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(
            json_to_lua(&lua, deep_json.as_bytes())
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
        let big = serde_json::to_vec(&vec![format!("{:04096}", 0); 4096]).unwrap();
        lua.set_memory_limit(lua.used_memory() + 64 * 1024).unwrap();
        let err = json_to_lua(&lua, &big).unwrap_err();
        assert!(matches!(err, mlua::Error::MemoryError(_)), "{err}");
        lua.set_memory_limit(0).unwrap();
        assert!(json_to_lua(&lua, &big).unwrap().is_ok());
    }
}
