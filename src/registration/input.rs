//! A registration as `POST /handlers` sends it: a JSON object with the
//! field names of Keyfactor's Event Handler Registration and the library's
//! settings, read into the keys and values of a new `[handlers.NAME]`.
//!
//! Settings may be given at the top level of the object, under `Settings`,
//! or both; each under its snake_case key or an alias (`URL`, `FilePath`,
//! `BasicPassword`, `Enabled`, `JobTypes`, …), and are written under the
//! snake_case key. What the keys and values mean is not checked here: the
//! candidate config is validated as a whole, so an unknown key, a missing
//! one or a bad value is reported at its line, as `jobhook check` would.

use serde_json::{Map, Value};
use toml_edit::{Array, InlineTable};

use super::RegistrationError;
use super::keys::{canonical, section_keys};
use crate::event::Phase;
use crate::handlers::Library;

/// A handler to add to the config.
#[derive(Debug, Clone)]
pub struct Registration {
    /// `Name`: the section's name, `[handlers.NAME]`.
    pub name: String,
    /// `ClassName` or `LibraryName`, as the library spells it when known.
    pub library: String,
    /// `SupportedEvents`: the chains the handler joins (at their end);
    /// a known phase as it is spelt, anything else as given (and refused by
    /// validation).
    pub phases: Vec<String>,
    /// The section's other keys, in the order given.
    pub settings: Vec<(String, toml_edit::Value)>,
}

/// Fields of the object that are not settings.
const NAME: &str = "Name";
const ID: &str = "Id";
const LIBRARY: [&str; 2] = ["ClassName", "LibraryName"];
const PHASES: &str = "SupportedEvents";
const SETTINGS: &str = "Settings";

