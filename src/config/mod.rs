//! `handlers.toml`: parse → validate. Building runnable handlers from a valid
//! config is the chain's job (`crate::chain::Pipeline::build`).
//!
//! Parsing keeps toml's spans so that every problem is reported as
//! `FILE:LINE:COL: message`, and collects all problems rather than the first.

mod diagnostic;
mod handler;
mod locate;
mod sections;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::http::SslSettings;
use crate::http::endpoint::CONNECTION_KEYS;
use crate::lua::ApiSettings;

pub use diagnostic::{Diagnostic, Locator, Position, Severity, closest};
pub use handler::{COMMON_KEYS, CommonSettings, HandlerSection, LibrarySettings};
pub use locate::{default_config_path, locate};
pub use sections::{Backoff, DaemonSettings, Hooks, LogFormat, LogSettings, Rotation};

/// A validated configuration. Paths in it are absolute (resolved against `dir`).
#[derive(Debug)]
pub struct Config {
    /// The file this was read from.
    pub file: PathBuf,
    /// The directory relative paths were resolved against.
    pub dir: PathBuf,
    pub daemon: DaemonSettings,
    pub log: LogSettings,
    pub hooks: Hooks,
    /// Handler sections in the order they are written.
    pub handlers: Vec<HandlerSection>,
    /// `[ssl.NAME]` sections, named by handlers' `ssl_config`.
    pub ssl: BTreeMap<String, SslSettings>,
    /// `[api]`: the API client scripts call as `client`.
    pub api: Option<ApiSettings>,
    /// The text this was parsed from; hot reload compares the file with it.
    pub text: String,
}

/// The outcome of reading a config: the config if it has no errors, and every
/// problem found (warnings are reported alongside a valid config).
#[derive(Debug)]
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    fn failed(diagnostics: Vec<Diagnostic>) -> Loaded {
        Loaded {
            config: None,
            diagnostics,
        }
    }
}

/// Reads and validates the config file at `file`.
pub fn load(file: &Path) -> Loaded {
    match std::fs::read_to_string(file) {
        Ok(text) => parse(&text, file),
        Err(err) => {
            let nowhere = Position {
                file: file.to_owned(),
                line: 0,
                column: 0,
            };
            Loaded::failed(vec![nowhere.error(format!("cannot read config: {err}"))])
        }
    }
}

/// Validates config text; `file` names it in diagnostics and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Loaded {
    let locator = Locator::new(file, text);
    let mut root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(err) => return Loaded::failed(vec![locator.toml_error(&err, &[])]),
    };
    let handler_table = root.get_mut().remove("handlers");
    let api_table = root.get_mut().remove("api");
    // Names of every section, including broken ones, so that a typo inside a
    // section is not reported again at each hook that names it.
    let declared: Vec<String> = handler_table
        .as_ref()
        .and_then(|table| table.get_ref().as_table())
        .map(|table| {
            table
                .keys()
                .map(|name| name.get_ref().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut diagnostics = Vec::new();
    let top = sections::Top::deserialize_from(root)
        .map_err(|err| diagnostics.push(locator.toml_error(&err, &["handlers"])))
        .ok();
    let handlers = handler_table
        .map(|table| handler::parse_all(table, &locator, &mut diagnostics))
        .unwrap_or_default();
    let api = api_table.and_then(|table| parse_api(table, &locator, &mut diagnostics));
    let Some(top) = top else {
        return Loaded::failed(diagnostics);
    };
    check_hooks(&top.hooks, &declared, &handlers, &locator, &mut diagnostics);
    let (filling, emptying) = (
        top.hooks.queue_filling_threshold,
        top.hooks.queue_emptying_threshold,
    );
    if !(0.0 < emptying && emptying < filling && filling <= 1.0) {
        diagnostics.push(locator.error(
            None,
            format!(
                "[hooks] queue_emptying_threshold ({emptying}) and queue_filling_threshold \
                 ({filling}) must satisfy 0 < emptying < filling <= 1"
            ),
        ));
    }
    check_ssl_names(
        &top.ssl,
        &handlers,
        api.as_ref(),
        &locator,
        &mut diagnostics,
    );
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Loaded::failed(diagnostics);
    }
    let dir = file
        .parent()
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        })
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let mut config = Config {
        file: file.to_owned(),
        daemon: top.daemon,
        log: top.log,
        hooks: top.hooks,
        ssl: top.ssl,
        api,
        handlers,
        dir,
        text: text.to_owned(),
    };
    config.resolve_paths();
    Loaded {
        config: Some(config),
        diagnostics,
    }
}

