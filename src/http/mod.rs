//! Outgoing HTTP: one pooled client per destination, built from TLS, proxy
//! and authentication settings, and for NTLM a connection of its own
//! (`own_connection`) built from the same settings. Shared by the
//! `HttpHandler`, the API client handed to Lua scripts and the sources.

pub mod body;
mod certificate_problem;
mod client_error;
mod connect_deadline;
pub mod endpoint;
pub mod error;
pub mod ntlm;
pub mod ntlm_session;
pub mod own_connection;
pub mod settings;
pub mod tls;

use std::collections::BTreeMap;
use std::path::Path;

use hyper::Uri;
use hyper_util::client::proxy::matcher::Matcher;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, ClientBuilder, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};

pub use certificate_problem::CertificateProblem;
pub use client_error::ClientError;
pub use settings::SslSettings;

/// What building a client needs from the config besides its own section.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The directory relative paths (certificates, secret files) are
    /// resolved against.
    pub dir: &'a Path,
    /// The `[ssl.NAME]` sections, named by `ssl_config`.
    pub ssl: &'a BTreeMap<String, SslSettings>,
}

/// How requests authenticate themselves.
#[derive(Debug, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: SecretString,
    },
    Bearer(SecretString),
}

impl Auth {
    pub fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose_secret()))
            }
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
        }
    }
}

/// A forward proxy for every request of a client.
#[derive(Debug)]
pub struct ProxySpec {
    /// `http://host:port`, `https://host:port` or `socks5://host:port`.
    pub url: String,
    pub credentials: Option<(String, SecretString)>,
    /// Hosts reached directly (comma-separated, as in `NO_PROXY`).
    pub no_proxy: Option<String>,
}

impl ProxySpec {
    /// The proxy rules reqwest follows for these settings (it uses the same
    /// matcher): the proxy for every destination but those `no_proxy`
    /// lists. The matcher drops a proxy URL it cannot read (`proxy{1}`, a
    /// `socks5` host that is not ASCII) and sends everything directly, so
    /// such a URL is an error here.
    pub fn matcher(&self) -> Result<Matcher, ClientError> {
        let invalid = || ClientError::ProxyUrl(self.url.clone());
        let url = String::from(reqwest::Url::parse(&self.url).map_err(|_| invalid())?);
        let unlisted = Uri::from_static("http://proxied.invalid/");
        if Matcher::builder()
            .all(url.clone())
            .build()
            .intercept(&unlisted)
            .is_none()
        {
            return Err(invalid());
        }
        Ok(Matcher::builder()
            .all(url)
            .no(self.no_proxy.as_deref().unwrap_or_default())
            .build())
    }
}

/// Everything a client is built from.
#[derive(Debug, Default)]
pub struct ClientSpec {
    /// The destination's TLS configuration (`tls::client_config`); reqwest's
    /// own default without one.
    pub tls: Option<rustls::ClientConfig>,
    pub proxy: Option<ProxySpec>,
}

/// The User-Agent of every request jobhook sends.
pub const USER_AGENT: &str = concat!("jobhook/", env!("CARGO_PKG_VERSION"));

/// Builds a client. Proxies from the environment are ignored: a daemon's
/// destinations are what its config says, not what its service manager's
/// environment happens to hold. Redirects are not followed (reqwest would
/// resend a POST answered 301 or 302 as a GET without its body), and reqwest
/// retries nothing by itself: every attempt is the handler's, retried by its
/// own durable policy.
pub fn build_client(spec: ClientSpec) -> Result<Client, ClientError> {
    let mut builder: ClientBuilder = Client::builder()
        .user_agent(USER_AGENT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .connector_layer(connect_deadline::ConnectWithin);
    if let Some(config) = spec.tls {
        builder = builder.tls_backend_preconfigured(config);
    }
    if let Some(proxy) = spec.proxy {
        // Its matcher would drop a URL it cannot read and go directly.
        proxy.matcher()?;
        let mut configured =
            reqwest::Proxy::all(&proxy.url).map_err(|source| ClientError::Proxy {
                url: proxy.url.clone(),
                source,
            })?;
        if let Some((user, password)) = &proxy.credentials {
            // reqwest puts them into the proxy's URL as they are, and its
            // matcher percent-decodes them: `p%41ss` would go as `pAss`.
            // Encoded, they come out as configured.
            let encoded = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
            configured = configured.basic_auth(&encoded(user), &encoded(password.expose_secret()));
        }
        if let Some(list) = &proxy.no_proxy {
            configured = configured.no_proxy(reqwest::NoProxy::from_string(list));
        }
        builder = builder.proxy(configured);
    }
    builder.build().map_err(ClientError::Build)
}

/// Headers as configured (`headers = { "X-Source" = "jobhook" }`), checked.
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, ClientError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|source| ClientError::HeaderName {
                name: name.clone(),
                source,
            })?;
        let value = HeaderValue::from_str(value).map_err(|source| ClientError::HeaderValue {
            name: name.to_string(),
            source,
        })?;
        map.insert(name, value);
    }
    Ok(map)
}

/// A configured API base URL (`[api]`, a source's `base_url`), ending in
/// `/` so that paths join under it; `None` unless it is http(s).
pub fn base_url(text: &str) -> Option<reqwest::Url> {
    let mut base = text.to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    reqwest::Url::parse(&base)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
}

/// The URL for messages (logs, dead letters, errors): without a password,
/// and with every query value replaced, since tokens often travel there
/// (`?api_key=…`). Text that is not a URL loses everything after `?`.
pub fn redact(url: &str) -> String {
    const HIDDEN: &str = "REDACTED";
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return match url.split_once('?') {
            Some((before, _)) => format!("{before}?{HIDDEN}"),
            None => url.to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() {
        let names: Vec<String> = parsed
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|name| (name, HIDDEN)));
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(url: &str) -> ProxySpec {
        ProxySpec {
            url: url.to_owned(),
            credentials: None,
            no_proxy: Some("direct.example, .corp.example".to_owned()),
        }
    }

    #[test]
    fn the_proxy_takes_every_host_but_no_proxy_ones() {
        let matcher = proxy("http://proxy.example:3128").matcher().unwrap();
        let proxied = matcher
            .intercept(&Uri::from_static("http://itsm.example/x"))
            .unwrap();
        assert_eq!(proxied.uri().host(), Some("proxy.example"));
        for direct in ["https://direct.example/", "http://itsm.corp.example/"] {
            assert!(
                matcher.intercept(&direct.parse().unwrap()).is_none(),
                "{direct}"
            );
        }
    }

    /// URLs that parse but that the matcher drops: every request would go
    /// directly, past the proxy.
    #[test]
    fn a_proxy_url_the_matcher_cannot_read_is_an_error() {
        for url in [
            "http://proxy{1}.example:3128",
            "socks5://münchen.example:1080",
        ] {
            let expected = format!("proxy {url}: not a URL with a host");
            let err = proxy(url).matcher().unwrap_err();
            assert_eq!(err.to_string(), expected);
            let spec = ClientSpec {
                tls: None,
                proxy: Some(proxy(url)),
            };
            assert_eq!(build_client(spec).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn passwords_and_query_values_in_urls_are_redacted() {
        assert_eq!(redact("https://u:secret@h/x"), "https://u:REDACTED@h/x");
        assert_eq!(redact("https://h/x"), "https://h/x");
        assert_eq!(
            redact("https://h/x?token=s3cret&flag"),
            "https://h/x?token=REDACTED&flag=REDACTED"
        );
        assert_eq!(redact("not a url?token=s3cret"), "not a url?REDACTED");
    }
}
