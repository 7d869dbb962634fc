//! The built-in handlers, behind one closed enum.
//!
//! A handler takes one event and succeeds or fails; a failure says whether
//! trying again may help. Retries, timeouts and filters are the chain's
//! business (`crate::chain`), the same for every handler.

pub mod http;
pub mod lua;
pub mod template;
pub mod text_file;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, HandlerSection, LibrarySettings};
use crate::event::Event;
use crate::lua::Scripting;

/// The libraries a `[handlers.NAME]` section can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    TextFile,
    Http,
    Lua,
}

impl Library {
    const ALL: [(Library, &str); 3] = [
        (Library::TextFile, "TextFileHandler"),
        (Library::Http, "HttpHandler"),
        (Library::Lua, "LuaHandler"),
    ];
    pub const NAMES: [&str; 3] = [Library::ALL[0].1, Library::ALL[1].1, Library::ALL[2].1];

    /// Reads a library name as written in `library = "…"` (any case).
    pub fn parse(name: &str) -> Option<Library> {
        Library::ALL
            .into_iter()
            .find(|(_, known)| known.eq_ignore_ascii_case(name))
            .map(|(library, _)| library)
    }
}

/// Why an attempt failed, and whether another attempt may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    pub retry: Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Trying again cannot help (a 400, a bad template value).
    Never,
    /// Trying again may help; `after` is the wait the other side asked for.
    Later { after: Option<Duration> },
}

impl HandlerError {
    pub fn retryable(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Later { after: None },
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Never,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.retry, Retry::Later { .. })
    }
}

/// A ready-to-run handler.
#[derive(Debug)]
pub enum Handler {
    TextFile(text_file::TextFileHandler),
    Http(Box<http::HttpHandler>),
    Lua(lua::LuaHandler),
}

/// Why a handler could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// A problem with the section's settings.
    Settings(String),
    /// A problem in the script, reported at the script's line.
    Script(PathBuf, mlua::Error),
}

impl Handler {
    /// Builds the handler a section describes: resolves its secrets, builds
    /// its HTTP client, compiles its script; opens no file and no connection.
    pub fn build(
        section: &HandlerSection,
        config: &Config,
        scripting: &Scripting,
    ) -> Result<Handler, BuildError> {
        match &section.library {
            LibrarySettings::TextFile(settings) => {
                text_file::TextFileHandler::new(settings, &config.dir, section.common.timeout.0)
                    .map(Handler::TextFile)
            }
            LibrarySettings::Http(settings) => {
                http::HttpHandler::new(settings, config).map(|h| Handler::Http(Box::new(h)))
            }
            LibrarySettings::Lua(settings) => {
                return lua::LuaHandler::new(
                    &section.name,
                    settings,
                    section.common.timeout.0,
                    scripting,
                )
                .map(Handler::Lua)
                .map_err(|err| {
                    BuildError::Script(scripting.script_path(&settings.lua_script), err)
                });
            }
        }
        .map_err(BuildError::Settings)
    }

    /// Runs one attempt for each event, in order, each bounded by
    /// `timeout`. A handler that changes an event (Lua) returns the event
    /// the rest of the chain sees.
    ///
    /// Scripts and file writes run on threads of their own, and a thread
    /// takes every event it is given at once: one hand-over per call, not
    /// per event (see `crate::handoff`). HTTP exchanges run one after the
    /// other; pass them one event at a time (see [`Handler::waits_on_network`]), so
    /// that each delivery is recorded as soon as it is made. The HTTP
    /// handler applies `timeout` itself, to the exchange only: time spent
    /// waiting for an NTLM connection, or draining a body after the status
    /// decided, is not the attempt's. Its future is boxed: it is about
    /// 2.5 KB, and every attempt of every handler would otherwise be that
    /// size, copied as it is wrapped (select, span).
    pub async fn handle_many(
        &self,
        events: &[&Event],
        timeout: Duration,
    ) -> Vec<Result<Option<Event>, HandlerError>> {
        match self {
            Handler::Http(handler) => {
                let mut results = Vec::with_capacity(events.len());
                for event in events {
                    results.push(
                        Box::pin(handler.handle(event, timeout))
                            .await
                            .map(|()| None),
                    );
                }
                results
            }
            Handler::TextFile(handler) => handler
                .handle_many(events)
                .await
                .into_iter()
                .map(|result| result.map(|()| None))
                .collect(),
            Handler::Lua(handler) => handler.handle_many(events, timeout).await,
        }
    }

    /// Whether an attempt mostly waits on another machine: HTTP, or a
    /// script that has made requests. Its events run as tasks of their own
    /// (bounded by the HTTP handler's concurrency limit, or the script's
    /// states), one per call; the others hand many events at once to a
    /// thread of their own.
    pub fn waits_on_network(&self) -> bool {
        match self {
            Handler::Http(_) => true,
            Handler::Lua(handler) => handler.waits_on_network(),
            Handler::TextFile(_) => false,
        }
    }

    /// An operator replayed a dead letter of this handler: a logon the
    /// server refused may be tried once more.
    pub fn replayed(&self) {
        match self {
            Handler::Http(handler) => handler.replayed(),
            Handler::Lua(handler) => handler.replayed(),
            Handler::TextFile(_) => {}
        }
    }
}
