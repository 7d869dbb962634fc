//! A request's deadline as reqwest's connector sees it, so that a
//! connection still being set up when time is up is reported as such
//! ("connecting to the server"), not as a wait for the answer. reqwest has
//! one `connect_timeout` per client; the deadline here is each request's.

use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::error::Deadline;
use crate::config::values::causes;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

tokio::task_local! {
    /// The deadline of the request being sent on this task.
    static DEADLINE: Deadline;
}

/// Runs `send` with `deadline` visible to the connector.
pub async fn scoped<T>(deadline: Deadline, send: impl Future<Output = T>) -> T {
    DEADLINE.scope(deadline, send).await
}

/// Whether `err` is a connection that was not set up by its deadline.
pub fn ran_out(err: &(dyn std::error::Error + 'static)) -> bool {
    causes(err).any(|cause| cause.is::<NotConnectedInTime>())
}

/// The connector's layer (`ClientBuilder::connector_layer`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectWithin;

impl<S> Layer<S> for ConnectWithin {
    type Service = Connecting<S>;

    fn layer(&self, inner: S) -> Connecting<S> {
        Connecting(inner)
    }
}

/// The connector, giving up at the deadline of the request that asked
/// for the connection (none when it was asked outside [`scoped`]).
#[derive(Debug, Clone)]
pub struct Connecting<S>(S);

#[derive(Debug, thiserror::Error)]
#[error("the connection was not set up by the request's deadline")]
struct NotConnectedInTime;

impl<S, R> Service<R> for Connecting<S>
where
    S: Service<R, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let at = DEADLINE.try_with(|deadline| deadline.at()).ok().flatten();
        let connecting = self.0.call(request);
        Box::pin(async move {
            let Some(at) = at else {
                return connecting.await;
            };
            // The same instant as the request's own timeout, polled inside
            // it: when both are up, this one answers first.
            tokio::time::timeout_at(at, connecting)
                .await
                .unwrap_or_else(|_| Err(Box::new(NotConnectedInTime)))
        })
    }
}
