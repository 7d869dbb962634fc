//! Handlers as the admin API shows them: objects with the field names of
//! Keyfactor's Event Handler Registration, built from the running config
//! and pipeline (which knows the drop-in scripts without running them
//! again), their settings as written with every secret hidden.

use serde::Serialize;
use serde_json::{Map, Value};

use super::RegistrationError;
use super::keys::{canonical, section_keys};
use super::secrets::Hidden;
use crate::chain::Pipeline;
use crate::config::CommonSettings;
use crate::event::Phase;
use crate::handlers::{HandlerSection, LIBRARY_KEYS, Library};
use crate::setup::Config;

/// One handler, as `GET /handlers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HandlerObject {
    /// The handler's name: sections have no other stable identity.
    pub id: String,
    /// `[handlers.NAME]`, or a drop-in script's file name (`notify.lua`).
    pub name: String,
    /// `display_name`, or the name.
    pub display_name: String,
    /// The library (`HttpHandler`); drop-ins are `LuaHandler`s.
    pub class_name: &'static str,
    pub enabled: bool,
    /// The phases whose chains run it, in phase order.
    pub supported_events: Vec<&'static str>,
    /// `job_types`; `null` when the handler takes every job type.
    pub job_types: Option<Vec<String>>,
    /// A drop-in script: read-only here.
    pub drop_in: bool,
    /// The section's other keys as written (aliases under their snake_case
    /// key), secrets shown as `"<redacted>"`; a drop-in shows its script.
    pub settings: Map<String, Value>,
}

/// Keys with a field of their own in [`HandlerObject`], left out of its
/// `Settings`.
const OWN_FIELDS: [&str; 3] = ["display_name", "enabled", "job_types"];

/// Every handler: the sections in the order written, then the drop-ins in
/// the order they join chains.
pub fn list(config: &Config, pipeline: &Pipeline) -> Vec<HandlerObject> {
    let document: toml::Table = toml::from_str(&config.text).unwrap_or_default();
    let tables = document.get("handlers").and_then(toml::Value::as_table);
    // `config.handlers` is in name order.
    let mut sections: Vec<&HandlerSection> = config.handlers.iter().collect();
    sections.sort_by_key(|section| (section.position.line, section.position.column));
    let mut objects: Vec<HandlerObject> = sections
        .into_iter()
        .map(|section| {
            let written = tables.and_then(|tables| tables.get(&section.name)?.as_table());
            of_section(config, section, written)
        })
        .collect();
    for phase in Phase::ALL {
        for stage in pipeline.chain(phase) {
            if objects.iter().any(|object| object.name == stage.name) {
                continue;
            }
            let filter = stage.filter();
            objects.push(HandlerObject {
                id: stage.name.clone(),
                name: stage.name.clone(),
                display_name: stage.name.clone(),
                class_name: Library::Lua.name(),
                enabled: filter.enabled(),
                supported_events: supported_events(|phase| {
                    pipeline.chain(phase).iter().any(|s| s.name == stage.name)
                }),
                job_types: filter.job_types().map(<[String]>::to_vec),
                drop_in: true,
                settings: Map::from_iter([("lua_script".to_owned(), stage.name.clone().into())]),
            });
        }
    }
    objects
}

/// The handler named `name`.
pub fn show(
    config: &Config,
    pipeline: &Pipeline,
    name: &str,
) -> Result<HandlerObject, RegistrationError> {
    list(config, pipeline)
        .into_iter()
        .find(|object| object.name == name)
        .ok_or_else(|| RegistrationError::NotFound {
            name: name.to_owned(),
        })
}

fn of_section(
    config: &Config,
    section: &HandlerSection,
    written: Option<&toml::Table>,
) -> HandlerObject {
    let library = section.library.library();
    let keys = section_keys(Some(library));
    let hidden = Hidden::of(library);
    let mut settings = Map::new();
    for (key, value) in written.into_iter().flatten() {
        let key = canonical(key, &keys).unwrap_or(key);
        if key == LIBRARY_KEYS[0] || OWN_FIELDS.contains(&key) {
            continue;
        }
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        settings.insert(key.to_owned(), hidden.show(key, value));
    }
    let CommonSettings {
        enabled,
        display_name,
        job_types,
        ..
    } = &section.common;
    HandlerObject {
        id: section.name.clone(),
        name: section.name.clone(),
        display_name: display_name.clone().unwrap_or_else(|| section.name.clone()),
        class_name: library.name(),
        enabled: *enabled,
        supported_events: supported_events(|phase| {
            config
                .hooks
                .chain(phase)
                .iter()
                .any(|name| *name.get_ref() == section.name)
        }),
        job_types: job_types.as_ref().map(|list| list.0.clone()),
        drop_in: false,
        settings,
    }
}

fn supported_events(runs_in: impl Fn(Phase) -> bool) -> Vec<&'static str> {
    Phase::ALL
        .into_iter()
        .filter(|&phase| runs_in(phase))
        .map(Phase::as_str)
        .collect()
}
