//! One HTTP/1 connection that jobhook opens and keeps itself, for NTLM,
//! which authenticates a connection rather than a request. Every request a
//! [`Line`] sends travels on its current connection; a new one is opened
//! only when that one is closed or broken, and the answer says which
//! connection carried it. No pool chooses, so an NTLM handshake's legs
//! share one connection by construction.

mod dial;

use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use reqwest::{Response, Url};
use tokio::time::Instant;

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

/// How long a connection may sit unused and still take a request, as in
/// reqwest's pool: past it, a firewall or NAT on the way may have dropped it
/// without a word, and a request on it would hang until its timeout.
const IDLE_LIMIT: Duration = Duration::from_secs(90);

/// A session's connection: none until the first request, then the one
/// opened last.
#[derive(Debug, Default)]
pub struct Line {
    current: Option<Kept>,
    /// Connections opened so far: the current one's number.
    opened: u64,
}

#[derive(Debug)]
struct Kept {
    sender: SendRequest<reqwest::Body>,
    /// When its last answer came.
    used: Instant,
}

impl Line {
    /// Sends `request` on the current connection once it is idle (the last
    /// answer's body read), or on a new one if it is closed or was idle too
    /// long. Returns the answer and the number of the connection that
    /// carried it.
    pub async fn send(
        &mut self,
        dialer: &Dialer,
        request: reqwest::Request,
    ) -> Result<(Response, u64), SendError> {
        let url = request.url().clone();
        let request = for_connection(request)?;
        let kept = self.idle(dialer, &url).await?;
        let answer = match kept.sender.try_send_request(request).await {
            Ok(answer) => answer,
            // Never written: the connection closed while the request was
            // handed to it. Sending it on a new one repeats nothing.
            Err(mut failed) => match failed.take_message() {
                Some(unsent) => {
                    self.current = None;
                    let kept = self.idle(dialer, &url).await?;
                    kept.sender
                        .send_request(unsent)
                        .await
                        .map_err(request_failed)?
                }
                None => return Err(request_failed(failed.into_error())),
            },
        };
        if let Some(kept) = &mut self.current {
            kept.used = Instant::now();
        }
        Ok((Response::from(answer.map(reqwest::Body::wrap)), self.opened))
    }

    /// The current connection once it can take a request, or a new one.
    async fn idle(&mut self, dialer: &Dialer, url: &Url) -> Result<&mut Kept, SendError> {
        if let Some(mut kept) = self.current.take()
            && kept.used.elapsed() < IDLE_LIMIT
            && kept.sender.ready().await.is_ok()
        {
            return Ok(self.current.insert(kept));
        }
        let stream = dialer.dial(url).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectionError::Handshake)?;
        // Ends when the connection closes, or once `sender` is dropped and
        // the connection is idle. Its errors reach the request in flight.
        tokio::spawn(connection);
        self.opened += 1;
        Ok(self.current.insert(Kept {
            sender,
            used: Instant::now(),
        }))
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers every request `200` with an empty body and
    /// keeps the connection; its URL and a count of the connections it took.
    async fn keep_alive_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    // Each read is one bodiless request here.
                    while stream.read(&mut buffer).await.is_ok_and(|read| read > 0) {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_share_a_connection_until_it_has_been_idle_too_long() {
        let (url, connections) = keep_alive_server().await;
        let tls = crate::http::tls::client_config(None, std::path::Path::new(".")).unwrap();
        let dialer = Dialer::new(Arc::new(tls), None).unwrap();
        let client = reqwest::Client::new();
        let mut line = Line::default();
        let send = async |line: &mut Line| {
            let (answer, connection) = line
                .send(&dialer, client.get(&url).build().unwrap())
                .await
                .unwrap();
            answer.bytes().await.unwrap();
            connection
        };
        assert_eq!(send(&mut line).await, 1);
        assert_eq!(send(&mut line).await, 1);
        tokio::time::advance(IDLE_LIMIT).await;
        assert_eq!(send(&mut line).await, 2);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

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
