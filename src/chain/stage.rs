//! One handler in a chain, with what the chain applies around it: its
//! filters, the timeout of each attempt and the retry policy.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info_span, warn};

use super::{Filter, Mismatch, RetryPolicy};
use crate::config::CommonSettings;
use crate::event::Event;
use crate::failure::{HandlerError, Retry};
use crate::handlers::Handler;

/// One handler with the settings the chain applies around it.
#[derive(Debug)]
pub struct Stage {
    pub name: String,
    filter: Filter,
    retry: RetryPolicy,
    timeout: Duration,
    handler: Handler,
}

/// What became of one attempt at one stage.
#[derive(Debug)]
pub(super) enum Attempt {
    Skipped(Mismatch),
    /// Succeeded; the event as the handler left it, if it changed it.
    Delivered(Option<Event>),
    /// Gave up: permanently failed, or no retries left.
    Failed {
        attempts: u32,
        error: HandlerError,
    },
    /// Failed; try again after `wait`.
    Retry {
        attempts: u32,
        wait: Duration,
    },
    /// The daemon stopped before the attempt finished.
    Abandoned,
}

impl Stage {
    pub(super) fn new(name: &str, common: &CommonSettings, handler: Handler) -> Stage {
        Stage {
            name: name.to_owned(),
            filter: Filter::from_settings(common),
            retry: RetryPolicy::from_settings(common),
            timeout: common.timeout.0,
            handler,
        }
    }

    /// Whether the handler only writes local files. The success of the
    /// stages before it is sent to the spool only after it (with the
    /// run's end, if nothing that waits on another process follows), so a
    /// Lua transform followed by file handlers costs the spool no progress
    /// rows and no copy of the changed event; a stage that can wait (HTTP,
    /// a script) is preceded by the records, so a crash while it waits
    /// does not run finished handlers again. Delivery stays at least once.
    pub(super) fn writes_locally(&self) -> bool {
        matches!(self.handler, Handler::TextFile(_))
    }

    /// One attempt, after `prior` failed ones; `replayed` when an operator
    /// replayed a dead letter for it.
    pub(super) async fn attempt(
        &self,
        event: &Event,
        prior: u32,
        replayed: bool,
        stop: &CancellationToken,
    ) -> Attempt {
        if let Some(mismatch) = self.filter.mismatch(event) {
            debug!(handler = %self.name, "skipped: {mismatch}");
            return Attempt::Skipped(mismatch);
        }
        if replayed {
            // An operator asked for this attempt: a logon the server refused
            // may be tried once more.
            self.handler.replayed();
        }
        let span = info_span!("handler", name = %self.name);
        async {
            let attempts = prior + 1;
            let result = tokio::select! {
                result = self.handler.handle(event, self.timeout) => result,
                () = stop.cancelled() => return Attempt::Abandoned,
            };
            let error = match result {
                Ok(replaced) => {
                    debug!(attempts, "delivered");
                    return Attempt::Delivered(replaced);
                }
                Err(error) => error,
            };
            let Retry::Later { after } = error.retry else {
                error!(attempts, error = %error, "failed permanently; not retried");
                return Attempt::Failed { attempts, error };
            };
            if attempts > self.retry.retries {
                error!(attempts, error = %error, "failed; no retries left");
                return Attempt::Failed { attempts, error };
            }
            let wait = self.retry.delay(attempts, after);
            warn!(attempts, error = %error, retry_in = %humantime::format_duration(wait), "attempt failed");
            Attempt::Retry { attempts, wait }
        }
        .instrument(span)
        .await
    }
}
