//! Opening one connection to a destination: directly or through the
//! configured proxy (an HTTP CONNECT tunnel, with the proxy's Basic
//! credentials, or SOCKS5), then TLS for an `https` destination. The same
//! proxy rules (`no_proxy`) and TLS configuration as the destination's
//! reqwest client, from the same settings.
//!
//! The proxy's credentials stay out of its URL: hyper-util's matcher would
//! percent-decode them (`p%41ss` would go as `pAss`). They go to the tunnel
//! as they are configured.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use rustls::pki_types::{InvalidDnsNameError, ServerName};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use super::ConnectionError;
use crate::http::error::{Deadline, SendError, Waiting};
use crate::http::{ClientError, ProxySpec};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection's byte stream: TCP, perhaps through a tunnel, perhaps TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens connections to the destinations of one endpoint.
pub struct Dialer {
    tls: TlsConnector,
    proxy: Option<Proxy>,
}

/// The configured proxy: which destinations it takes, and its credentials
/// (without them, any in its address are used, as reqwest does).
struct Proxy {
    matcher: Matcher,
    login: Option<(String, SecretString)>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the proxy's credentials.
        f.debug_struct("Dialer")
            .field("proxy", &self.proxy.as_ref().map(|proxy| &proxy.matcher))
            .finish_non_exhaustive()
    }
}

impl Dialer {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        proxy: Option<&ProxySpec>,
    ) -> Result<Dialer, ClientError> {
        let proxy = match proxy {
            Some(spec) => Some(Proxy {
                matcher: spec.matcher()?,
                login: spec.credentials.as_ref().map(|(user, password)| {
                    (user.clone(), password.expose_secret().to_owned().into())
                }),
            }),
            None => None,
        };
        Ok(Dialer {
            tls: TlsConnector::from(tls),
            proxy,
        })
    }

    /// A new connection to `url`'s host, ready for HTTP, opened by
    /// `deadline`.
    pub async fn dial(&self, url: &Url, deadline: Deadline) -> Result<Box<dyn Io>, SendError> {
        let host = url.host_str().ok_or(ConnectionError::NoHost)?;
        let port = url.port_or_known_default().ok_or(ConnectionError::NoHost)?;
        let destination: Uri = format!("{}://{host}:{port}/", url.scheme())
            .parse()
            .map_err(|_| ConnectionError::NoHost)?;
        let intercept = self.proxy.as_ref().and_then(|proxy| {
            let intercept = proxy.matcher.intercept(&destination)?;
            Some((intercept, proxy.login.as_ref()))
        });
        let waiting = Waiting::Connection {
            proxy: intercept.as_ref().map(|(proxy, _)| proxy.uri().to_string()),
        };
        let connect = async {
            let stream = match intercept {
                None => ready_call(tcp(), destination)
                    .await
                    .map_err(ConnectionError::Connect)?,
                Some((proxy, login)) => {
                    self.through(&proxy, login, destination)
                        .await
                        .map_err(|source| ConnectionError::Proxy {
                            proxy: proxy.uri().to_string(),
                            source,
                        })?
                }
            };
            if url.scheme() != "https" {
                return Ok(stream);
            }
            let name = server_name(host).map_err(ConnectionError::ServerName)?;
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(ConnectionError::Tls)?;
            Ok::<Box<dyn Io>, SendError>(Box::new(tls))
        };
        deadline.within(waiting, connect).await
    }

    /// A tunnel to `destination` through `proxy`, logging on with `login`.
    async fn through(
        &self,
        proxy: &Intercept,
        login: Option<&(String, SecretString)>,
        destination: Uri,
    ) -> Result<Box<dyn Io>, BoxError> {
        let address = proxy.uri().clone();
        match address.scheme_str() {
            Some("socks5") => {
                // As reqwest does for `socks5://`: the name is resolved here.
                let mut socks = SocksV5::new(address, tcp()).local_dns(true);
                let login = match login {
                    Some((user, password)) => {
                        Some((user.clone(), password.expose_secret().to_owned()))
                    }
                    None => proxy
                        .raw_auth()
                        .map(|(user, password)| (user.to_owned(), password.to_owned())),
                };
                if let Some((user, password)) = login {
                    socks = socks.with_auth(user, password);
                }
                Ok(ready_call(socks, destination).await?)
            }
            Some("https") => {
                let to_proxy = TlsToProxy(self.tls.clone());
                let tunnel = with_basic_auth(Tunnel::new(address, to_proxy), login, proxy);
                Ok(ready_call(tunnel, destination).await?)
            }
            _ => {
                let tunnel = with_basic_auth(Tunnel::new(address, tcp()), login, proxy);
                Ok(ready_call(tunnel, destination).await?)
            }
        }
    }
}

