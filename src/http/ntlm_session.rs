//! Requests to one server over one NTLM-authenticated connection.
//!
//! NTLM authenticates a connection, not a request: all three legs must travel
//! on one kept-alive connection. [`NtlmSession`] owns that connection (an
//! `own_connection::Line`) and sends one request at a time on it. The last
//! leg, AUTHENTICATE, goes on the connection that carried the CHALLENGE or
//! not at all: when the server closed that one in between, the handshake
//! starts over from NEGOTIATE on a new one, and AUTHENTICATE never reaches
//! a connection (or, behind a proxy, a server context) that did not ask
//! for it.
//!
//! A refused logon counts against the account's lockout policy, so the
//! session makes at most one: once the server refuses the AUTHENTICATE
//! message on the connection that carried its CHALLENGE, every later request
//! fails at once, without contacting the server, until the handler is built
//! again (its settings changed) or an operator replays a dead letter.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{RequestBuilder, Response};
use tokio::sync::MutexGuard;

use super::body::{DRAIN_LIMIT, read_at_most};
use super::error::{Deadline, SendError, Waiting, within};
use super::ntlm::{Handshake, NtlmCredentials, asks_for_ntlm, header, ntlm_header};
use super::own_connection::{ConnectionError, Dialer, Line};

/// How often a handshake is started over when the connection that carried
/// its CHALLENGE closed before the AUTHENTICATE could go on it.
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
    dialer: Dialer,
    /// The connection, held from a request's first leg until its answer's
    /// body is read: the next request finds it idle, still authenticated.
    turn: tokio::sync::Mutex<Line>,
    logon: Mutex<Logon>,
}

/// An answer, with the session's turn held until it is dropped (after its
/// body is read).
pub struct Answer<'a> {
    pub response: Response,
    _turn: Option<MutexGuard<'a, Line>>,
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
    /// A session with `host` (NTLM binds the credentials to its name),
    /// reaching it through `dialer`.
    pub fn new(credentials: NtlmCredentials, host: &str, dialer: Dialer) -> Self {
        NtlmSession {
            credentials,
            host: host.to_owned(),
            dialer,
            turn: tokio::sync::Mutex::new(Line::default()),
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
        let mut turn = within(timeout, Waiting::Turn, async { Ok(self.turn.lock().await) }).await?;
        // Another request may have been refused while this one waited.
        self.may_log_on()?;
        let deadline = Deadline::after(timeout);
        let exchange = self.exchange(&mut turn, &build, deadline);
        let response = deadline.within(Waiting::Answer, exchange).await;
        if response.is_err() {
            // Perhaps cut off mid-leg: the next request starts afresh.
            *turn = Line::default();
        }
        Ok(Answer {
            response: response?,
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
        line: &mut Line,
        build: &impl Fn(Option<String>) -> RequestBuilder,
        deadline: Deadline,
    ) -> Result<Response, SendError> {
        let request = |authorization| build(authorization).build().map_err(SendError::Http);
        let (response, _) = line.send(&self.dialer, request(None)?, deadline).await?;
        if !asks_for_ntlm(&response) {
            return Ok(response);
        }
        finish(response).await?;
        let mut restarts = 0;
        loop {
            let (handshake, negotiate) =
                Handshake::start(&self.credentials, &self.host).map_err(SendError::Protocol)?;
            let negotiate = request(Some(header(&negotiate)))?;
            let (challenged, challenged_on) = line.send(&self.dialer, negotiate, deadline).await?;
            let challenge = match ntlm_header(&challenged) {
                Some(token) if !token.is_empty() => token,
                _ => return Ok(challenged),
            };
            finish(challenged).await?;
            let authenticate = handshake
                .authenticate(&challenge)
                .map_err(SendError::Protocol)?;
            let authenticate = request(Some(header(&authenticate)))?;
            match line.send_on(challenged_on, authenticate).await {
                Ok(response) if asks_for_ntlm(&response) => {
                    // On the CHALLENGE's connection, a bare `NTLM` is the
                    // server's verdict on the credentials.
                    return Err(self.record_refusal());
                }
                Ok(response) => {
                    self.logged_on();
                    return Ok(response);
                }
                Err(SendError::Connection(ConnectionError::Gone)) if restarts < RESTARTS => {
                    restarts += 1;
                }
                Err(err) => return Err(err),
            }
        }
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

/// Reads a 401 to its end, so that its connection takes the next leg (an
/// unread body would close it).
async fn finish(mut response: Response) -> Result<(), SendError> {
    let body = read_at_most(&mut response, DRAIN_LIMIT)
        .await
        .map_err(SendError::Http)?;
    if !body.complete {
        return Err(SendError::OversizedChallenge);
    }
    Ok(())
}
