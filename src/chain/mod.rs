//! Hook chains: for each phase, the handlers an event runs through in order.
//!
//! A [`Pipeline`] is built complete from a valid config (every handler ready)
//! before it is used, so a bad config never leaves half a pipeline running.
//! Each handler's attempts, timeout and retries are run here, the same way for
//! every library; the handler's error says whether a retry may help.

mod filter;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info_span, warn};

pub use filter::Filter;
pub use retry::RetryPolicy;

use crate::config::{Config, Diagnostic};
use crate::event::{Event, Phase};
use crate::handlers::{Handler, HandlerError, Retry};

/// One handler with the settings the chain applies around it.
#[derive(Debug)]
pub struct Stage {
    pub name: String,
    filter: Filter,
    retry: RetryPolicy,
    timeout: Duration,
    handler: Handler,
}

/// What became of one event in one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Skipped,
    Delivered {
        attempts: u32,
    },
    Failed {
        attempts: u32,
        error: HandlerError,
    },
    /// The daemon stopped before the stage finished.
    Abandoned,
}

/// The chains of every phase, sharing one instance of each handler.
#[derive(Debug)]
pub struct Pipeline {
    on_start: Vec<Arc<Stage>>,
    on_finish: Vec<Arc<Stage>>,
    on_error: Vec<Arc<Stage>>,
}

impl Pipeline {
    /// Builds every handler a hook uses; problems name the handler's section.
    pub fn build(config: &Config) -> Result<Pipeline, Vec<Diagnostic>> {
        let mut stages: Vec<Arc<Stage>> = Vec::new();
        let mut problems = Vec::new();
        for section in &config.handlers {
            match Handler::build(section, config) {
                Ok(handler) => stages.push(Arc::new(Stage {
                    name: section.name.clone(),
                    filter: Filter::from_settings(&section.common),
                    retry: RetryPolicy::from_settings(&section.common),
                    timeout: section.common.timeout.0,
                    handler,
                })),
                Err(message) => problems.push(
                    section
                        .position
                        .error(format!("handler `{}`: {message}", section.name)),
                ),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // Config validation guarantees every hook entry names a defined handler.
        let chain = |phase: Phase| {
            config
                .hooks
                .chain(phase)
                .iter()
                .filter_map(|name| stages.iter().find(|stage| stage.name == *name.get_ref()))
                .cloned()
                .collect()
        };
        Ok(Pipeline {
            on_start: chain(Phase::OnStart),
            on_finish: chain(Phase::OnFinish),
            on_error: chain(Phase::OnError),
        })
    }

    pub fn chain(&self, phase: Phase) -> &[Arc<Stage>] {
        match phase {
            Phase::OnStart => &self.on_start,
            Phase::OnFinish => &self.on_finish,
            Phase::OnError => &self.on_error,
        }
    }

    /// Runs an event through its phase's chain. A handler that fails after its
    /// retries is logged and the chain goes on; `stop` abandons the rest.
    /// Returns what happened at each stage.
    pub async fn run(&self, event: &Event, stop: &CancellationToken) -> Vec<Delivery> {
        let span = info_span!(
            "event",
            id = event.id(),
            job_id = event.str_field("JobId"),
            job_type = event.str_field("JobType"),
            phase = %event.phase(),
        );
        async {
            let mut outcomes = Vec::new();
            for stage in self.chain(event.phase()) {
                let outcome = stage.deliver(event, stop).await;
                let abandoned = outcome == Delivery::Abandoned;
                outcomes.push(outcome);
                if abandoned {
                    break;
                }
            }
            outcomes
        }
        .instrument(span)
        .await
    }
}

impl Stage {
    async fn deliver(&self, event: &Event, stop: &CancellationToken) -> Delivery {
        if !self.filter.matches(event) {
            debug!(handler = %self.name, "skipped: filters do not match");
            return Delivery::Skipped;
        }
        let span = info_span!("handler", name = %self.name);
        async {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let attempt = tokio::time::timeout(self.timeout, self.handler.handle(event));
                let result = tokio::select! {
                    result = attempt => result,
                    () = stop.cancelled() => return Delivery::Abandoned,
                };
                let error = match result {
                    Ok(Ok(())) => {
                        debug!(attempts, "delivered");
                        return Delivery::Delivered { attempts };
                    }
                    Ok(Err(error)) => error,
                    Err(_) => HandlerError::retryable(format!(
                        "timed out after {}",
                        humantime::format_duration(self.timeout)
                    )),
                };
                let Retry::Later { after } = error.retry else {
                    error!(attempts, error = %error, "failed permanently; not retried");
                    return Delivery::Failed { attempts, error };
                };
                if attempts > self.retry.retries {
                    error!(attempts, error = %error, "failed; no retries left");
                    return Delivery::Failed { attempts, error };
                }
                let wait = self.retry.delay(attempts, after);
                warn!(attempts, error = %error, retry_in = %humantime::format_duration(wait), "attempt failed");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return Delivery::Abandoned,
                }
            }
        }
        .instrument(span)
        .await
    }
}
