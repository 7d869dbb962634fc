//! The admin API (SPEC §8) on `[admin] listen`: handlers, dead letters,
//! reload, the live event stream, `/health` and `/metrics`.
//!
//! Every route but `/health` and `/metrics` needs a bearer token with the
//! route's permission ([`auth`]); errors are JSON ([`error`]). Requests are
//! bounded in size (`max_body_bytes`) and time (`request_timeout`, except
//! the `/events` stream, which ends when the daemon stops). Each change is
//! logged with the token's name, the route and the result.

mod auth;
mod dead_letters;
mod error;
mod events;
mod handlers;
mod health;
mod metrics;
mod reload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use auth::Tokens;
pub use error::ApiError;
pub use health::Health;

use crate::chain::Pipeline;
use crate::config::AdminSettings;
use crate::reload::{Requester, Running};
use crate::setup::Config;
use crate::spool::{Fsync, Status};

/// How often histograms are folded into what `/metrics` renders (without
/// it, their samples pile up between scrapes).
const UPKEEP: Duration = Duration::from_secs(5);

/// What the routes work with.
pub struct Shared {
    pub tokens: Arc<Tokens>,
    /// The config now running and the pipeline built from it, as the
    /// reloader swaps them in.
    pub running: watch::Receiver<Running>,
    /// Held while a change is written and applied: one at a time.
    pub changes: tokio::sync::Mutex<()>,
    pub reload: Requester,
    pub spool: Arc<Status>,
    pub spool_dir: PathBuf,
    pub fsync: Fsync,
    pub health: Arc<Health>,
    pub metrics: Option<PrometheusHandle>,
    /// Ends the `/events` streams when the daemon stops.
    pub shutdown: CancellationToken,
}

impl Shared {
    /// The running config and pipeline.
    fn running(&self) -> (Arc<Config>, Arc<Pipeline>) {
        let running = self.running.borrow();
        (running.config.clone(), running.pipeline.clone())
    }

    /// A handler as it now runs, if it does.
    fn shown(&self, name: &str) -> Option<crate::registration::HandlerObject> {
        let (config, pipeline) = self.running();
        let live = crate::registration::Live {
            config: &config,
            pipeline: &pipeline,
        };
        live.show(name).ok()
    }
}

/// The bound listening socket, before the daemon is ready to serve.
pub struct Listener {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
}

/// The admin address could not be bound (exit code 2, as for the socket).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on the admin address {address}")]
pub struct BindError {
    address: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds `address` for a server on the current runtime; with the address
/// bound (the port chosen for port 0).
pub(crate) fn bind_tcp(
    address: SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

impl Listener {
    pub fn bind(settings: &AdminSettings) -> Result<Listener, BindError> {
        let address = settings.listen;
        match bind_tcp(address) {
            Ok((listener, address)) => Ok(Listener { listener, address }),
            Err(source) => Err(BindError { address, source }),
        }
    }

    /// Serves until `shared.shutdown` fires.
    pub async fn serve(self, settings: &AdminSettings, shared: Shared) {
        if let Some(handle) = shared.metrics.clone() {
            let stop = shared.shutdown.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(UPKEEP);
                while stop.run_until_cancelled(ticks.tick()).await.is_some() {
                    handle.run_upkeep();
                }
            });
        }
        let shutdown = shared.shutdown.clone();
        let router = router(Arc::new(shared), settings);
        info!(address = %self.address, "admin API listening");
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(err) = served {
            error!(address = %self.address, "the admin API stopped: {err}");
        }
    }
}

fn router(shared: Arc<Shared>, settings: &AdminSettings) -> Router {
    let timeout = settings.request_timeout.0;
    let bounded = Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/reload", post(reload::reload))
        .route("/handlers", get(handlers::list).post(handlers::register))
        .route(
            "/handlers/{name}",
            get(handlers::show).delete(handlers::remove),
        )
        .route("/handlers/{name}/enable", post(handlers::enable))
        .route("/handlers/{name}/disable", post(handlers::disable))
        .route(
            "/deadletter",
            get(dead_letters::list).delete(dead_letters::purge),
        )
        .route("/deadletter/replay", post(dead_letters::replay))
        .layer(middleware::from_fn_with_state(timeout, within));
    Router::new()
        .route("/events", get(events::events))
        .merge(bounded)
        .fallback(|| async { error::ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(
            settings.max_body_bytes.0.try_into().unwrap_or(usize::MAX),
        ))
        .with_state(shared)
}

/// Logs a call that changes something with the token's name, the route
/// and how it ended (`done` says it for a success), and passes the outcome
/// on.
fn logged<T>(
    token: &str,
    route: &str,
    outcome: Result<T, error::ApiError>,
    done: impl FnOnce(&T) -> String,
) -> Result<T, error::ApiError> {
    let result = match &outcome {
        Ok(value) => done(value),
        Err(err) => err.to_string(),
    };
    info!(token, route, result, "admin API");
    outcome
}

/// Answers 503 when a request takes longer than `request_timeout`.
async fn within(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than request_timeout ({})",
                humantime::format_duration(timeout)
            ),
        )
        .into_response(),
    }
}
