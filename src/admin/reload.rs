//! `POST /reload`: the same reload as a file change or SIGHUP, answered
//! once it ended: 200 with a summary, or 422 with every problem.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::error::ApiError;
use super::{Shared, logged};
use crate::config::Permission;
use crate::lifecycle::Reloaded;
use crate::reload::Report;

#[derive(Serialize)]
pub struct Applied {
    result: &'static str,
    handlers: usize,
    warnings: Vec<String>,
}

pub async fn reload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Applied>, ApiError> {
    let token = shared
        .tokens
        .authorize(&headers, Permission::Reload)?
        .to_owned();
    let answer = applied(shared.reload.reload().await);
    logged(&token, "POST /reload", answer, |applied| {
        format!("applied, {} handlers", applied.handlers)
    })
    .map(Json)
}

/// What a reload's report means to an API client.
pub fn applied(report: Option<Report>) -> Result<Applied, ApiError> {
    let stopping = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    let report = report.ok_or_else(stopping)?;
    match report.outcome {
        Reloaded::Applied => Ok(Applied {
            result: "applied",
            handlers: report.handlers,
            warnings: report.warnings,
        }),
        Reloaded::Refused { problems } => Err(ApiError::refused(
            "the config was not applied; the previous config keeps running",
            problems,
        )),
        Reloaded::Abandoned => Err(stopping()),
    }
}
