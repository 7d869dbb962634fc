//! The metrics of SPEC §8, by name, and the handles the event path counts
//! with. Names and help texts live here only; the admin API renders them.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const EVENTS_ACCEPTED: &str = "jobhook_events_accepted_total";
pub const EVENTS_REJECTED: &str = "jobhook_events_rejected_total";
pub const EVENTS_DUPLICATE: &str = "jobhook_events_duplicate_total";
pub const HANDLER_ATTEMPTS: &str = "jobhook_handler_attempts_total";
pub const HANDLER_DURATION: &str = "jobhook_handler_duration_seconds";
pub const DEAD_LETTERS: &str = "jobhook_dead_letters_total";
pub const SPOOL_PENDING_EVENTS: &str = "jobhook_spool_pending_events";
pub const SPOOL_BYTES: &str = "jobhook_spool_bytes";
pub const HANDLER_IN_FLIGHT: &str = "jobhook_handler_in_flight";
pub const CONFIG_RELOADS: &str = "jobhook_config_reloads_total";
pub const CONNECTIONS: &str = "jobhook_connections";

/// Seconds an attempt took: from a local file write to a slow API.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process; later calls return
/// the same handle), so that handles made from now on count. `None` when
/// another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HANDLER_DURATION.to_owned()),
                    DURATION_BUCKETS,
                )
                .expect("the bucket list is not empty");
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        EVENTS_ACCEPTED,
        "Events accepted and committed to the spool (duplicates included)."
    );
    describe_counter!(EVENTS_REJECTED, "Event lines refused, by reply code.");
    describe_counter!(
        EVENTS_DUPLICATE,
        "Events answered as duplicates of an Id accepted before."
    );
    describe_counter!(
        HANDLER_ATTEMPTS,
        "Handler attempts, by handler and outcome (success, failure, retry)."
    );
    describe_histogram!(
        HANDLER_DURATION,
        metrics::Unit::Seconds,
        "How long handler attempts took."
    );
    describe_counter!(
        DEAD_LETTERS,
        "Events a handler gave up on, kept as dead letters."
    );
    describe_gauge!(
        SPOOL_PENDING_EVENTS,
        "Events in the spool whose chain has not finished."
    );
    describe_gauge!(
        SPOOL_BYTES,
        metrics::Unit::Bytes,
        "Bytes of the pending events (bounded by max_spool_bytes)."
    );
    describe_gauge!(HANDLER_IN_FLIGHT, "Attempts running now, by handler.");
    describe_counter!(
        CONFIG_RELOADS,
        "Config reloads, by result (success, failure)."
    );
    describe_gauge!(CONNECTIONS, "Clients connected to the ingest socket.");
}

/// What the spool counts as it commits new events (whichever way they came).
#[derive(Debug, Clone)]
pub struct AcceptedMetrics {
    accepted: Counter,
    duplicate: Counter,
}

impl AcceptedMetrics {
    pub fn register() -> AcceptedMetrics {
        AcceptedMetrics {
            accepted: counter!(EVENTS_ACCEPTED),
            duplicate: counter!(EVENTS_DUPLICATE),
        }
    }

    pub fn accepted(&self, duplicate: bool) {
        self.accepted.increment(1);
        if duplicate {
            self.duplicate.increment(1);
        }
    }
}

/// A refused event, by its reply code (rare: the handle is looked up).
pub fn rejected(code: &'static str) {
    counter!(EVENTS_REJECTED, "code" => code).increment(1);
}

/// Clients connected to the ingest socket: one more while the guard lives.
pub struct Connected(Gauge);

impl Connected {
    pub fn count() -> Connected {
        let gauge = gauge!(CONNECTIONS);
        gauge.increment(1.0);
        Connected(gauge)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What one handler's attempts count.
#[derive(Debug, Clone)]
pub struct HandlerMetrics {
    success: Counter,
    failure: Counter,
    retry: Counter,
    duration: Histogram,
    dead_letters: Counter,
    in_flight: Gauge,
}

/// How one attempt ended, as the metrics and the live stream name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Given up: the event became a dead letter.
    Failure,
    Retry,
}

impl HandlerMetrics {
    pub fn new(handler: &str) -> HandlerMetrics {
        let attempts = |outcome: &'static str| counter!(HANDLER_ATTEMPTS, "handler" => handler.to_owned(), "outcome" => outcome);
        HandlerMetrics {
            success: attempts("success"),
            failure: attempts("failure"),
            retry: attempts("retry"),
            duration: histogram!(HANDLER_DURATION, "handler" => handler.to_owned()),
            dead_letters: counter!(DEAD_LETTERS, "handler" => handler.to_owned()),
            in_flight: gauge!(HANDLER_IN_FLIGHT, "handler" => handler.to_owned()),
        }
    }

    /// `events` attempts begin.
    pub fn started(&self, events: usize) {
        self.in_flight.increment(events as f64);
    }

    /// `events` attempts that began together ended (or were abandoned).
    pub fn ended(&self, events: usize) {
        self.in_flight.decrement(events as f64);
    }

    /// One attempt ended with `outcome` after `took` (its share of its
    /// group's time).
    pub fn outcome(&self, outcome: Outcome, took: Duration) {
        self.duration.record(took.as_secs_f64());
        match outcome {
            Outcome::Success => self.success.increment(1),
            Outcome::Retry => self.retry.increment(1),
            Outcome::Failure => {
                self.failure.increment(1);
                self.dead_letters.increment(1);
            }
        }
    }
}

/// A reload ended: counted by its result.
pub fn reloaded(success: bool) {
    let result = if success { "success" } else { "failure" };
    counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// Sets the spool's gauges (read from its status when scraped).
pub fn spool_levels(pending_events: u64, bytes: u64) {
    gauge!(SPOOL_PENDING_EVENTS).set(pending_events as f64);
    gauge!(SPOOL_BYTES).set(bytes as f64);
}
