//! HTTP ingest (`[ingest.http]`): `POST /events` over HTTP or HTTPS, into
//! the same spool as the socket, answered with the socket's replies.
//!
//! Bounded like the socket: at most `max_connections` connections are
//! open (more wait in the backlog), at most `max_connections_per_address`
//! of them from one client address (more are answered 429 at once), and
//! `max_requests` requests are read and answered at once, each after its
//! token is checked; the TLS handshake, a
//! request's headers (an idle kept-alive connection too), its body and the
//! client's taking of the answer must each make progress within
//! `request_timeout`; a body may hold `max_body_bytes` and
//! [`body::MAX_EVENTS`] events, each of `max_event_bytes`. When the daemon
//! stops, requests under way are answered (events not yet handed to the
//! spool get `shutting_down`), and then the connections close.

mod body;
mod per_address;
mod post;
mod stalled;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::post;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use per_address::PerAddress;
pub use post::{Access, Shared};
use stalled::StalledWrites;
pub use tls::server_config;

use crate::admin::{ApiError, bind_tcp};
use crate::config::HttpIngestSettings;

/// After the daemon begins to stop, how long a connection has to take its
/// last answer.
const REPLY_GRACE: Duration = Duration::from_secs(5);

/// The bound address, before the daemon is ready to serve.
pub struct Listener {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
}

/// The address could not be bound (exit code 2, as for the socket).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on the [ingest.http] address {address}")]
pub struct BindError {
    address: SocketAddr,
    #[source]
    source: std::io::Error,
}

impl Listener {
    /// Binds `listen`; with `tls`, connections speak HTTPS.
    pub fn bind(
        settings: &HttpIngestSettings,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Listener, BindError> {
        let address = settings.listen;
        match bind_tcp(address) {
            Ok((listener, address)) => Ok(Listener {
                listener,
                address,
                tls: tls.map(TlsAcceptor::from),
            }),
            Err(source) => Err(BindError { address, source }),
        }
    }

    /// Serves until `shared.shutdown` fires, then until the requests under
    /// way are answered.
    pub async fn serve(self, settings: &HttpIngestSettings, shared: Shared) {
        let shutdown = shared.shutdown.clone();
        let timeout = shared.request_timeout;
        let router = router(Arc::new(shared), settings);
        let per_address = PerAddress::new(settings.max_connections_per_address);
        let slots = Arc::new(Semaphore::new(settings.max_connections));
        let connections = TaskTracker::new();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        info!(address = %self.address, scheme, "HTTP ingest listening");
        loop {
            let slot = tokio::select! {
                () = shutdown.cancelled() => break,
                slot = slots.clone().acquire_owned() => slot.expect("the slots are never closed"),
            };
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        warn!(error = %err, "[ingest.http] accept failed");
                        tokio::time::sleep(super::ACCEPT_PAUSE).await;
                        continue;
                    }
                },
            };
            let address = peer.ip().to_canonical();
            let Some(hold) = per_address.hold(address) else {
                // Refused at once, without a slot: one host's connections
                // past its bound never keep other hosts' out.
                drop(slot);
                per_address.refuse(stream, address, self.tls.clone(), &connections);
                continue;
            };
            let (tls, router, shutdown) = (self.tls.clone(), router.clone(), shutdown.clone());
            connections.spawn(async move {
                connection(stream, tls, router, timeout, shutdown).await;
                drop((hold, slot));
            });
        }
        connections.close();
        connections.wait().await;
    }
}

fn router(shared: Arc<Shared>, settings: &HttpIngestSettings) -> Router {
    let max_body = settings.max_body_bytes.0.try_into().unwrap_or(usize::MAX);
    Router::new()
        .route("/events", post(post::post_events))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route; POST /events") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

/// One connection: the TLS handshake, if any, within `timeout`, then
/// HTTP/1.1; a client that takes nothing of an answer for `timeout` is cut
/// off.
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    router: Router,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let stream = StalledWrites::new(stream, timeout);
    let Some(acceptor) = tls else {
        return http(stream, router, timeout, shutdown).await;
    };
    let handshake = tokio::time::timeout(timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        () = shutdown.cancelled() => return,
        handshake = handshake => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return debug!("[ingest.http] TLS handshake failed: {err}"),
            Err(_) => return debug!("[ingest.http] TLS handshake took longer than request_timeout"),
        },
    };
    http(stream, router, timeout, shutdown).await;
}

async fn http<I>(io: I, router: Router, timeout: Duration, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    let served = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            match tokio::time::timeout(REPLY_GRACE, served).await {
                Ok(ended) => ended,
                Err(_) => return debug!("[ingest.http] dropping a connection that does not take its answer"),
            }
        }
    };
    if let Err(err) = ended {
        debug!("[ingest.http] connection ended: {err}");
    }
}
