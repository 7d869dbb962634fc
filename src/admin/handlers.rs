//! `GET /handlers`, `GET /handlers/{name}`, `POST /handlers`,
//! `POST /handlers/{name}/enable|disable`, `DELETE /handlers/{name}`: the
//! running handlers, and changes written into `handlers.toml`
//! ([`crate::registration`]) then made live by the reloader. A change is
//! answered once the reload that applies it ended.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::{Shared, logged};
use crate::config::Permission;
use crate::lifecycle::Reloaded;
use crate::registration::{HandlerObject, Live, Registration, RegistrationError};

/// A change that was written and applied.
#[derive(Serialize)]
pub struct Changed {
    message: String,
    /// The handler as it now runs (absent once removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    handler: Option<HandlerObject>,
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Vec<HandlerObject>>, ApiError> {
    shared
        .tokens
        .authorize(&headers, Permission::HandlersRead)?;
    let (config, pipeline) = shared.running();
    Ok(Json(
        Live {
            config: &config,
            pipeline: &pipeline,
        }
        .list(),
    ))
}

pub async fn show(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<HandlerObject>, ApiError> {
    shared
        .tokens
        .authorize(&headers, Permission::HandlersRead)?;
    let (config, pipeline) = shared.running();
    let live = Live {
        config: &config,
        pipeline: &pipeline,
    };
    live.show(&name).map(Json).map_err(refusal)
}

pub async fn register(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Changed>), ApiError> {
    let token = shared
        .tokens
        .authorize(&headers, Permission::HandlersModify)?
        .to_owned();
    let outcome = async {
        let registration = Registration::from_json(body).map_err(refusal)?;
        let name = registration.name.clone();
        change(&shared, &name, move |live| live.register(&registration)).await?;
        Ok(Changed {
            message: format!("handler `{name}` registered"),
            handler: shared.shown(&name),
        })
    }
    .await;
    logged(&token, "POST /handlers", outcome, done)
        .map(|changed| (StatusCode::CREATED, Json(changed)))
}

pub async fn enable(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    set_enabled(shared, headers, name, true).await
}

pub async fn disable(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    set_enabled(shared, headers, name, false).await
}

async fn set_enabled(
    shared: Arc<Shared>,
    headers: HeaderMap,
    name: String,
    enabled: bool,
) -> Result<Json<Changed>, ApiError> {
    let token = shared
        .tokens
        .authorize(&headers, Permission::HandlersModify)?
        .to_owned();
    let verb = if enabled { "enable" } else { "disable" };
    let outcome = async {
        let target = name.clone();
        change(&shared, &name, move |live| {
            live.set_enabled(&target, enabled)
        })
        .await?;
        Ok(Changed {
            message: format!("handler `{name}` {verb}d"),
            handler: shared.shown(&name),
        })
    }
    .await;
    logged(
        &token,
        &format!("POST /handlers/{name}/{verb}"),
        outcome,
        done,
    )
    .map(Json)
}

pub async fn remove(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    let token = shared
        .tokens
        .authorize(&headers, Permission::HandlersModify)?
        .to_owned();
    let outcome = async {
        let target = name.clone();
        change(&shared, &name, move |live| live.remove(&target)).await?;
        Ok(Changed {
            message: format!("handler `{name}` removed"),
            handler: None,
        })
    }
    .await;
    logged(&token, &format!("DELETE /handlers/{name}"), outcome, done).map(Json)
}

/// Makes the candidate text from the running config with `edit`, validates
/// and writes it (off the runtime: building handlers blocks), then reloads
/// and waits for the outcome. One change at a time.
async fn change(
    shared: &Arc<Shared>,
    name: &str,
    edit: impl FnOnce(&Live<'_>) -> Result<String, RegistrationError> + Send + 'static,
) -> Result<(), ApiError> {
    let _one_at_a_time = shared.changes.lock().await;
    let (config, pipeline) = shared.running();
    tokio::task::spawn_blocking(move || {
        let live = Live {
            config: &config,
            pipeline: &pipeline,
        };
        let candidate = edit(&live)?;
        live.commit(&candidate)
    })
    .await
    .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?
    .map_err(refusal)?;
    match shared.reload.reload().await.map(|report| report.outcome) {
        Some(Reloaded::Applied) => Ok(()),
        Some(Reloaded::Refused { problems }) => Err(ApiError::refused(
            format!(
                "handlers.toml was written, but the reload did not apply the change to `{name}`"
            ),
            problems,
        )),
        Some(Reloaded::Abandoned) | None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "handlers.toml was written; the daemon is stopping and applies it at its next start",
        )),
    }
}

fn done(changed: &Changed) -> String {
    changed.message.clone()
}

fn refusal(err: RegistrationError) -> ApiError {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match err {
        RegistrationError::Invalid { problems } => ApiError::refused(
            "the change would make the config invalid; nothing was written",
            problems,
        ),
        err => ApiError::new(status, crate::config::values::error_chain(&err)),
    }
}