/// The tunnel, sending `login` as Basic credentials in its CONNECT.
fn with_basic_auth<C>(
    tunnel: Tunnel<C>,
    login: Option<&(String, SecretString)>,
    proxy: &Intercept,
) -> Tunnel<C> {
    let value = match login {
        Some((user, password)) => {
            let encoded = BASE64.encode(format!("{user}:{}", password.expose_secret()));
            HeaderValue::try_from(format!("Basic {encoded}")).expect("base64 is a header value")
        }
        None => match proxy.basic_auth() {
            Some(value) => value.clone(),
            None => return tunnel,
        },
    };
    tunnel.with_auth(value)
}

/// A TCP connector that, like reqwest's, sends small writes at once.
fn tcp() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(false);
    connector
}

/// Calls `service` once it is ready; the stream it opens, unwrapped.
async fn ready_call<S, T>(mut service: S, destination: Uri) -> Result<Box<dyn Io>, BoxError>
where
    S: Service<Uri, Response = TokioIo<T>>,
    S::Error: Into<BoxError>,
    T: Io + 'static,
{
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let stream = service.call(destination).await.map_err(Into::into)?;
    Ok(Box::new(stream.into_inner()))
}

/// The name TLS checks the certificate against: a DNS name or an IP
/// address (written in brackets in a URL when it is IPv6).
fn server_name(host: &str) -> Result<ServerName<'static>, InvalidDnsNameError> {
    ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// Reaches an `https://` proxy: TLS to the proxy, inside which the CONNECT
/// tunnel is opened (and the destination's own TLS inside that).
#[derive(Clone)]
struct TlsToProxy(TlsConnector);

impl Service<Uri> for TlsToProxy {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, proxy: Uri) -> Self::Future {
        let tls = self.0.clone();
        Box::pin(async move {
            let name = server_name(proxy.host().unwrap_or_default())?;
            let tcp = tcp().call(proxy).await?.into_inner();
            Ok(TokioIo::new(tls.connect(name, tcp).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// `%41` and `%25` read as escapes would send `pAss` and `ab%cd`.
    const PASSWORD: &str = "p%41ss ab%25cd:@";

    /// A dialer through the proxy at `url`, logging on with `credentials`.
    fn through(url: String, credentials: Option<&str>) -> Dialer {
        let spec = ProxySpec {
            url,
            credentials: credentials.map(|password| ("svc".to_owned(), password.to_owned().into())),
            no_proxy: None,
        };
        let tls = crate::http::tls::client_config(None, std::path::Path::new(".")).unwrap();
        Dialer::new(Arc::new(tls), Some(&spec)).unwrap()
    }

    fn someday() -> Deadline {
        Deadline::after(Duration::from_secs(60))
    }

    fn destination() -> Url {
        // An address: `socks5://` resolves names here, before talking to the proxy.
        Url::parse("http://192.0.2.1/events").unwrap()
    }

    /// The `Proxy-Authorization` of the CONNECT `dialer` sends to the proxy
    /// on `listener` (which refuses it).
    async fn proxy_authorization(dialer: Dialer, listener: TcpListener) -> Option<String> {
        let proxy = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(stream.read_u8().await.unwrap());
            }
            stream
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
                )
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        assert!(dialer.dial(&destination(), someday()).await.is_err());
        let head = proxy.await.unwrap();
        head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_owned())
        })
    }

    #[tokio::test]
    async fn the_connect_carries_the_proxy_password_as_configured() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = proxy_authorization(through(url, Some(PASSWORD)), listener).await;
        let expected = format!("Basic {}", BASE64.encode(format!("svc:{PASSWORD}")));
        assert_eq!(sent, Some(expected));
    }

    /// As reqwest's client does for the same address.
    #[tokio::test]
    async fn without_configured_credentials_those_in_the_proxys_address_are_used() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://svc:s3cret@{}", listener.local_addr().unwrap());
        let sent = proxy_authorization(through(url, None), listener).await;
        assert_eq!(sent, Some(format!("Basic {}", BASE64.encode("svc:s3cret"))));
    }

    #[tokio::test]
    async fn socks5_gets_the_proxy_password_as_configured() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("socks5://{}", listener.local_addr().unwrap());
        let dialer = through(url, Some(PASSWORD));
        // RFC 1928's greeting, then RFC 1929's user and password.
        let proxy = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut greeting = [0u8; 2];
            stream.read_exact(&mut greeting).await.unwrap();
            let mut methods = vec![0u8; greeting[1].into()];
            stream.read_exact(&mut methods).await.unwrap();
            assert!(methods.contains(&2), "{methods:?}");
            stream.write_all(&[5, 2]).await.unwrap();
            assert_eq!(
                stream.read_u8().await.unwrap(),
                1,
                "sub-negotiation version"
            );
            let mut fields = Vec::new();
            for _ in 0..2 {
                let mut text = vec![0u8; stream.read_u8().await.unwrap().into()];
                stream.read_exact(&mut text).await.unwrap();
                fields.push(String::from_utf8(text).unwrap());
            }
            // Refused: the test needs no tunnel.
            stream.write_all(&[1, 1]).await.unwrap();
            fields
        });
        assert!(dialer.dial(&destination(), someday()).await.is_err());
        assert_eq!(proxy.await.unwrap(), ["svc", PASSWORD]);
    }
}
