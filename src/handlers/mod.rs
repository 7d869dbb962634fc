//! The built-in handlers, behind one closed enum.
//!
//! A handler takes one event and succeeds or fails; a failure says whether
//! trying again may help. Retries, timeouts and filters are the chain's
//! business (`crate::chain`), the same for every handler.

pub mod http;
pub mod template;
pub mod text_file;

use std::time::Duration;

use crate::config::{Config, HandlerSection, LibrarySettings};
use crate::event::Event;

/// The libraries a `[handlers.NAME]` section can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    TextFile,
    Http,
}

impl Library {
    const ALL: [(Library, &str); 2] = [
        (Library::TextFile, "TextFileHandler"),
        (Library::Http, "HttpHandler"),
    ];
    pub const NAMES: [&str; 2] = [Library::ALL[0].1, Library::ALL[1].1];

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
}

impl Handler {
    /// Builds the handler a section describes: resolves its secrets and
    /// builds its HTTP client; opens no file and no connection yet.
    pub fn build(section: &HandlerSection, config: &Config) -> Result<Handler, String> {
        match &section.library {
            LibrarySettings::TextFile(settings) => {
                text_file::TextFileHandler::new(settings, &config.dir).map(Handler::TextFile)
            }
            LibrarySettings::Http(settings) => {
                http::HttpHandler::new(settings, config).map(|h| Handler::Http(Box::new(h)))
            }
        }
    }

    /// Runs one attempt for one event.
    pub async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        match self {
            Handler::TextFile(handler) => handler.handle(event),
            Handler::Http(handler) => handler.handle(event).await,
        }
    }
}
