//! Why a request to an endpoint got no answer, and whether trying again may help.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::values::causes;

/// What a timed-out request was waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Its turn on the NTLM connection, held by other events' requests:
    /// nothing was sent.
    Turn,
    /// A new connection for NTLM: TCP, the tunnel through the proxy (its
    /// address) and the TLS handshake. Nothing was sent.
    Connection { proxy: Option<String> },
    /// The server's answer (its status and headers).
    Answer,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiting::Turn => f.write_str(
                "waiting for the NTLM connection (other events' requests hold it; nothing was sent)",
            ),
            Waiting::Connection { proxy: None } => f.write_str("connecting to the server"),
            Waiting::Connection { proxy: Some(proxy) } => {
                write!(f, "connecting to the server through proxy {proxy}")
            }
            Waiting::Answer => f.write_str("waiting for the server's answer"),
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request itself failed (connection, TLS): may pass. Described by
    /// `Endpoint::explain`, which knows the TLS section.
    #[error("{0}")]
    Http(reqwest::Error),
    /// NTLM's own connection failed (connection, proxy, TLS): may pass.
    /// Described by `Endpoint::explain`, which knows the TLS section.
    #[error(transparent)]
    Connection(#[from] super::own_connection::ConnectionError),
    /// The NTLM messages could not be made or read: will not pass.
    #[error("{0}")]
    Protocol(String),
    /// The server refused the NTLM credentials. No further logon is tried
    /// with them: a queue of events must not lock the account out.
    #[error(
        "NTLM credentials for {user} were refused; no further logon is tried until \
         the handler's settings change or a dead letter is replayed"
    )]
    Refused { user: String },
    #[error("timed out after {} {waiting}", humantime::format_duration(*.after))]
    TimedOut { waiting: Waiting, after: Duration },
    /// A 401 of the NTLM handshake had a body over the drain limit: its
    /// connection, which the handshake must stay on, was dropped.
    #[error(
        "the server's 401 answer has a body over {} bytes; NTLM cannot continue on its connection",
        super::body::DRAIN_LIMIT
    )]
    OversizedChallenge,
}

impl SendError {
    /// Whether another attempt may succeed. A proxy that wants other
    /// credentials (407) refuses the next attempt too, whether it answered
    /// a request (an `http://` target: the handler sees the status) or a
    /// CONNECT (an `https://` target, or any NTLM one: the error here).
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Http(err) => !proxy_refused(err),
            SendError::Connection(err) => !proxy_refused(err),
            SendError::Protocol(_) | SendError::Refused { .. } => false,
            SendError::TimedOut { .. } | SendError::OversizedChallenge => true,
        }
    }
}

/// Whether a CONNECT was answered 407 (by reqwest's client or NTLM's own
/// connection, which both use hyper-util's tunnel). hyper-util's
/// `TunnelError` is not exported, so its text is matched (`promises_http`
/// checks it still is).
fn proxy_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    causes(err)
        .skip(1)
        .any(|cause| cause.to_string() == "tunnel error: proxy authorization required")
}

/// Runs `request` within `after`; running out is a [`SendError::TimedOut`]
/// waiting for `waiting`.
pub async fn within<T>(
    after: Duration,
    waiting: Waiting,
    request: impl Future<Output = Result<T, SendError>>,
) -> Result<T, SendError> {
    Deadline::after(after).within(waiting, request).await
}

/// When a request's time is up, for its steps (connecting, then the
/// answer) to share: the step running when it is up names the timeout.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// `None`: no deadline (`after` too long to be a point in time, as
    /// `Duration::MAX` is for callers that bound the request themselves).
    at: Option<Instant>,
    after: Duration,
}

impl Deadline {
    /// `after` from now.
    pub fn after(after: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(after),
            after,
        }
    }

    /// When time is up; `None` when never.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// Runs `step` until the deadline; running out is a
    /// [`SendError::TimedOut`] waiting for `waiting`. A step inside another
    /// with the same deadline is polled first, and so is the one named.
    pub async fn within<T>(
        self,
        waiting: Waiting,
        step: impl Future<Output = Result<T, SendError>>,
    ) -> Result<T, SendError> {
        let Some(at) = self.at else {
            return step.await;
        };
        tokio::time::timeout_at(at, step)
            .await
            .unwrap_or(Err(SendError::TimedOut {
                waiting,
                after: self.after,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_too_far_to_be_a_time_is_none_at_all() {
        let step = async { Ok::<_, SendError>(7) };
        let answer = Deadline::after(Duration::MAX).within(Waiting::Answer, step);
        assert_eq!(answer.await.unwrap(), 7);
    }
}