impl Registration {
    /// Reads a registration. `Id`, when given, must equal `Name` (handlers
    /// are identified by name).
    pub fn from_json(value: Value) -> Result<Registration, RegistrationError> {
        let Value::Object(mut object) = value else {
            return Err(RegistrationError::bad_request(
                "registration",
                "expected a JSON object",
            ));
        };
        let name = take_string(&mut object, NAME)?
            .ok_or_else(|| RegistrationError::bad_request(NAME, "missing"))?;
        check_name(&name)?;
        if let Some(id) = take_string(&mut object, ID)?
            && id != name
        {
            return Err(RegistrationError::bad_request(
                ID,
                "differs from `Name`; a handler's Id is its name",
            ));
        }
        let mut library = None;
        for field in LIBRARY {
            if let Some(given) = take_string(&mut object, field)? {
                if library.is_some() {
                    return Err(RegistrationError::bad_request(
                        field,
                        "give the library once, as ClassName or LibraryName",
                    ));
                }
                library = Some(given);
            }
        }
        let library = library.ok_or_else(|| {
            RegistrationError::bad_request(
                LIBRARY[0],
                format!("missing; one of {}", Library::NAMES.join(", ")),
            )
        })?;
        let known = Library::parse(&library);
        let library = known.map_or(library, |known| known.name().to_owned());
        let phases = match object.shift_remove(PHASES) {
            None => Vec::new(),
            Some(Value::Array(phases)) => phases
                .into_iter()
                .map(|phase| match phase {
                    Value::String(phase) => {
                        Ok(Phase::parse(&phase).map_or(phase, |phase| phase.as_str().to_owned()))
                    }
                    _ => Err(RegistrationError::bad_request(
                        PHASES,
                        "expected an array of phase names",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(RegistrationError::bad_request(
                    PHASES,
                    "expected an array of phase names",
                ));
            }
        };
        let nested = match object.shift_remove(SETTINGS) {
            None => Map::new(),
            Some(Value::Object(nested)) => nested,
            Some(_) => {
                return Err(RegistrationError::bad_request(
                    SETTINGS,
                    "expected an object",
                ));
            }
        };
        let keys = section_keys(known);
        let mut settings: Vec<(String, toml_edit::Value)> = Vec::new();
        let given = object
            .into_iter()
            .map(|(key, value)| (key, value, None))
            .chain(
                nested
                    .into_iter()
                    .map(|(key, value)| (key, value, Some(SETTINGS))),
            );
        for (key, value, under) in given {
            let field = under.map_or_else(|| key.clone(), |under| format!("{under}.{key}"));
            let written = canonical(&key, &keys).map_or(key.clone(), str::to_owned);
            if written == crate::handlers::LIBRARY_KEYS[0] {
                return Err(RegistrationError::bad_request(
                    field,
                    "give the library as ClassName",
                ));
            }
            if settings.iter().any(|(other, _)| *other == written) {
                return Err(RegistrationError::bad_request(
                    field,
                    format!("`{written}` is given twice"),
                ));
            }
            let value = to_toml(value, &field)?;
            settings.push((written, value));
        }
        Ok(Registration {
            name,
            library,
            phases,
            settings,
        })
    }
}

/// Names stay plain so that hooks, logs and URLs (`/handlers/NAME`) need
/// no quoting.
fn check_name(name: &str) -> Result<(), RegistrationError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 128 || !name.chars().all(plain) {
        return Err(RegistrationError::bad_request(
            NAME,
            "expected 1 to 128 letters, digits, `_`, `-` or `.`",
        ));
    }
    Ok(())
}

fn take_string(
    object: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<String>, RegistrationError> {
    match object.shift_remove(field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(RegistrationError::bad_request(field, "expected a string")),
    }
}

/// A JSON value as TOML. `null` has no TOML form: a key to leave unset is
/// left out.
fn to_toml(value: Value, field: &str) -> Result<toml_edit::Value, RegistrationError> {
    Ok(match value {
        Value::Null => {
            return Err(RegistrationError::bad_request(
                field,
                "null is not a value; leave the key out",
            ));
        }
        Value::Bool(flag) => flag.into(),
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(whole), _) => whole.into(),
            (None, Some(real)) if number.is_f64() => real.into(),
            _ => {
                return Err(RegistrationError::bad_request(
                    field,
                    format!("{number} is too large"),
                ));
            }
        },
        Value::String(text) => text.into(),
        Value::Array(items) => {
            let mut array = Array::new();
            for (index, item) in items.into_iter().enumerate() {
                array.push(to_toml(item, &format!("{field}[{index}]"))?);
            }
            array.into()
        }
        Value::Object(entries) => {
            let mut table = InlineTable::new();
            for (key, item) in entries {
                let item = to_toml(item, &format!("{field}.{key}"))?;
                table.insert(&key, item);
            }
            table.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Registration, RegistrationError> {
        Registration::from_json(serde_json::from_str(json).unwrap())
    }

    fn keys(registration: &Registration) -> Vec<&str> {
        registration
            .settings
            .iter()
            .map(|(key, _)| key.as_str())
            .collect()
    }

    #[test]
    fn aliases_at_the_top_or_under_settings_become_snake_case() {
        let top = read(
            r#"{"Name": "itsm", "ClassName": "httphandler", "URL": "https://x/",
                "BasicUser": "svc", "Enabled": false, "JobTypes": ["A"],
                "DisplayName": "ITSM", "SupportedEvents": ["onfinish", "OnError"]}"#,
        )
        .unwrap();
        assert_eq!(top.library, "HttpHandler");
        assert_eq!(top.phases, ["OnFinish", "OnError"]);
        assert_eq!(
            keys(&top),
            ["url", "basic_user", "enabled", "job_types", "display_name"]
        );
        let nested = read(
            r#"{"Name": "a", "LibraryName": "TextFileHandler",
                "Settings": {"FilePath": "x.log", "format": "text"}}"#,
        )
        .unwrap();
        assert_eq!(keys(&nested), ["file_path", "format"]);
        assert_eq!(nested.settings[0].1.as_str(), Some("x.log"));
    }

    #[test]
    fn a_bad_shape_names_the_field() {
        let field = |json: &str| match read(json) {
            Err(RegistrationError::BadRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(r#"[]"#), "registration");
        assert_eq!(field(r#"{"ClassName": "HttpHandler"}"#), "Name");
        assert_eq!(
            field(r#"{"Name": "a b", "ClassName": "HttpHandler"}"#),
            "Name"
        );
        assert_eq!(field(r#"{"Name": "a"}"#), "ClassName");
        assert_eq!(
            field(r#"{"Name": "a", "ClassName": "LuaHandler", "SupportedEvents": "OnStart"}"#),
            "SupportedEvents"
        );
        assert_eq!(
            field(r#"{"Name": "a", "ClassName": "LuaHandler", "Settings": {"LuaScript": null}}"#),
            "Settings.LuaScript"
        );
        assert_eq!(
            field(
                r#"{"Name": "a", "ClassName": "LuaHandler", "LuaScript": "a.lua",
                    "Settings": {"lua_script": "b.lua"}}"#
            ),
            "Settings.lua_script"
        );
        assert_eq!(
            field(r#"{"Name": "a", "ClassName": "LuaHandler", "library": "LuaHandler"}"#),
            "library"
        );
    }
}