impl Config {
    /// The handler section called `name`.
    pub fn handler(&self, name: &str) -> Option<&HandlerSection> {
        self.handlers.iter().find(|handler| handler.name == name)
    }

    fn resolve_paths(&mut self) {
        let dir = &self.dir;
        self.daemon.socket = dir.join(&self.daemon.socket);
        self.daemon.scripts_dir = dir.join(&self.daemon.scripts_dir);
        self.daemon.spool_dir = dir.join(&self.daemon.spool_dir);
        if let Some(log_dir) = &mut self.log.dir {
            *log_dir = dir.join(&*log_dir);
        }
    }
}

/// Every hook entry must name a declared handler; a handler no hook names is
/// probably a mistake, so it is reported as a warning.
fn check_hooks(
    hooks: &Hooks,
    declared: &[String],
    handlers: &[HandlerSection],
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let defined = || declared.iter().map(String::as_str);
    for (phase, names) in hooks.chains() {
        for name in names {
            if defined().any(|defined| defined == name.get_ref()) {
                continue;
            }
            let mut message = format!(
                "hook {phase} names handler `{}`, which is not defined",
                name.get_ref()
            );
            if let Some(hint) = closest(name.get_ref(), defined()) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            } else {
                message.push_str(&format!("; add a [handlers.{}] section", name.get_ref()));
            }
            diagnostics.push(locator.error(Some(name.span()), message));
        }
    }
    for handler in handlers {
        let used = hooks
            .chains()
            .any(|(_, names)| names.iter().any(|name| name.get_ref() == &handler.name));
        if !used {
            diagnostics.push(handler.position.warning(format!(
                "handler `{}` is defined but no hook uses it",
                handler.name
            )));
        }
    }
}

/// Every `ssl_config` must name an `[ssl.NAME]` section.
fn check_ssl_names(
    ssl: &BTreeMap<String, SslSettings>,
    handlers: &[HandlerSection],
    api: Option<&ApiSettings>,
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let users = handlers
        .iter()
        .filter_map(|handler| match &handler.library {
            LibrarySettings::Http(settings) => {
                Some((format!("handler `{}`", handler.name), &settings.connection))
            }
            _ => None,
        })
        .chain(api.map(|api| ("[api]".to_owned(), &api.connection)));
    for (user, connection) in users {
        if let Some(name) = &connection.ssl_config
            && !ssl.contains_key(name.get_ref())
        {
            let mut message = format!(
                "{user}: ssl_config names [ssl.{}], which is not defined",
                name.get_ref()
            );
            if let Some(hint) = closest(name.get_ref(), ssl.keys().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            diagnostics.push(locator.error(Some(name.span()), message));
        }
    }
}

/// `[api]`: its own keys and the connection keys, each half read on its own.
fn parse_api(
    table: Spanned<DeValue<'_>>,
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<ApiSettings> {
    let span = table.span();
    let DeValue::Table(table) = table.into_inner() else {
        diagnostics.push(locator.error(Some(span), "`api` must be a table"));
        return None;
    };
    let (connection, own) = handler::split(table, CONNECTION_KEYS);
    let api = from_value::<ApiSettings>(Spanned::new(span.clone(), DeValue::Table(own))).and_then(
        |mut api| {
            api.connection = from_value(Spanned::new(span, DeValue::Table(connection)))?;
            Ok(api)
        },
    );
    match api {
        Ok(api) => Some(api),
        Err(err) => {
            let mut diagnostic = locator.toml_error(&err, CONNECTION_KEYS);
            diagnostic.message = format!("[api]: {}", diagnostic.message);
            diagnostics.push(diagnostic);
            None
        }
    }
}

/// Deserialises a spanned toml value, keeping positions in errors.
fn from_value<'de, T: serde::Deserialize<'de>>(
    value: Spanned<DeValue<'de>>,
) -> Result<T, toml::de::Error> {
    T::deserialize(toml::de::ValueDeserializer::from(value))
}

#[cfg(test)]
mod tests;
