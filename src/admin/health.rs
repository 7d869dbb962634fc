//! `GET /health`: whether the daemon serves events now, from what the
//! lifecycle told it (it is an [`Observer`]) and what the spool says.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use parking_lot::Mutex;
use serde::Serialize;

use super::Shared;
use crate::lifecycle::{Observer, Reloaded};

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

/// What the lifecycle said last.
#[derive(Default)]
pub struct Health {
    phase: AtomicU8,
    last_reload: Mutex<Option<LastReload>>,
}

/// How the last reload ended.
#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    /// `success` or `failure`.
    result: &'static str,
    /// When it ended (RFC 3339).
    at: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

impl Observer for Health {
    fn ready(&self) {
        self.phase.store(READY, Ordering::Relaxed);
    }

    fn reloaded(&self, outcome: &Reloaded) {
        let (result, problems) = match outcome {
            Reloaded::Applied => ("success", Vec::new()),
            Reloaded::Refused { problems } => ("failure", problems.clone()),
            Reloaded::Abandoned => return,
        };
        *self.last_reload.lock() = Some(LastReload {
            result,
            at: jiff::Timestamp::now().to_string(),
            problems,
        });
    }

    fn stopping(&self, _within: Duration) {
        self.phase.store(STOPPING, Ordering::Relaxed);
    }
}

#[derive(Serialize)]
pub struct Report {
    /// `ok`, `starting`, `stopping` or `spool_unwritable`.
    status: &'static str,
    pipeline_loaded: bool,
    spool_writable: bool,
    pending_events: u64,
    spool_bytes: u64,
    last_reload: Option<LastReload>,
}

/// 200 while events are served; 503 while starting or stopping, or when
/// the spool cannot be written.
pub async fn health(State(shared): State<std::sync::Arc<Shared>>) -> (StatusCode, Json<Report>) {
    let phase = shared.health.phase.load(Ordering::Relaxed);
    let writable = shared.spool.writable();
    let status = match phase {
        STARTING => "starting",
        STOPPING => "stopping",
        _ if !writable => "spool_unwritable",
        _ => "ok",
    };
    let report = Report {
        status,
        pipeline_loaded: phase != STARTING,
        spool_writable: writable,
        pending_events: shared.spool.pending_events(),
        spool_bytes: shared.spool.pending_bytes(),
        last_reload: shared.health.last_reload.lock().clone(),
    };
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report))
}
