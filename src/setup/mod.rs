//! `handlers.toml` as a whole: reads it, has `config` read the daemon's own
//! sections and each component read its own (`handlers`, `http`, `lua`,
//! `sources`),
//! and checks what crosses sections (hooks name handlers, `ssl_config` names
//! an `[ssl.NAME]`). Building runnable handlers from a valid config is the
//! chain's job (`crate::chain::Pipeline::build`).
//!
//! Parsing keeps toml's spans so that every problem is reported as
//! `FILE:LINE:COL: message`, and collects all problems rather than the first.

mod admin;
mod ingest;
mod secrets_at_rest;
mod ssl;

use admin::parse_admin;
use ingest::parse_ingest;
use ssl::{check_ssl_names, warn_unverified};

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::read::{MAX_FILE_BYTES, read_regular_text};
use crate::config::values::error_chain;
use crate::config::{
    AdminSettings, DaemonSettings, Diagnostic, Hooks, HttpIngestSettings, Locator, LogSettings,
    Position, Top, closest, from_value, split,
};
use crate::handlers::{self, HandlerSection};
use crate::http::SslSettings;
use crate::http::settings::ConnectionSettings;
use crate::lua::ApiSettings;
use crate::sources::section as sources;
use crate::sources::settings::SourceSection;

/// A validated configuration. Paths in it are absolute (resolved against `dir`).
#[derive(Debug)]
pub struct Config {
    /// The file this was read from.
    pub file: PathBuf,
    /// The directory relative paths were resolved against.
    pub dir: PathBuf,
    /// `[daemon]`: the socket, concurrency and limits.
    pub daemon: DaemonSettings,
    /// `[log]`: the daemon's own log.
    pub log: LogSettings,
    /// `[hooks]`: each phase's chain and the spool's thresholds.
    pub hooks: Hooks,
    /// Handler sections in the order they are written.
    pub handlers: Vec<HandlerSection>,
    /// `[ssl.NAME]` sections, named by handlers' `ssl_config`.
    pub ssl: BTreeMap<String, SslSettings>,
    /// `[api]`: the API client scripts call as `client`.
    pub api: Option<ApiSettings>,
    /// `[admin]`: the admin API, `/health` and `/metrics`; absent, none.
    pub admin: Option<AdminSettings>,
    /// `[sources.NAME]` sections: events the daemon fetches itself.
    pub sources: Vec<SourceSection>,
    /// `[ingest.http]`: events posted over HTTP; absent, none.
    pub http_ingest: Option<HttpIngestSettings>,
    /// The text this was parsed from; hot reload compares the file with it.
    pub text: String,
}

