//! Opening one connection to a destination: directly or through the
//! configured proxy (an HTTP CONNECT tunnel, with the proxy's Basic
//! credentials, or SOCKS5), then TLS for an `https` destination. The same
//! proxy rules (`no_proxy`) and TLS configuration as the destination's
//! reqwest client, from the same settings.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use rustls::pki_types::{InvalidDnsNameError, ServerName};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use super::ConnectionError;
use crate::http::{ClientError, ProxySpec};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection's byte stream: TCP, perhaps through a tunnel, perhaps TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens connections to the destinations of one endpoint.
pub struct Dialer {
    tls: TlsConnector,
    proxy: Option<Matcher>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher keeps the proxy's credentials to itself.
        f.debug_struct("Dialer")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        proxy: Option<&ProxySpec>,
    ) -> Result<Dialer, ClientError> {
        let proxy = match proxy {
            Some(spec) => Some(matcher(spec)?),
            None => None,
        };
        Ok(Dialer {
            tls: TlsConnector::from(tls),
            proxy,
        })
    }

    /// A new connection to `url`'s host, ready for HTTP.
    pub async fn dial(&self, url: &Url) -> Result<Box<dyn Io>, ConnectionError> {
        let host = url.host_str().ok_or(ConnectionError::NoHost)?;
        let port = url.port_or_known_default().ok_or(ConnectionError::NoHost)?;
        let destination: Uri = format!("{}://{host}:{port}/", url.scheme())
            .parse()
            .map_err(|_| ConnectionError::NoHost)?;
        let intercept = self
            .proxy
            .as_ref()
            .and_then(|proxy| proxy.intercept(&destination));
        let stream = match intercept {
            None => ready_call(tcp(), destination)
                .await
                .map_err(ConnectionError::Connect)?,
            Some(proxy) => self.through(&proxy, destination).await.map_err(|source| {
                ConnectionError::Proxy {
                    proxy: proxy.uri().to_string(),
                    source,
                }
            })?,
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
        Ok(Box::new(tls))
    }

    /// A tunnel to `destination` through `proxy`.
    async fn through(&self, proxy: &Intercept, destination: Uri) -> Result<Box<dyn Io>, BoxError> {
        let address = proxy.uri().clone();
        match address.scheme_str() {
            Some("socks5") => {
                // As reqwest does for `socks5://`: the name is resolved here.
                let mut socks = SocksV5::new(address, tcp()).local_dns(true);
                if let Some((user, password)) = proxy.raw_auth() {
                    socks = socks.with_auth(user.to_owned(), password.to_owned());
                }
                Ok(ready_call(socks, destination).await?)
            }
            Some("https") => {
                let to_proxy = TlsToProxy(self.tls.clone());
                let tunnel = with_basic_auth(Tunnel::new(address, to_proxy), proxy);
                Ok(ready_call(tunnel, destination).await?)
            }
            _ => {
                let tunnel = with_basic_auth(Tunnel::new(address, tcp()), proxy);
                Ok(ready_call(tunnel, destination).await?)
            }
        }
    }
}

/// The proxy rules reqwest follows for the same settings: the proxy for
/// every destination but those `no_proxy` lists, its credentials as Basic
/// authentication for an HTTP proxy, as user and password for SOCKS5.
fn matcher(spec: &ProxySpec) -> Result<Matcher, ClientError> {
    let mut url = Url::parse(&spec.url).map_err(|_| ClientError::ProxyUrl(spec.url.clone()))?;
    if let Some((user, password)) = &spec.credentials {
        let set = url
            .set_username(user)
            .and_then(|()| url.set_password(Some(password.expose_secret())));
        set.map_err(|()| ClientError::ProxyUrl(spec.url.clone()))?;
    }
    Ok(Matcher::builder()
        .all(String::from(url))
        .no(spec.no_proxy.as_deref().unwrap_or_default())
        .build())
}

fn with_basic_auth<C>(tunnel: Tunnel<C>, proxy: &Intercept) -> Tunnel<C> {
    match proxy.basic_auth() {
        Some(value) => tunnel.with_auth(value.clone()),
        None => tunnel,
    }
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
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    #[test]
    fn the_proxy_gets_basic_credentials_and_no_proxy_hosts_go_direct() {
        let spec = ProxySpec {
            url: "http://proxy.example:3128".to_owned(),
            credentials: Some(("svc".to_owned(), "p@ss:w rd".to_owned().into())),
            no_proxy: Some("direct.example, .corp.example".to_owned()),
        };
        let matcher = matcher(&spec).unwrap();
        let proxied = matcher
            .intercept(&"http://itsm.example/x".parse().unwrap())
            .unwrap();
        assert_eq!(proxied.uri().host(), Some("proxy.example"));
        let expected = format!("Basic {}", BASE64.encode("svc:p@ss:w rd"));
        assert_eq!(proxied.basic_auth().unwrap(), expected.as_str());
        for direct in ["https://direct.example/", "http://itsm.corp.example/"] {
            assert!(
                matcher.intercept(&direct.parse().unwrap()).is_none(),
                "{direct}"
            );
        }
    }
}
