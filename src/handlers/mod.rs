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

pub use library::{BuildError, Context, LibrarySettings};
pub use section::{HandlerSection, parse_all};

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
    /// Runs one attempt for one event, bounded by `timeout`. A handler that
    /// changes the event (Lua) returns the event the rest of the chain sees.
    ///
    /// The HTTP handler applies `timeout` itself, to the exchange only: time
    /// spent waiting for an NTLM connection, or draining a body after the
    /// status decided, is not the attempt's. Its future is boxed: it is
    /// about 2.5 KB, and every attempt of every handler would otherwise be
    /// that size, copied as it is wrapped (timeout, select, span).
    pub async fn handle(
        &self,
        event: &Event,
        timeout: Duration,
    ) -> Result<Option<Event>, HandlerError> {
        let bounded = match self {
            Handler::Http(handler) => {
                return Box::pin(handler.handle(event, timeout))
                    .await
                    .map(|()| None);
            }
            Handler::TextFile(handler) => {
                tokio::time::timeout(timeout, async {
                    handler.handle(event).await.map(|()| None)
                })
                .await
            }
            Handler::Lua(handler) => tokio::time::timeout(timeout, handler.handle(event)).await,
        };
        bounded.unwrap_or_else(|_| {
            Err(HandlerError::retryable(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            )))
        })
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