/// The outcome of reading a config: the config if it has no errors, and every
/// problem found (warnings are reported alongside a valid config).
#[derive(Debug)]
pub struct Loaded {
    /// The config, when no problem is an error.
    pub config: Option<Config>,
    /// Every problem found, errors and warnings, in the order found.
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

/// Reads and validates the config file at `file` (a regular file of at most
/// [`MAX_FILE_BYTES`]), and warns about secrets everyone can read
/// (`secrets_at_rest`).
pub fn load(file: &Path) -> Loaded {
    match read_regular_text(file, MAX_FILE_BYTES) {
        Ok(text) => {
            let mut loaded = parse(&text, file);
            if let Some(config) = &loaded.config {
                loaded.diagnostics.extend(secrets_at_rest::warnings(config));
            }
            loaded
        }
        Err(err) => {
            let nowhere = Position {
                file: file.to_owned(),
                line: 0,
                column: 0,
            };
            Loaded::failed(vec![
                nowhere.error(format!("cannot read config: {}", error_chain(&err))),
            ])
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
    if root.get_ref().is_empty() {
        // Nothing at all, or only comments: a truncated file or the wrong
        // one, never a daemon anyone means to run.
        return Loaded::failed(vec![locator.error(
            None,
            "the config is empty (no sections, no keys); a daemon needs at least [hooks] and a handler",
        )]);
    }
    let handler_table = root.get_mut().remove("handlers");
    let api_table = root.get_mut().remove("api");
    let ssl_table = root.get_mut().remove("ssl");
    let admin_table = root.get_mut().remove("admin");
    let source_table = root.get_mut().remove("sources");
    let ingest_table = root.get_mut().remove("ingest");
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
    let top = Top::deserialize_from(root)
        .map_err(|err| diagnostics.push(locator.toml_error(&err, &["handlers"])))
        .ok();
    let handlers = handler_table
        .map(|table| handlers::parse_all(table, &locator, &mut diagnostics))
        .unwrap_or_default();
    let api = api_table.and_then(|table| parse_api(table, &locator, &mut diagnostics));
    let admin = admin_table.and_then(|table| parse_admin(table, &locator, &mut diagnostics));
    let sources = source_table
        .map(|table| sources::parse_all(table, &locator, &mut diagnostics))
        .unwrap_or_default();
    let http_ingest = ingest_table
        .and_then(|table| parse_ingest(table, admin.as_ref(), &locator, &mut diagnostics));
    let ssl = match ssl_table.map(from_value::<BTreeMap<String, SslSettings>>) {
        None => Some(BTreeMap::new()),
        Some(Ok(ssl)) => Some(ssl),
        Some(Err(err)) => {
            diagnostics.push(locator.toml_error(&err, &[]));
            None
        }
    };
    let (Some(top), Some(ssl)) = (top, ssl) else {
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
    if top.daemon.max_event_bytes.0 > top.daemon.max_spool_bytes.0 {
        diagnostics.push(locator.error(
            None,
            "[daemon] max_event_bytes is larger than max_spool_bytes: the largest event could never be spooled",
        ));
    }
    check_ssl_names(
        &ssl,
        &handlers,
        api.as_ref(),
        &sources,
        &locator,
        &mut diagnostics,
    );
    warn_unverified(&ssl, text, &locator, &mut diagnostics);
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
        ssl,
        api,
        admin,
        sources,
        http_ingest,
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
    /// Whether every `[daemon]` setting is at its default (as when the
    /// section is missing).
    pub fn daemon_is_default(&self) -> bool {
        let mut default = DaemonSettings::default();
        default.resolve_paths(&self.dir);
        self.daemon == default
    }

    /// What building an HTTP client needs from the config.
    pub fn http(&self) -> crate::http::Context<'_> {
        crate::http::Context {
            dir: &self.dir,
            ssl: &self.ssl,
        }
    }

    fn resolve_paths(&mut self) {
        let dir = &self.dir;
        self.daemon.resolve_paths(dir);
        if let Some(log_dir) = &mut self.log.dir {
            *log_dir = dir.join(&*log_dir);
        }
        if let Some(http) = &mut self.http_ingest {
            for path in [&mut http.tls_cert, &mut http.tls_key]
                .into_iter()
                .flatten()
            {
                *path = dir.join(&*path);
            }
        }
    }
}

/// Every hook entry must name a declared handler, once per chain; a handler
/// no hook names is probably a mistake, so it is reported as a warning.
fn check_hooks(
    hooks: &Hooks,
    declared: &[String],
    handlers: &[HandlerSection],
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let defined: HashSet<&str> = declared.iter().map(String::as_str).collect();
    let mut used = HashSet::new();
    for (phase, names) in hooks.chains() {
        let mut in_chain = HashSet::new();
        for name in names {
            let name_text = name.get_ref().as_str();
            if !in_chain.insert(name_text) {
                diagnostics.push(locator.error(
                    Some(name.span()),
                    format!("hook {phase} names handler `{name_text}` twice; a handler runs once per event"),
                ));
                continue;
            }
            used.insert(name_text);
            if defined.contains(name_text) {
                continue;
            }
            let mut message =
                format!("hook {phase} names handler `{name_text}`, which is not defined");
            if let Some(hint) = closest(name_text, declared.iter().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            } else {
                message.push_str(&format!("; add a [handlers.{name_text}] section"));
            }
            diagnostics.push(locator.error(Some(name.span()), message));
        }
    }
    for handler in handlers {
        if !used.contains(handler.name.as_str()) {
            diagnostics.push(handler.position.warning(format!(
                "handler `{}` is defined but no hook uses it",
                handler.name
            )));
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
    let (connection, own) = split(table, ConnectionSettings::keys());
    let api = from_value::<ApiSettings>(Spanned::new(span.clone(), DeValue::Table(own))).and_then(
        |mut api| {
            api.connection = from_value(Spanned::new(span, DeValue::Table(connection)))?;
            Ok(api)
        },
    );
    match api {
        Ok(api) => Some(api),
        Err(err) => {
            let mut diagnostic = locator.toml_error(&err, ConnectionSettings::keys());
            diagnostic.message = format!("[api]: {}", diagnostic.message);
            diagnostics.push(diagnostic);
            None
        }
    }
}

#[cfg(test)]
mod tests;
