//! The Lua event conversion, differential against mlua's own serde
//! conversion (`LuaSerdeExt::to_value` of what serde_json parses): for any
//! bytes, jobhook's reader takes exactly the JSON serde_json takes (up to
//! its depth limit), makes the same Lua value (types, integer or float,
//! `json.null`, the array mark), and reading that value back gives the JSON
//! again (integers beyond Lua's as floats, as both conversions make them).

#![no_main]

use jobhook::fuzzing::{FieldNames, event_to_lua, from_lua, json_to_lua};
use libfuzzer_sys::fuzz_target;
use mlua::{Lua, LuaSerdeExt, Value};
use serde_json::Value as Json;

/// Deepest nesting jobhook converts (`lua::convert::MAX_DEPTH`).
const MAX_DEPTH: usize = 64;

thread_local! {
    static LUA: (Lua, FieldNames) = {
        let lua = Lua::new();
        let names = FieldNames::new(&lua).expect("field names");
        (lua, names)
    };
}

fuzz_target!(|text: &[u8]| {
    LUA.with(|(lua, names)| check(lua, names, text));
});

fn check(lua: &Lua, names: &FieldNames, text: &[u8]) {
    let reference = serde_json::from_slice::<Json>(text);
    let ours = match json_to_lua(lua, text) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            assert!(reference.is_err(), "refused JSON serde_json reads: {err}");
            return;
        }
        Err(err) => {
            let json = reference.expect("a conversion error for text that is not JSON");
            assert!(depth(&json) > MAX_DEPTH, "{err} at depth {}", depth(&json));
            return;
        }
    };
    let json = reference.expect("took text serde_json refuses");
    let theirs = lua
        .to_value(&json)
        .expect("mlua converts what serde_json read");
    same(lua, &ours, &theirs, 0);
    assert_eq!(
        from_lua(lua, ours).expect("read back"),
        beyond_lua_as_floats(json.clone())
    );
    if json.is_object() {
        let table = event_to_lua(lua, names, text).expect("an object converts as an event");
        same(lua, &Value::Table(table), &theirs, 0);
    }
}

/// Containers nested in `json`, counting the outermost.
fn depth(json: &Json) -> usize {
    match json {
        Json::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Json::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `json` with every integer Lua cannot hold (above `i64::MAX`) a float.
fn beyond_lua_as_floats(json: Json) -> Json {
    match json {
        Json::Number(n) if n.is_u64() && n.as_i64().is_none() => Json::from(n.as_f64().unwrap()),
        Json::Array(items) => items.into_iter().map(beyond_lua_as_floats).collect(),
        Json::Object(fields) => Json::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, beyond_lua_as_floats(value)))
                .collect(),
        ),
        other => other,
    }
}

/// Asserts that two Lua values are the same: same types (integer or
/// float), same contents, the same array mark.
fn same(lua: &Lua, ours: &Value, theirs: &Value, depth: usize) {
    match (ours, theirs) {
        (Value::Table(a), Value::Table(b)) => {
            let marked = |t: &mlua::Table| {
                t.metatable()
                    .is_some_and(|m| m.to_pointer() == lua.array_metatable().to_pointer())
            };
            assert_eq!(marked(a), marked(b), "array mark at depth {depth}");
            let pairs = |t: &mlua::Table| {
                t.pairs::<Value, Value>()
                    .map(|pair| pair.expect("a pair"))
                    .collect::<Vec<_>>()
            };
            let (ours, theirs) = (pairs(a), pairs(b));
            assert_eq!(ours.len(), theirs.len(), "entries at depth {depth}");
            for (key, value) in ours {
                let other: Value = b.raw_get(key.clone()).expect("raw_get");
                assert!(!other.is_nil(), "key {key:?} only in ours at depth {depth}");
                same(lua, &value, &other, depth + 1);
            }
        }
        (Value::Integer(a), Value::Integer(b)) => assert_eq!(a, b),
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} and {b}")
        }
        (Value::String(a), Value::String(b)) => assert_eq!(a.as_bytes(), b.as_bytes()),
        (Value::Boolean(a), Value::Boolean(b)) => assert_eq!(a, b),
        (Value::LightUserData(a), Value::LightUserData(b)) => assert_eq!(a, b),
        (a, b) => panic!("{a:?} and {b:?} at depth {depth}"),
    }
}
