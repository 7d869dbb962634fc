//! `POST /events`: who may post, the body read within its limits, and
//! every event answered once the spool has decided on it.
//!
//! The answer is a JSON array with one socket reply per event, in order,
//! sent only after each accepted event is committed: 200 when every event
//! was accepted (duplicates included), 207 when some were, 503 when none
//! was and some refusal is temporary (`overloaded`, `shutting_down`: send
//! the request again), 400 when every event was refused for what it holds.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::body::{self, BodyError};
use crate::admin::{ApiError, Tokens};
use crate::config::Permission;
use crate::config::values::error_chain;
use crate::ingest::framing::Frame;
use crate::ingest::reply::{Reply, answer};
use crate::spool::Queue;

/// Who may post events.
pub enum Access {
    /// Anyone who can reach the (loopback) address.
    Anonymous,
    /// A bearer token with `events:write`.
    Tokens(Arc<Tokens>),
}

/// What every request works with.
pub struct Shared {
    pub access: Access,
    pub queue: Arc<Queue>,
    /// `[daemon] max_event_bytes`, for each event of a body.
    pub max_event_bytes: usize,
    /// How long the body may take to arrive.
    pub request_timeout: Duration,
    /// Turns to read a body and answer its events (`max_requests`).
    pub turns: Semaphore,
    /// Events not yet handed to the spool when it fires are refused.
    pub shutdown: CancellationToken,
}

pub async fn post_events(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if let Access::Tokens(tokens) = &shared.access
        && let Err(denied) = tokens.authorize(request.headers(), Permission::EventsWrite)
    {
        return denied.into_response();
    }
    // The turns are never closed; were they, the request would be refused.
    let Ok(_turn) = shared.turns.acquire().await else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    };
    let timeout = shared.request_timeout;
    let body = match tokio::time::timeout(timeout, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => body,
        Ok(Err(refused)) => {
            return ApiError::new(refused.status(), refused.body_text()).into_response();
        }
        Err(_) => {
            let message = format!(
                "the body took longer than request_timeout ({})",
                humantime::format_duration(timeout)
            );
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, message).into_response();
        }
    };
    let events = match body::events(&body) {
        Ok(events) => events,
        Err(err) => {
            let status = match err {
                BodyError::TooMany => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return ApiError::new(status, error_chain(&err)).into_response();
        }
    };
    // Handed over in order (one job's events keep theirs), each as soon as
    // the ingest budget has room; answered once all were handed over.
    let mut pending = Vec::with_capacity(events.len());
    for event in events {
        let frame = if event.len() > shared.max_event_bytes {
            Frame::TooLarge
        } else {
            Frame::Line(&event)
        };
        pending.push(
            answer(
                frame,
                &shared.queue,
                shared.max_event_bytes,
                &shared.shutdown,
            )
            .await,
        );
    }
    let mut replies = Vec::with_capacity(pending.len());
    for event in pending {
        replies.push(event.reply().await);
    }
    (status(&replies), Json(replies)).into_response()
}

/// The status a request's replies make (see the module doc).
fn status(replies: &[Reply]) -> StatusCode {
    let accepted = replies.iter().filter(|reply| reply.is_accepted()).count();
    if accepted == replies.len() {
        StatusCode::OK
    } else if accepted > 0 {
        StatusCode::MULTI_STATUS
    } else if replies.iter().any(Reply::is_temporary) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Rejection;

    fn accepted() -> Reply {
        Reply::from_outcome(Ok(crate::spool::Accepted {
            id: "a".to_owned(),
            duplicate: false,
        }))
    }

    fn refused(rejection: Rejection) -> Reply {
        Reply::from_outcome(Err(rejection))
    }

    fn invalid() -> Reply {
        Reply::rejected("parse_error", "expected value".to_owned())
    }

    #[test]
    fn the_status_says_whether_to_look_at_each_event_or_send_again() {
        assert_eq!(status(&[accepted(), accepted()]), StatusCode::OK);
        assert_eq!(status(&[accepted(), invalid()]), StatusCode::MULTI_STATUS);
        assert_eq!(
            status(&[invalid(), refused(Rejection::Overloaded)]),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&[refused(Rejection::ShuttingDown)]),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&[invalid(), invalid()]), StatusCode::BAD_REQUEST);
    }
}
