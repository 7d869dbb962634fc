//! `GET /events`: the live stream as NDJSON, one object per line (see
//! [`crate::telemetry::live`]). A listener that falls behind gets a
//! `{"type":"missed","missed":N}` line where entries were dropped; the
//! event path never waits for it. The stream ends when the daemon stops.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Shared;
use super::error::ApiError;
use crate::config::Permission;
use crate::telemetry::live::{self, Live, Missed};

#[derive(Deserialize)]
pub struct Filter {
    /// Only this handler's outcomes (accepted events are always shown).
    handler: Option<String>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "missed")]
struct MissedLine {
    missed: u64,
}

pub async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Result<Response, ApiError> {
    shared.tokens.authorize(&headers, Permission::EventsRead)?;
    let listener = live::listen();
    let stop = shared.shutdown.clone();
    let lines = futures_util::stream::unfold(
        (listener, stop, filter.handler),
        |(mut listener, stop, handler)| async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return None,
                    next = listener.next() => next,
                };
                let line = match next {
                    Ok(entry) if shown(&entry, handler.as_deref()) => serde_json::to_vec(&entry),
                    Ok(_) => continue,
                    Err(Missed { missed }) => serde_json::to_vec(&MissedLine { missed }),
                };
                let mut line = line.expect("a live entry serialises");
                line.push(b'\n');
                return Some((Ok::<_, std::io::Error>(line), (listener, stop, handler)));
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

fn shown(entry: &Live, handler: Option<&str>) -> bool {
    match (entry.handler(), handler) {
        (Some(this), Some(wanted)) => this == wanted,
        _ => true,
    }
}
