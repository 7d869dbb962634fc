//! The built-in handlers, behind one closed enum.
//!
//! A handler takes one event and succeeds or fails; a failure says whether
//! trying again may help. Retries, timeouts and filters are the chain's
//! business (`crate::chain`), the same for every handler.

pub mod http;
mod library;
pub mod lua;
mod section;
pub mod template;
pub mod text_file;

use std::time::Duration;

pub use library::{BuildError, Context, Library, LibrarySettings, SettingsTypes};
pub use section::{HandlerSection, LIBRARY_KEYS, parse_all};

use crate::event::Event;
use crate::failure::HandlerError;

/// A ready-to-run handler.
#[derive(Debug)]
pub enum Handler {
    TextFile(text_file::TextFileHandler),
    Http(Box<http::HttpHandler>),
    Lua(lua::LuaHandler),
}

impl Handler {
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
                .handle_many(events, timeout)
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
