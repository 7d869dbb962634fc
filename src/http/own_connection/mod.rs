//! One HTTP/1 connection that jobhook opens and keeps itself, for NTLM,
//! which authenticates a connection rather than a request. Every request a
//! [`Line`] sends travels on its current connection; a new one is opened
//! only when that one is closed or broken, and the answer says which
//! connection carried it. A request can also be sent on one given
//! connection only ([`Line::send_on`]): if that one is gone, it is not
//! sent at all. No pool chooses, so an NTLM handshake's last leg goes on
//! the connection that carried its CHALLENGE or nowhere.

mod dial;

use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use reqwest::{Response, Url};
use tokio::time::Instant;

pub use dial::Dialer;

use super::error::{Deadline, SendError};

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
    #[error("the connection closed before the request could be sent on it")]
    Gone,
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
    /// answer's body read), or on a new one, opened by `deadline`, if it is
    /// closed or was idle too long. Returns the answer and the number of the
    /// connection that carried it.
    pub async fn send(
        &mut self,
        dialer: &Dialer,
        request: reqwest::Request,
        deadline: Deadline,
    ) -> Result<(Response, u64), SendError> {
        let url = request.url().clone();
        let request = for_connection(request)?;
        let kept = match self.take_idle().await {
            Some(kept) => kept,
            None => self.open(dialer, &url, deadline).await?,
        };
        let answer = match self
            .current
            .insert(kept)
            .sender
            .try_send_request(request)
            .await
        {
            Ok(answer) => answer,
            // Never written: the connection closed while the request was
            // handed to it. Sending it on a new one repeats nothing.
            Err(mut failed) => match failed.take_message() {
                Some(unsent) => {
                    self.current = None;
                    let kept = self.open(dialer, &url, deadline).await?;
                    self.current
                        .insert(kept)
                        .sender
                        .send_request(unsent)
                        .await
                        .map_err(request_failed)?
                }
                None => return Err(request_failed(failed.into_error())),
            },
        };
        Ok((self.answered(answer), self.opened))
    }

    /// Sends `request` on connection number `connection` once it is idle,
    /// and on no other: if that one is closed or replaced, fails with
    /// [`ConnectionError::Gone`], having sent nothing and opened nothing.
    pub async fn send_on(
        &mut self,
        connection: u64,
        request: reqwest::Request,
    ) -> Result<Response, SendError> {
        let request = for_connection(request)?;
        let gone = SendError::Connection(ConnectionError::Gone);
        if connection != self.opened {
            return Err(gone);
        }
        let Some(kept) = self.take_idle().await else {
            return Err(gone);
        };
        match self
            .current
            .insert(kept)
            .sender
            .try_send_request(request)
            .await
        {
            Ok(answer) => Ok(self.answered(answer)),
            Err(mut failed) => {
                self.current = None;
                match failed.take_message() {
                    Some(_unsent) => Err(gone),
                    None => Err(request_failed(failed.into_error())),
                }
            }
        }
    }

    /// The current connection, taken, if it can take a request: open, idle
    /// and not idle too long. Otherwise none is current.
    async fn take_idle(&mut self) -> Option<Kept> {
        let mut kept = self.current.take()?;
        let usable = kept.used.elapsed() < IDLE_LIMIT && kept.sender.ready().await.is_ok();
        usable.then_some(kept)
    }

    /// A new connection to `url`'s host, opened by `deadline`.
    async fn open(
        &mut self,
        dialer: &Dialer,
        url: &Url,
        deadline: Deadline,
    ) -> Result<Kept, SendError> {
        let stream = dialer.dial(url, deadline).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectionError::Handshake)?;
        // Ends when the connection closes, or once `sender` is dropped and
        // the connection is idle. Its errors reach the request in flight.
        tokio::spawn(connection);
        self.opened += 1;
        Ok(Kept {
            sender,
            used: Instant::now(),
        })
    }

    /// `answer`, read from the current connection, now used.
    fn answered(&mut self, answer: hyper::Response<hyper::body::Incoming>) -> Response {
        if let Some(kept) = &mut self.current {
            kept.used = Instant::now();
        }
        Response::from(answer.map(reqwest::Body::wrap))
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
    use crate::http::ProxySpec;
    use crate::http::error::Waiting;

    /// A server that answers every request `200` with an empty body and
    /// keeps the connection; its URL and a count of the connections it took.
    async fn keep_alive_server() -> (String, Arc<AtomicUsize>) {
        server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await
    }

    /// A server that answers every request with `answer`.
    async fn server(answer: &'static [u8]) -> (String, Arc<AtomicUsize>) {
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
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    fn dialer(proxy: Option<&ProxySpec>) -> Dialer {
        let tls = crate::http::tls::client_config(None, std::path::Path::new(".")).unwrap();
        Dialer::new(Arc::new(tls), proxy).unwrap()
    }

    fn get(url: &str) -> reqwest::Request {
        reqwest::Client::new().get(url).build().unwrap()
    }

    fn someday() -> Deadline {
        Deadline::after(Duration::from_secs(3600))
    }

    #[tokio::test(start_paused = true)]
    async fn requests_share_a_connection_until_it_has_been_idle_too_long() {
        let (url, connections) = keep_alive_server().await;
        let dialer = dialer(None);
        let mut line = Line::default();
        let send = async |line: &mut Line| {
            let (answer, connection) = line.send(&dialer, get(&url), someday()).await.unwrap();
            answer.bytes().await.unwrap();
            connection
        };
        assert_eq!(send(&mut line).await, 1);
        assert_eq!(send(&mut line).await, 1);
        tokio::time::advance(IDLE_LIMIT).await;
        assert_eq!(send(&mut line).await, 2);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn send_on_uses_that_connection_or_none() {
        let (url, connections) = keep_alive_server().await;
        let dialer = dialer(None);
        let mut line = Line::default();
        let (answer, first) = line.send(&dialer, get(&url), someday()).await.unwrap();
        answer.bytes().await.unwrap();
        let answer = line.send_on(first, get(&url)).await.unwrap();
        answer.bytes().await.unwrap();
        let gone = line.send_on(first + 1, get(&url)).await.unwrap_err();
        assert!(matches!(gone, SendError::Connection(ConnectionError::Gone)));
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn send_on_a_closed_connection_sends_nothing_and_opens_nothing() {
        let (url, connections) =
            server(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
        let dialer = dialer(None);
        let mut line = Line::default();
        let (answer, first) = line.send(&dialer, get(&url), someday()).await.unwrap();
        answer.bytes().await.unwrap();
        let gone = line.send_on(first, get(&url)).await.unwrap_err();
        assert!(matches!(gone, SendError::Connection(ConnectionError::Gone)));
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    /// A proxy or server that takes the connection and never answers: the
    /// time runs out connecting, not waiting for an answer.
    #[tokio::test(start_paused = true)]
    async fn a_connection_that_is_never_ready_times_out_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let proxy = ProxySpec {
            url: format!("http://{address}"),
            credentials: None,
            no_proxy: None,
        };
        let cases = [
            (
                Some(&proxy),
                "http://192.0.2.1/".to_owned(),
                format!("connecting to the server through proxy http://{address}/"),
            ),
            (
                None,
                format!("https://{address}/"),
                "connecting to the server".to_owned(),
            ),
        ];
        for (proxy, url, waiting) in cases {
            let dialer = dialer(proxy);
            let mut line = Line::default();
            let deadline = Deadline::after(Duration::from_secs(5));
            let sent = line.send(&dialer, get(&url), deadline);
            let err = deadline.within(Waiting::Answer, sent).await.unwrap_err();
            assert_eq!(err.to_string(), format!("timed out after 5s {waiting}"));
        }
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
