//! `HttpHandler`: sends each event as JSON to an HTTP endpoint.
//!
//! Success is a 2xx answer. Connection errors, timeouts, 408, 429 and 5xx may
//! pass and are retried (a `Retry-After` answer sets the wait); every other
//! status is a permanent failure. `retry_on` replaces the retried statuses.

pub mod concurrency;
mod retry_after;
pub mod settings;
mod setup_error;
mod signing;
pub(crate) mod target;

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use tracing::debug;

use self::concurrency::{Limiter, Limits, Signal};
use self::retry_after::retry_after;
use self::settings::Settings;
pub use self::setup_error::SetupError;
use self::signing::Signer;
use self::target::Target;
use crate::event::Event;
use crate::failure::{HandlerError, Retry};
use crate::http::body::{DRAIN_LIMIT, drain};
use crate::http::endpoint::Endpoint;
use crate::http::error::SendError;
use crate::http::{self, header_map, redact};

/// Bytes of a failed response's body quoted in the error.
const BODY_SNIPPET: usize = 512;

/// Why a delivery failed, as far as the concurrency limit is concerned.
enum Failure {
    /// 429, 503, or no answer at all (refused, reset, timed out).
    Overloaded(HandlerError),
    /// Any other answer.
    Answered(HandlerError),
    /// Nothing sent, or a failure that says nothing of the endpoint's load.
    Other(HandlerError),
}

impl Failure {
    fn into_error(self) -> HandlerError {
        match self {
            Failure::Overloaded(error) | Failure::Answered(error) | Failure::Other(error) => error,
        }
    }
}

#[derive(Debug)]
pub struct HttpHandler {
    endpoint: Endpoint,
    target: Target,
    method: Method,
    headers: HeaderMap,
    signer: Option<Signer>,
    retry_on: Option<Vec<u16>>,
    limiter: Limiter,
}

impl HttpHandler {
    pub fn new(settings: &Settings, context: http::Context<'_>) -> Result<Self, SetupError> {
        let target = Target::new(&settings.url, context.dir)?;
        let method = Method::from_bytes(settings.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SetupError::Method(settings.method.clone()))?;
        let mut headers = header_map(&settings.headers)?;
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        Ok(HttpHandler {
            endpoint: Endpoint::new(&settings.connection, &target.host, context)?,
            target,
            method,
            headers,
            signer: match &settings.signing_secret {
                Some(source) => {
                    let secret = source
                        .resolve(context.dir)
                        .map_err(SetupError::SigningSecret)?;
                    Some(Signer::new(&secret)?)
                }
                None => None,
            },
            retry_on: settings.retry_on.clone(),
            limiter: Limiter::new(Limits::from_settings(
                settings.concurrency,
                settings.min_concurrency,
                settings.max_concurrency,
            )?),
        })
    }

    /// Delivers `event` once there is room under the handler's concurrency
    /// limit, telling the limit how the endpoint coped.
    pub async fn handle(&self, event: &Event, timeout: Duration) -> Result<(), HandlerError> {
        let permit = self.limiter.acquire().await;
        let started = Instant::now();
        let delivered = self.deliver(event, timeout).await;
        permit.done(match &delivered {
            Err(Failure::Overloaded(_)) => Some(Signal::Overloaded),
            Err(Failure::Other(_)) => None,
            Ok(()) | Err(Failure::Answered(_)) => Some(Signal::Answered(started.elapsed())),
        });
        delivered.map_err(Failure::into_error)
    }

    /// One attempt: `timeout` bounds the exchange up to the answer's status
    /// and headers, which decide the outcome. The body is then drained within
    /// bounds of its own (`crate::http::body`).
    async fn deliver(&self, event: &Event, timeout: Duration) -> Result<(), Failure> {
        let url = self.target.url(event).map_err(Failure::Other)?;
        // Shared, not copied, by every leg of an NTLM handshake.
        let body = bytes::Bytes::from_owner(event.json().clone());
        let request =
            |authorization: Option<String>| self.request(&url, event.id(), &body, authorization);
        let started = Instant::now();
        let sent = self.endpoint.deliver(request, timeout).await;
        let mut answer = sent.map_err(|err| {
            let error = self.send_failed(url.as_str(), err);
            match matches!(error.retry, Retry::Later { .. }) {
                // Refused, reset or timed out: the endpoint may be swamped.
                true => Failure::Overloaded(error),
                false => Failure::Other(error),
            }
        })?;
        let response = &mut answer.response;
        let status = response.status();
        let elapsed = started.elapsed().as_millis();
        if status.is_success() {
            let drained = drain(response, DRAIN_LIMIT).await;
            debug!(%status, elapsed_ms = elapsed, body_complete = drained.complete, "delivered");
            return Ok(());
        }
        let after = retry_after(response.headers());
        // Redirects are not followed (a POST would turn into a GET without
        // the event): the operator is told where the endpoint moved.
        let moved_to = response
            .headers()
            .get(LOCATION)
            .filter(|_| status.is_redirection())
            .map(|location| {
                if self.target.is_secret() {
                    " (moved; url is a secret, so where to is not shown)".to_owned()
                } else {
                    format!(
                        " (moved to {}; set url to it)",
                        redact(&String::from_utf8_lossy(location.as_bytes()))
                    )
                }
            })
            .unwrap_or_default();
        let snippet = drain(response, BODY_SNIPPET).await;
        let message = format!(
            "{} {} answered {status}{moved_to} after {elapsed} ms: {}",
            self.method,
            self.target.show(url.as_str()),
            String::from_utf8_lossy(&snippet.bytes).trim()
        );
        let retry = if self.retries(status) {
            Retry::Later { after }
        } else {
            Retry::Never
        };
        let error = HandlerError { message, retry };
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Failure::Overloaded(error)
            }
            _ => Failure::Answered(error),
        })
    }

    /// See [`crate::handlers::Handler::replayed`].
    pub fn replayed(&self) {
        self.endpoint.rearm();
    }

    /// One request for the event; `authorization` is an NTLM leg's header.
    fn request(
        &self,
        url: &reqwest::Url,
        id: &str,
        body: &bytes::Bytes,
        authorization: Option<String>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .endpoint
            .client()
            .request(self.method.clone(), url.clone())
            .headers(self.headers.clone());
        if let Some(signer) = &self.signer {
            let now = jiff::Timestamp::now().as_second();
            for (name, value) in signer.headers(id, now, body) {
                request = request.header(name, value);
            }
        }
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        request.body(body.clone())
    }

    fn send_failed(&self, url: &str, err: SendError) -> HandlerError {
        let retryable = err.is_retryable();
        let cause = self.endpoint.explain(err);
        let message = format!("{} {}: {cause}", self.method, self.target.show(url));
        if retryable {
            HandlerError::retryable(message)
        } else {
            HandlerError::permanent(message)
        }
    }

    fn retries(&self, status: StatusCode) -> bool {
        match &self.retry_on {
            Some(statuses) => statuses.contains(&status.as_u16()),
            None => {
                status.is_server_error()
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }
}
