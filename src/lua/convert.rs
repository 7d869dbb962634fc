//! Values crossing between JSON and Lua without losing their types: `null`
//! stays `json.null`, integers stay integers, arrays (even empty ones) stay
//! arrays.

use mlua::{Lua, LuaSerdeExt, Value};

/// Deepest nesting converted either way.
const MAX_DEPTH: usize = 64;

/// A JSON value as a Lua value; used for events, so written out by hand: it
/// is several times faster than going through serde.
pub fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as Json;
    Ok(match value {
        Json::Null => lua.null(),
        Json::Bool(flag) => Value::Boolean(*flag),
        Json::Number(number) => match number.as_i64() {
            Some(integer) => Value::Integer(integer),
            None => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(text) => Value::String(lua.create_string(text)?),
        Json::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (index, item) in items.iter().enumerate() {
                table.raw_set(index + 1, to_lua(lua, item)?)?;
            }
            table.set_metatable(Some(lua.array_metatable()))?;
            Value::Table(table)
        }
        Json::Object(fields) => Value::Table(object_to_lua(lua, fields)?),
    })
}

/// An object (an event's fields) as a Lua table.
pub fn object_to_lua(
    lua: &Lua,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> mlua::Result<mlua::Table> {
    use serde_json::Value as Json;
    let table = lua.create_table_with_capacity(0, fields.len())?;
    for (key, value) in fields {
        let key = key.as_str();
        match value {
            // Strings and scalars go straight onto Lua's stack.
            Json::String(text) => table.raw_set(key, text.as_str())?,
            Json::Bool(flag) => table.raw_set(key, *flag)?,
            Json::Number(number) if number.is_i64() => table.raw_set(key, number.as_i64())?,
            other => table.raw_set(key, to_lua(lua, other)?)?,
        }
    }
    Ok(table)
}

/// A Lua value as JSON: `json.null` and `nil` become null, a table with a
/// sequence (or made by `json.array`) an array of that sequence, any other
/// table an object.
pub fn from_lua(lua: &Lua, value: Value) -> mlua::Result<serde_json::Value> {
    from_lua_at(lua, value, 0)
}

fn from_lua_at(lua: &Lua, value: Value, depth: usize) -> mlua::Result<serde_json::Value> {
    use serde_json::Value as Json;
    Ok(match value {
        Value::Nil => Json::Null,
        Value::LightUserData(pointer) if pointer.0.is_null() => Json::Null,
        Value::Boolean(flag) => Json::Bool(flag),
        Value::Integer(integer) => Json::from(integer),
        Value::Number(number) => serde_json::Number::from_f64(number)
            .map(Json::Number)
            .ok_or_else(|| mlua::Error::runtime(format!("{number} is not a JSON number")))?,
        Value::String(text) => Json::String(text.to_str()?.to_owned()),
        Value::Table(table) => {
            if depth >= MAX_DEPTH {
                return Err(mlua::Error::runtime(format!(
                    "value nested deeper than {MAX_DEPTH} levels (or a table that contains itself)"
                )));
            }
            let is_array = table
                .metatable()
                .is_some_and(|meta| meta == lua.array_metatable());
            if is_array || table.raw_len() > 0 {
                let mut items = Vec::with_capacity(table.raw_len());
                for item in table.sequence_values::<Value>() {
                    items.push(from_lua_at(lua, item?, depth + 1)?);
                }
                Json::Array(items)
            } else {
                let mut fields = serde_json::Map::new();
                table.for_each::<String, Value>(|key, value| {
                    fields.insert(key, from_lua_at(lua, value, depth + 1)?);
                    Ok(())
                })?;
                Json::Object(fields)
            }
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "a {} cannot be converted to JSON",
                other.type_name()
            )));
        }
    })
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
                 and math.type(event.Whole) == 'float' and event.Nested.List[3].three == true",
            )
            .eval()
            .unwrap();
        assert!(checks);
        assert_eq!(from_lua(&lua, lua_value).unwrap(), original);
    }

    #[test]
    fn functions_and_cycles_are_refused() {
        let lua = Lua::new();
        let cyclic: Value = lua.load("local t = {} t.self = t return t").eval().unwrap();
        assert!(from_lua(&lua, cyclic).is_err());
        let function: Value = lua.load("return { f = print }").eval().unwrap();
        assert!(from_lua(&lua, function).is_err());

        let deep: Value = lua
            .load("local t = {} for i = 1, 100 do t = {t} end return t")
            .eval()
            .unwrap();
        assert!(
            from_lua(&lua, deep)
                .unwrap_err()
                .to_string()
                .contains("nested deeper")
        );
    }
}
