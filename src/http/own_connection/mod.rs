//! One HTTP/1 connection that jobhook opens and keeps itself, for NTLM,
//! which authenticates a connection rather than a request. Every request a
//! [`Line`] sends travels on its current connection; a new one is opened
//! only when that one is closed or broken, and the answer says which
//! connection carried it. No pool chooses, so an NTLM handshake's legs
//! share one connection by construction.

mod dial;

use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use reqwest::{Response, Url};

pub use dial::Dialer;

use super::error::SendError;

/// Why a request on the own connection got no answer. Names neither the
/// destination nor its URL, which may be a secret: callers name it as the
/// handler shows it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the URL has no host and port")]
    NoHost,
    #[error("cannot connect")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("proxy {proxy}")]
    Proxy {
        proxy: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the host is not a name TLS can check")]
    ServerName(#[source] rustls::pki_types::InvalidDnsNameError),
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    #[error("HTTP/1 handshake failed")]
    Handshake(#[source] hyper::Error),
    #[error("error sending request")]
    Request(#[source] hyper::Error),
}

/// A session's connection: none until the first request, then the one
/// opened last.
#[derive(Debug, Default)]
pub struct Line {
    current: Option<SendRequest<reqwest::Body>>,
    /// Connections opened so far: the current one's number.
    opened: u64,
}

impl Line {
    /// Sends `request` on the current connection once it is idle (the last
    /// answer's body read), or on a new one if it is closed. Returns the
    /// answer and the number of the connection that carried it.
    pub async fn send(
        &mut self,
        dialer: &Dialer,
        request: reqwest::Request,
    ) -> Result<(Response, u64), SendError> {
        let url = request.url().clone();
        let request = for_connection(request)?;
        let sender = self.idle(dialer, &url).await?;
        let answer = match sender.try_send_request(request).await {
            Ok(answer) => answer,
            // Never written: the connection closed while the request was
            // handed to it. Sending it on a new one repeats nothing.
            Err(mut failed) => match failed.take_message() {
                Some(unsent) => {
                    self.current = None;
                    let sender = self.idle(dialer, &url).await?;
                    sender.send_request(unsent).await.map_err(request_failed)?
                }
                None => return Err(request_failed(failed.into_error())),
            },
        };
        Ok((Response::from(answer.map(reqwest::Body::wrap)), self.opened))
    }

    /// The current connection once it can take a request, or a new one.
    async fn idle(
        &mut self,
        dialer: &Dialer,
        url: &Url,
    ) -> Result<&mut SendRequest<reqwest::Body>, SendError> {
        if let Some(mut sender) = self.current.take()
            && sender.ready().await.is_ok()
        {
            return Ok(self.current.insert(sender));
        }
        let stream = dialer.dial(url).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectionError::Handshake)?;
        // Ends when the connection closes, or once `sender` is dropped and
        // the connection is idle. Its errors reach the request in flight.
        tokio::spawn(connection);
        self.opened += 1;
        Ok(self.current.insert(sender))
    }
}

/// A URL that cannot be sent as its own connection's request (not one
/// reqwest accepted).
fn unusable<E>(_: E) -> SendError {
    SendError::Connection(ConnectionError::NoHost)
}

fn request_failed(err: hyper::Error) -> SendError {
    SendError::Connection(ConnectionError::Request(err))
}

/// `request` as it goes on a connection to its host: the path and query
/// only, a `Host` header, and the headers reqwest's clients add by default.
fn for_connection(request: reqwest::Request) -> Result<hyper::Request<reqwest::Body>, SendError> {
    let url = request.url().clone();
    let mut request = hyper::Request::try_from(request).map_err(SendError::Http)?;
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    *request.uri_mut() = path.parse().map_err(unusable)?;
    let host = url.host_str().ok_or(ConnectionError::NoHost)?;
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let headers = request.headers_mut();
    headers.insert(HOST, HeaderValue::from_str(&host).map_err(unusable)?);
    headers
        .entry(USER_AGENT)
        .or_insert(HeaderValue::from_static(crate::http::USER_AGENT));
    headers
        .entry(ACCEPT)
        .or_insert(HeaderValue::from_static("*/*"));
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_connection(url: &str) -> hyper::Request<reqwest::Body> {
        let request = reqwest::Client::new()
            .post(url)
            .header(ACCEPT, "application/json")
            .build()
            .unwrap();
        for_connection(request).unwrap()
    }

    #[test]
    fn a_request_goes_in_origin_form_with_its_host_and_user_agent() {
        let request = on_connection("http://itsm.example:8080/events/1?x=a%20b");
        assert_eq!(request.uri(), "/events/1?x=a%20b");
        assert_eq!(request.headers()[HOST], "itsm.example:8080");
        assert_eq!(request.headers()[USER_AGENT], crate::http::USER_AGENT);
        // The caller's own headers win over the defaults.
        assert_eq!(request.headers()[ACCEPT], "application/json");
        let request = on_connection("https://itsm.example/");
        assert_eq!(request.headers()[HOST], "itsm.example");
    }
}
