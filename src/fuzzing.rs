//! The internals the fuzz targets in `fuzz/` drive, and nothing else; built
//! only with the `fuzzing` feature, so the daemon's own build and its dead
//! code checks never see it. Each function is a thin door onto code the
//! daemon runs; the properties are checked in the targets.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use mlua::{Lua, Value};

use crate::chain::Pipeline;
use crate::event::{Event, EventError};
use crate::handlers::http::settings::UrlSource;
use crate::handlers::http::target::Target;
use crate::handlers::template::{Escape, Template, TemplateError};
use crate::lua::convert;
use crate::setup;

pub use crate::lua::convert::FieldNames;

/// The verbatim pass over a wire line: `None` leaves the line to
/// [`event_general`].
pub fn event_verbatim(line: &[u8], received_at: Timestamp) -> Option<Event> {
    crate::event::verbatim::event(line, received_at)
}

/// The general way for a wire line, which the verbatim pass must agree with.
pub fn event_general(line: &[u8], received_at: Timestamp) -> Result<Event, EventError> {
    Event::general(line, received_at)
}

/// Config text read and validated as `jobhook check` does (as the file
/// `file`), the pipeline built when it is valid: every problem, printed.
pub fn check_config(text: &str, file: &Path) -> Vec<String> {
    let loaded = setup::parse(text, file);
    let mut problems: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    if let Some(config) = &loaded.config {
        match Pipeline::build(config) {
            Ok((_, warnings)) => problems.extend(warnings.iter().map(|d| d.to_string())),
            Err(errors) => problems.extend(errors.iter().map(|d| d.to_string())),
        }
    }
    problems
}

/// JSON text as the Lua value scripts get (`Ok(Err(..))`: not JSON).
pub fn json_to_lua(lua: &Lua, text: &[u8]) -> mlua::Result<Result<Value, serde_json::Error>> {
    convert::json_to_lua(lua, text)
}

/// An event's JSON as the table a Lua handler gets.
pub fn event_to_lua(lua: &Lua, names: &FieldNames, json: &[u8]) -> mlua::Result<mlua::Table> {
    convert::event_to_lua(lua, names, json)
}

/// A Lua value as JSON, as a script's result is read.
pub fn from_lua(lua: &Lua, value: Value) -> mlua::Result<serde_json::Value> {
    convert::from_lua(lua, value)
}

/// `file_path` rendered for `event` as `TextFileHandler` does, and the
/// template with every placeholder replaced by `x`.
pub fn file_path(template: &str, event: &Event) -> Result<(PathBuf, PathBuf), TemplateError> {
    let template = Template::parse(template)?;
    let mut rendered = String::new();
    template.render(event, Escape::PathSegment, &mut rendered);
    Ok((
        PathBuf::from(template.with_stand_in("x")),
        PathBuf::from(rendered),
    ))
}

/// `url` as `HttpHandler` renders it for `event`, beside the template with
/// every placeholder replaced by `stand_in`: `None` when the handler
/// refuses the template itself, else the URL or why this event has none.
pub fn url(
    template: &str,
    stand_in: &str,
    event: &Event,
) -> Option<(reqwest::Url, Result<reqwest::Url, String>)> {
    let template = Template::parse(template).ok()?;
    let stand_in = reqwest::Url::parse(&template.with_stand_in(stand_in)).ok()?;
    let target = Target::new(&UrlSource::Written(template), Path::new("/")).ok()?;
    Some((stand_in, target.url(event).map_err(|err| err.to_string())))
}
