//! One handler in a chain, with what the chain applies around it: its
//! filters, the timeout of each attempt and the retry policy.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, debug, error, info_span, warn};

use super::{Filter, Mismatch, RetryPolicy};
use crate::config::CommonSettings;
use crate::event::Event;
use crate::failure::{HandlerError, Retry};
use crate::handlers::Handler;
use crate::telemetry::{HandlerMetrics, Outcome, live};

/// One handler with the settings the chain applies around it.
#[derive(Debug)]
pub struct Stage {
    pub name: String,
    filter: Filter,
    retry: RetryPolicy,
    timeout: Duration,
    handler: Handler,
    /// What one event usually costs the handler, in nanoseconds (a moving
    /// average); `u64::MAX` until measured.
    pace: AtomicU64,
    metrics: HandlerMetrics,
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
            pace: AtomicU64::new(u64::MAX),
            metrics: HandlerMetrics::new(name),
        }
    }

    /// Which events the handler takes.
    pub fn filter(&self) -> &Filter {
        &self.filter
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

    /// Whether the handler mostly waits on another machine (see
    /// [`Handler::waits_on_network`]); if not, it takes many events per
    /// call.
    pub(super) fn waits_on_network(&self) -> bool {
        self.handler.waits_on_network()
    }

    /// What one event usually costs the handler, in nanoseconds; `None`
    /// until measured.
    pub(super) fn pace(&self) -> Option<u64> {
        Some(self.pace.load(Ordering::Relaxed)).filter(|&pace| pace != u64::MAX)
    }

    /// Adds one measurement of `events` handled (or skipped) in `took` to
    /// the pace.
    pub(super) fn measure(&self, events: usize, took: Duration) {
        let sample = (took.as_nanos() / events as u128).min(u64::MAX as u128 - 1) as u64;
        let pace = self.pace.load(Ordering::Relaxed);
        let pace = match pace {
            u64::MAX => sample,
            _ => pace - pace / 4 + sample / 4,
        };
        self.pace.store(pace, Ordering::Relaxed);
    }

    /// One attempt for each call's event, in order.
    pub(super) async fn attempt_many(
        &self,
        calls: &[Call<'_>],
        stop: &CancellationToken,
    ) -> Vec<Attempt> {
        let started = Instant::now();
        let mut skipped: Vec<Option<Mismatch>> = Vec::with_capacity(calls.len());
        let mut events = Vec::with_capacity(calls.len());
        for call in calls {
            let mismatch = self.filter.mismatch(call.event);
            match &mismatch {
                Some(mismatch) => call
                    .span
                    .in_scope(|| debug!(handler = %self.name, "skipped: {mismatch}")),
                None => events.push(call.event),
            }
            skipped.push(mismatch);
        }
        if calls.iter().any(|call| call.replayed) {
            // An operator asked for this attempt: a logon the server refused
            // may be tried once more.
            self.handler.replayed();
        }
        let handled = if events.is_empty() {
            Some(Vec::new())
        } else {
            // One event's attempt is in its handler's span, so that what the
            // handler logs names the event and the handler.
            let span = match calls {
                [call] => info_span!(parent: call.span, "handler", name = %self.name),
                _ => Span::none(),
            };
            self.metrics.started(events.len());
            let handled = tokio::select! {
                biased;
                () = stop.cancelled() => None,
                results = caught(self.handler.handle_many(&events, self.timeout), events.len())
                    .instrument(span) => Some(results),
            };
            self.metrics.ended(events.len());
            handled
        };
        let took = started.elapsed();
        // What each event's attempt took, as the metrics and the live
        // stream report it (a group's time, shared out).
        let each = took / events.len().max(1) as u32;
        if handled.is_some() {
            self.measure(calls.len(), took);
        }
        let mut results = handled.map(Vec::into_iter);
        calls
            .iter()
            .zip(skipped)
            .map(|(call, skipped)| match (skipped, results.as_mut()) {
                (Some(mismatch), _) => Attempt::Skipped(mismatch),
                (None, None) => Attempt::Abandoned,
                (None, Some(results)) => {
                    let result = results.next();
                    debug_assert!(
                        result.is_some(),
                        "a handler answered fewer events than given"
                    );
                    self.judge(
                        call,
                        each,
                        result.unwrap_or_else(|| {
                            Err(HandlerError::retryable(
                                "the handler gave no answer for this event",
                            ))
                        }),
                    )
                }
            })
            .collect()
    }

    /// What the outcome of one attempt means: delivered, retried or given up.
    /// `took` is the attempt's share of its group's time.
    fn judge(
        &self,
        call: &Call<'_>,
        took: Duration,
        result: Result<Option<Event>, HandlerError>,
    ) -> Attempt {
        let attempts = call.prior + 1;
        let error = match result {
            Ok(replaced) => {
                debug!(parent: call.span, handler = %self.name, attempts, "delivered");
                self.count(call.event, Outcome::Success, took, None);
                return Attempt::Delivered(replaced);
            }
            Err(error) => error,
        };
        let span = info_span!(parent: call.span, "handler", name = %self.name);
        let _entered = span.enter();
        let Retry::Later { after } = error.retry else {
            error!(attempts, error = %error, "failed permanently; not retried");
            self.count(call.event, Outcome::Failure, took, Some(&error));
            return Attempt::Failed { attempts, error };
        };
        if attempts > self.retry.retries {
            error!(attempts, error = %error, "failed; no retries left");
            self.count(call.event, Outcome::Failure, took, Some(&error));
            return Attempt::Failed { attempts, error };
        }
        let wait = self.retry.delay(attempts, after);
        warn!(attempts, error = %error, retry_in = %humantime::format_duration(wait), "attempt failed");
        self.count(call.event, Outcome::Retry, took, Some(&error));
        Attempt::Retry { attempts, wait }
    }

    /// Counts an attempt's outcome and tells the live stream.
    fn count(&self, event: &Event, outcome: Outcome, took: Duration, error: Option<&HandlerError>) {
        self.metrics.outcome(outcome, took);
        let error = error.map(|error| error as &dyn std::fmt::Display);
        live::outcome(&self.name, event, outcome, took, error);
    }
}

/// One event's attempt at a stage.
pub(super) struct Call<'a> {
    pub event: &'a Event,
    /// Failed attempts before this one.
    pub prior: u32,
    /// An operator replayed a dead letter for it.
    pub replayed: bool,
    /// The event's span.
    pub span: &'a Span,
}

