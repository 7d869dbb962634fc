use mlua::{Lua, LuaSerdeExt, Value};
use serde_json::Value as Json;

use super::write::write_str;
use super::{FieldNames, event_json, event_to_lua, from_lua, json_text, json_to_lua};

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
fn floats_cross_and_come_back_exactly() {
    // Found by fuzzing (fuzz/seeds/lua_convert/float-one-ulp): serde_json
    // read the float written for 1.2345678905412369e29 as ...367e29.
    let lua = Lua::new();
    for text in [
        "123456789054123678901234567890",
        "1.2345678905412369e29",
        "0.1",
        "5e-324",
        "1.7976931348623157e308",
    ] {
        let value = json_to_lua(&lua, text.as_bytes()).unwrap().unwrap();
        // Rust's own parsing is correctly rounded.
        let exact: f64 = text.parse().unwrap();
        assert_eq!(from_lua(&lua, value).unwrap(), Json::from(exact), "{text}");
    }
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
        serde_json::from_str(&text("return { [1.5] = true, Phase = 'OnStart' }").unwrap()).unwrap();
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
