//! Requests to one server over one NTLM-authenticated connection.
//!
//! NTLM authenticates a connection, not a request: all three legs must travel
//! on one kept-alive connection. [`NtlmSession`] gets that from a client with
//! a single pooled HTTP/1 connection (see `ClientSpec::single_connection`) by
//! sending one request at a time, and restarts the handshake when the server
//! asks again on a new connection.
//!
//! A refused logon counts against the account's lockout policy, so the
//! session makes at most one: once the server refuses the AUTHENTICATE
//! message on the connection that carried its CHALLENGE, every later request
//! fails at once, without contacting the server, until the handler is built
//! again (its settings changed) or an operator replays a dead letter.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpInfo;
use reqwest::{RequestBuilder, Response};
use tokio::sync::MutexGuard;

use super::body::{DRAIN_LIMIT, read_at_most};
use super::error::{SendError, Waiting, within};
use super::ntlm::{Handshake, NtlmCredentials, asks_for_ntlm, header, ntlm_header};

/// How often a handshake is started over when the server answers the last
/// leg with a bare `NTLM` on another connection than the one that carried
/// its CHALLENGE (the pool lost the connection in between).
const RESTARTS: usize = 2;

/// Whether the session may log on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logon {
    Allowed,
    /// The server refused the credentials.
    Refused,
    /// Refused, then allowed one more logon by a replay.
    Replayed,
    /// Refused again after a replay: only new settings allow a logon.
    RefusedAfterReplay,
}

/// Sends requests to one server, authenticating the connection with NTLM.
pub struct NtlmSession {
    credentials: NtlmCredentials,
    host: String,
    /// Held from a request's first leg until its answer's body is read, so
    /// the next request finds the authenticated connection idle in the pool.
    turn: tokio::sync::Mutex<()>,
    logon: Mutex<Logon>,
}

/// An answer, with the session's turn held until it is dropped (after its
/// body is read).
pub struct Answer<'a> {
    pub response: Response,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl Answer<'_> {
    /// An answer that holds no connection of a session.
    pub fn alone(response: Response) -> Answer<'static> {
        Answer {
            response,
            _turn: None,
        }
    }
}

impl std::fmt::Debug for NtlmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NtlmSession({:?}, {})", self.credentials, self.host)
    }
}

impl NtlmSession {
    pub fn new(credentials: NtlmCredentials, host: &str) -> Self {
        NtlmSession {
            credentials,
            host: host.to_owned(),
            turn: tokio::sync::Mutex::new(()),
            logon: Mutex::new(Logon::Allowed),
        }
    }

    /// Allows one more logon after a refusal: an operator replayed a dead
    /// letter (perhaps after fixing the password where the config points).
    /// A logon refused after a replay is not re-armed by further replays.
    pub fn rearm(&self) {
        let mut logon = self.logon.lock().unwrap();
        if *logon == Logon::Refused {
            *logon = Logon::Replayed;
        }
    }

    /// Sends the request `build(authorization)` makes. When the server answers
    /// 401 with `WWW-Authenticate: NTLM`, runs the handshake and returns the
    /// answer to its last leg. Waiting for the turn and the exchange itself
    /// each have `timeout`.
    pub async fn send(
        &self,
        build: impl Fn(Option<String>) -> RequestBuilder,
        timeout: Duration,
    ) -> Result<Answer<'_>, SendError> {
        self.may_log_on()?;
        let turn = within(timeout, Waiting::Turn, async { Ok(self.turn.lock().await) }).await?;
        // Another request may have been refused while this one waited.
        self.may_log_on()?;
        let response = within(timeout, Waiting::Answer, self.exchange(&build)).await?;
        Ok(Answer {
            response,
            _turn: Some(turn),
        })
    }

    fn may_log_on(&self) -> Result<(), SendError> {
        match *self.logon.lock().unwrap() {
            Logon::Allowed | Logon::Replayed => Ok(()),
            Logon::Refused | Logon::RefusedAfterReplay => Err(self.refused()),
        }
    }

    fn refused(&self) -> SendError {
        SendError::Refused {
            user: self.credentials.user().to_owned(),
        }
    }

    async fn exchange(
        &self,
        build: &impl Fn(Option<String>) -> RequestBuilder,
    ) -> Result<Response, SendError> {
        let mut response = build(None).send().await.map_err(SendError::Http)?;
        for _ in 0..=RESTARTS {
            if !asks_for_ntlm(&response) {
                return Ok(response);
            }
            finish(response).await?;
            let (handshake, negotiate) =
                Handshake::start(&self.credentials, &self.host).map_err(SendError::Protocol)?;
            let challenged = build(Some(header(&negotiate)))
                .send()
                .await
                .map_err(SendError::Http)?;
            let challenge = match ntlm_header(&challenged) {
                Some(token) if !token.is_empty() => token,
                _ => return Ok(challenged),
            };
            let challenged_on = connection(&challenged);
            finish(challenged).await?;
            let authenticate = handshake
                .authenticate(&challenge)
                .map_err(SendError::Protocol)?;
            response = build(Some(header(&authenticate)))
                .send()
                .await
                .map_err(SendError::Http)?;
            if !asks_for_ntlm(&response) {
                self.logged_on();
                return Ok(response);
            }
            // On the CHALLENGE's connection, a bare `NTLM` is the server's
            // verdict on the credentials; on another, it never saw them.
            if challenged_on.is_none() || connection(&response) == challenged_on {
                return Err(self.record_refusal());
            }
        }
        Ok(response)
    }

    fn logged_on(&self) {
        *self.logon.lock().unwrap() = Logon::Allowed;
    }

    fn record_refusal(&self) -> SendError {
        let mut logon = self.logon.lock().unwrap();
        *logon = match *logon {
            Logon::Replayed | Logon::RefusedAfterReplay => Logon::RefusedAfterReplay,
            Logon::Allowed | Logon::Refused => Logon::Refused,
        };
        self.refused()
    }
}

/// The local address of the connection that carried `response`.
fn connection(response: &Response) -> Option<SocketAddr> {
    response
        .extensions()
        .get::<HttpInfo>()
        .map(|info| info.local_addr())
}

/// Reads a 401 to its end, or its connection is not reused, then lets the
/// connection go back to the pool before the next leg is sent. Without
/// the pause the next request can find it not yet idle and open a new
/// connection — which has no NTLM context (seen under load against pyspnego).
async fn finish(mut response: Response) -> Result<(), SendError> {
    let body = read_at_most(&mut response, DRAIN_LIMIT)
        .await
        .map_err(SendError::Http)?;
    if !body.complete {
        return Err(SendError::OversizedChallenge);
    }
    drop(response);
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}