/// The handler's answers; or, if it panicked (a bug in jobhook), the same
/// permanent failure for each of its `events`: they become dead letters,
/// kept for a person to replay, and their places in the lanes are freed.
/// An attempt that unwound through here would hold its events' places
/// until the next start, and a few thousand such would stop the daemon
/// handing out anything.
async fn caught(
    handling: impl Future<Output = Vec<Result<Option<Event>, HandlerError>>>,
    events: usize,
) -> Vec<Result<Option<Event>, HandlerError>> {
    let panic = match AssertUnwindSafe(handling).catch_unwind().await {
        Ok(results) => return results,
        Err(panic) => panic,
    };
    let what = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => message,
        (None, Some(message)) => message.as_str(),
        (None, None) => "no message",
    };
    let error = format!(
        "the handler panicked ({what}): a bug in jobhook, please report it; the event is \
         kept as a dead letter"
    );
    (0..events)
        .map(|_| Err(HandlerError::permanent(error.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::caught;

    #[tokio::test]
    async fn a_handler_that_panics_fails_each_of_its_events_for_good() {
        let results = caught(async { panic!("slot {} gone", 7) }, 2).await;
        assert_eq!(results.len(), 2);
        for result in results {
            let error = result.unwrap_err();
            assert_eq!(error.retry, crate::failure::Retry::Never);
            assert!(
                error
                    .message
                    .starts_with("the handler panicked (slot 7 gone)"),
                "{}",
                error.message
            );
        }
        let answered = caught(async { vec![Ok(None)] }, 1).await;
        assert!(matches!(answered[..], [Ok(None)]));
    }
}
