//! A Lua value written as JSON text as it is read off Lua's stack: Lua
//! into JSON.

use std::borrow::Cow;
use std::cell::Cell;
use std::ffi::{CStr, c_int, c_void};

use mlua::{Lua, LuaSerdeExt, Value, ffi};
use serde::Serialize;

use super::{ConvertError, enter};

/// The value as JSON text, written as it is read off Lua's stack.
pub(super) fn write_json(
    lua: &Lua,
    value: Value,
    fixed: &[(&str, &str)],
    number_key: Option<&Cell<bool>>,
) -> mlua::Result<Vec<u8>> {
    let array_marker = lua.array_metatable().to_pointer();
    let mut text = Vec::with_capacity(512);
    let mut written = Ok(());
    // SAFETY: `exec_raw` locks the state and runs the closure as a protected
    // Lua call with the value at stack index 1. Reading raises no Lua error
    // (see the rules in `convert`'s doc), grows the stack before using it,
    // and leaves it as it found it; the closure leaves nothing behind.
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
    written?;
    Ok(text)
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
    fn write(&self, text: &mut Vec<u8>) -> Result<(), ConvertError> {
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
                    number => return Err(ConvertError::NotANumber(number)),
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
                    return Err(ConvertError::Unconvertible(type_name(state, other)));
                }
            }
        }
        Ok(())
    }

    /// Items `1..=length` of the table; other keys are left out.
    ///
    /// # Safety
    /// As the type; the slot holds a table.
    unsafe fn write_array(&self, length: usize, text: &mut Vec<u8>) -> Result<(), ConvertError> {
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
    unsafe fn write_object(&self, text: &mut Vec<u8>) -> Result<(), ConvertError> {
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
    unsafe fn key(&self, index: c_int) -> Result<Cow<'_, str>, ConvertError> {
        let state = self.reading.state;
        unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TSTRING => Ok(Cow::Borrowed(read_str(state, index)?)),
                ffi::LUA_TNUMBER => {
                    if let Some(refused) = self.reading.number_key {
                        refused.set(true);
                        return Err(ConvertError::NumberKey);
                    }
                    Ok(Cow::Owned(if ffi::lua_isinteger(state, index) != 0 {
                        ffi::lua_tointeger(state, index).to_string()
                    } else {
                        ffi::lua_tonumber(state, index).to_string()
                    }))
                }
                other => Err(ConvertError::FieldName(type_name(state, other))),
            }
        }
    }
}

/// A number as serde_json writes it (integers as integers, `2.0` as `2.0`).
fn write_number(text: &mut Vec<u8>, number: impl Serialize) {
    serde_json::to_writer(text, &number).expect("a finite number is written");
}

/// A string in quotes, escaped as serde_json escapes. Most strings need no
/// escaping, which is checked 8 bytes at a time and then copied whole,
/// where serde_json's writer looks up every byte in a table.
pub(super) fn write_str(text: &mut Vec<u8>, value: &str) {
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
unsafe fn read_str<'a>(state: *mut ffi::lua_State, index: c_int) -> Result<&'a str, ConvertError> {
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
    std::str::from_utf8(bytes).map_err(|_| ConvertError::NotUtf8)
}
