//! `GET /deadletter`, `POST /deadletter/replay`, `DELETE /deadletter`: the
//! operations of `jobhook deadletter`, on the spool of the running daemon,
//! each one transaction of its own off the runtime.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{Shared, logged};
use crate::config::Permission;
use crate::config::values::{error_chain, parse_duration};
use crate::spool::{self, DeadLetter, DeadLetterId, DeadLetters, ReplayError};

/// Dead letters listed per page unless `limit` says otherwise (and at most).
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
pub struct ListQuery {
    handler: Option<String>,
    /// Last attempt at or after this time (RFC 3339).
    since: Option<jiff::Timestamp>,
    /// Last attempt before this time (RFC 3339).
    until: Option<jiff::Timestamp>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub struct Page {
    /// Dead letters matching the filters, on every page.
    total: usize,
    offset: usize,
    dead_letters: Vec<DeadLetter>,
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    shared
        .tokens
        .authorize(&headers, Permission::DeadletterRead)?;
    let handler = query.handler.clone();
    let letters = with_spool(&shared, move |spool| {
        spool.list(handler.as_deref()).map_err(|err| internal(&err))
    })
    .await?;
    let millis = |at: Option<jiff::Timestamp>| at.map(|at| at.as_millisecond());
    let (since, until) = (millis(query.since), millis(query.until));
    let matching: Vec<DeadLetter> = letters
        .into_iter()
        .filter(|letter| since.is_none_or(|since| letter.last_attempt >= since))
        .filter(|letter| until.is_none_or(|until| letter.last_attempt < until))
        .collect();
    let limit = query.limit.unwrap_or(PAGE).min(MAX_PAGE);
    Ok(Json(Page {
        total: matching.len(),
        offset: query.offset,
        dead_letters: matching
            .into_iter()
            .skip(query.offset)
            .take(limit)
            .collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    ids: Vec<DeadLetterId>,
    /// Every dead letter (of `handler`, if given); `ids` must then be empty.
    #[serde(default)]
    all: bool,
    handler: Option<String>,
}

#[derive(Serialize)]
pub struct Replayed {
    marked: usize,
    already: usize,
}

pub async fn replay(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<ReplayRequest>,
) -> Result<Json<Replayed>, ApiError> {
    let token = shared
        .tokens
        .authorize(&headers, Permission::DeadletterModify)?
        .to_owned();
    if request.all != request.ids.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "give either `ids` (a list of dead-letter ids) or `\"all\": true`",
        ));
    }
    let marked = with_spool(&shared, move |spool| {
        spool
            .request_replay(&request.ids, request.handler.as_deref())
            .map_err(|err| match err {
                ReplayError::Unknown { .. } => {
                    ApiError::new(StatusCode::NOT_FOUND, err.to_string())
                }
                ReplayError::Spool(err) => internal(&err),
            })
    })
    .await;
    let marked = logged(&token, "POST /deadletter/replay", marked, |marked| {
        format!("{} marked", marked.marked)
    })?;
    Ok(Json(Replayed {
        marked: marked.marked,
        already: marked.already,
    }))
}

#[derive(Deserialize)]
pub struct PurgeQuery {
    /// Only those whose last attempt is this long ago or more (`"7d"`);
    /// absent: all of them.
    older_than: Option<String>,
}

#[derive(Serialize)]
pub struct Purged {
    purged: usize,
}

pub async fn purge(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<PurgeQuery>,
) -> Result<Json<Purged>, ApiError> {
    let token = shared
        .tokens
        .authorize(&headers, Permission::DeadletterModify)?
        .to_owned();
    let older_than: Option<Duration> = query
        .older_than
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("older_than: {err}")))?;
    let purged = with_spool(&shared, move |spool| {
        spool.purge(older_than).map_err(|err| internal(&err))
    })
    .await;
    let purged = logged(&token, "DELETE /deadletter", purged, |purged| {
        format!("{purged} purged")
    })?;
    Ok(Json(Purged { purged }))
}

/// Runs `work` on the dead letters, on a thread that may block on the disk.
async fn with_spool<T: Send + 'static>(
    shared: &Shared,
    work: impl FnOnce(&mut dyn DeadLetters) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let (dir, fsync) = (shared.spool_dir.clone(), shared.fsync);
    tokio::task::spawn_blocking(move || {
        let mut spool = spool::open_dead_letters(&dir, fsync).map_err(|err| internal(&err))?;
        work(spool.as_mut())
    })
    .await
    .map_err(|err| internal(&err))?
}

fn internal(err: &dyn std::error::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("spool: {}", error_chain(err)),
    )
}
