//! `HttpHandler`: sends each event as JSON to an HTTP endpoint.
//!
//! Success is a 2xx answer. Connection errors, timeouts, 408, 429 and 5xx may
//! pass and are retried (a `Retry-After` answer sets the wait); every other
//! status is a permanent failure. `retry_on` replaces the retried statuses.

mod signing;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use reqwest::{Client, Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;
use tracing::debug;

use self::signing::Signer;
use super::template::{Escape, Template};
use super::{HandlerError, Retry};
use crate::config::Config;
use crate::config::values::{List, SecretSource};
use crate::event::Event;
use crate::http::ntlm::{NtlmCredentials, NtlmError, NtlmSession};
use crate::http::{Auth, ClientSpec, ProxySpec, build_client};

/// Settings of an `HttpHandler` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where events are sent. `{Field}` inserts an event field, URL-encoded.
    /// Alias `URL`.
    #[serde(alias = "URL")]
    pub url: Template,
    /// HTTP method. Default `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers, e.g. `{ "X-Source" = "jobhook" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// User for HTTP Basic authentication. Alias `BasicUser`.
    #[serde(alias = "BasicUser")]
    pub basic_user: Option<String>,
    /// Password for Basic authentication: a string, `{ env = "NAME" }` or
    /// `{ file = "path" }`. Alias `BasicPassword`.
    #[serde(alias = "BasicPassword")]
    pub basic_password: Option<SecretSource>,
    /// Token sent as `Authorization: Bearer …`, in any of the secret forms.
    pub bearer_token: Option<SecretSource>,
    /// Authenticate with NTLMv2 as `ntlm_user` (for IIS and other Windows
    /// servers). Alias `UseNTLMAuthentication`. Default `false`.
    #[serde(alias = "UseNTLMAuthentication", default)]
    pub use_ntlm_authentication: bool,
    /// `DOMAIN\user` or `user@domain`. Alias `NTLMUser`.
    #[serde(alias = "NTLMUser")]
    pub ntlm_user: Option<String>,
    /// NTLM password, in any of the secret forms. Alias `NTLMPassword`.
    #[serde(alias = "NTLMPassword")]
    pub ntlm_password: Option<SecretSource>,
    /// NTLMv2 (the only version jobhook speaks: NTLMv1 is broken and is
    /// refused). Alias `UseNTLMv2`. Default `true`.
    #[serde(alias = "UseNTLMv2", default = "default_ntlmv2")]
    pub use_ntlmv2: bool,
    /// Forward proxy host; requests (http and https) go through it. Alias `ProxyHost`.
    #[serde(alias = "ProxyHost")]
    pub proxy_host: Option<String>,
    /// Proxy port. Alias `ProxyPort`. Default 3128 (8080 for `https`, 1080 for `socks5`).
    #[serde(alias = "ProxyPort")]
    pub proxy_port: Option<u16>,
    /// How to talk to the proxy: `http`, `https` or `socks5`. Default `http`.
    #[serde(default)]
    pub proxy_scheme: ProxyScheme,
    /// User for the proxy's Basic authentication. Alias `ProxyUsername`.
    #[serde(alias = "ProxyUsername")]
    pub proxy_username: Option<String>,
    /// Password for the proxy, in any of the secret forms. Alias `ProxyPassword`.
    #[serde(alias = "ProxyPassword")]
    pub proxy_password: Option<SecretSource>,
    /// Hosts reached without the proxy, as in `NO_PROXY` (`"localhost, .corp"`).
    pub no_proxy: Option<List>,
    /// Name of the `[ssl.NAME]` section for HTTPS. Alias `SSLConfig`.
    #[serde(alias = "SSLConfig")]
    pub ssl_config: Option<Spanned<String>>,
    /// Adds Standard Webhooks `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` headers signed with this secret (`whsec_…` base64,
    /// or any other string as its bytes), in any of the secret forms.
    pub signing_secret: Option<SecretSource>,
    /// Statuses that are retried, replacing the default (408, 429, 5xx).
    pub retry_on: Option<Vec<u16>>,
}

fn default_ntlmv2() -> bool {
    true
}

fn default_method() -> String {
    "POST".to_owned()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyScheme {
    #[default]
    Http,
    Https,
    Socks5,
}

/// Bytes of a failed response's body quoted in the error.
const BODY_SNIPPET: usize = 512;
/// Bytes of a successful response's body read so the connection can be reused.
const DRAIN_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
pub struct HttpHandler {
    client: Client,
    url: Template,
    method: Method,
    headers: HeaderMap,
    auth: Auth,
    signer: Option<Signer>,
    retry_on: Option<Vec<u16>>,
    /// The `[ssl.NAME]` section in use, named in connection errors.
    ssl_name: Option<String>,
    ntlm: Option<NtlmSession>,
}

impl HttpHandler {
    pub fn new(settings: &Settings, config: &Config) -> Result<Self, String> {
        let dir = &config.dir;
        let secret = |what: &str, source: &SecretSource| {
            source.resolve(dir).map_err(|err| format!("{what}: {err}"))
        };
        let host = url_host(&settings.url)?;
        let method = Method::from_bytes(settings.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("method: {:?} is not an HTTP method", settings.method))?;
        let tls = match &settings.ssl_config {
            Some(name) => {
                let section = config.ssl.get(name.get_ref()).ok_or_else(|| {
                    format!("ssl_config: there is no [ssl.{}] section", name.get_ref())
                })?;
                Some((name.get_ref().as_str(), section))
            }
            None => None,
        };
        let ntlm = ntlm_session(settings, &host, &secret)?;
        let spec = ClientSpec {
            tls,
            proxy: proxy(settings, &secret)?,
            single_connection: ntlm.is_some(),
        };
        Ok(HttpHandler {
            client: build_client(spec, dir)?,
            url: settings.url.clone(),
            method,
            headers: header_map(&settings.headers)?,
            auth: auth(settings, &secret)?,
            signer: match &settings.signing_secret {
                Some(source) => Some(Signer::new(&secret("signing_secret", source)?)?),
                None => None,
            },
            retry_on: settings.retry_on.clone(),
            ssl_name: settings
                .ssl_config
                .as_ref()
                .map(|name| name.get_ref().clone()),
            ntlm,
        })
    }

    pub async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let mut url = String::new();
        self.url.render(event, Escape::UrlComponent, &mut url);
        let mut body = Vec::with_capacity(512);
        event.write_json(&mut body);
        let request =
            |authorization: Option<String>| self.request(&url, event.id(), &body, authorization);
        let started = Instant::now();
        let sent = match &self.ntlm {
            None => request(None).send().await.map_err(NtlmError::Http),
            Some(session) => session.send(request).await,
        };
        let mut response = sent.map_err(|err| self.send_failed(&url, err))?;
        let status = response.status();
        let elapsed = started.elapsed().as_millis();
        if status.is_success() {
            drain(&mut response, DRAIN_LIMIT).await;
            debug!(%status, elapsed_ms = elapsed, "delivered");
            return Ok(());
        }
        let after = retry_after(response.headers());
        let snippet = drain(&mut response, BODY_SNIPPET).await;
        let message = format!(
            "{} {} answered {status} after {elapsed} ms: {}",
            self.method,
            redact(&url),
            String::from_utf8_lossy(&snippet).trim()
        );
        let retry = if self.retries(status) {
            Retry::Later { after }
        } else {
            Retry::Never
        };
        Err(HandlerError { message, retry })
    }

    /// One request for the event; `authorization` is an NTLM leg's header.
    fn request(
        &self,
        url: &str,
        id: &str,
        body: &[u8],
        authorization: Option<String>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(self.method.clone(), url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(signer) = &self.signer {
            let now = jiff::Timestamp::now().as_second();
            for (name, value) in signer.headers(id, now, body) {
                request = request.header(name, value);
            }
        }
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        self.auth.apply(request).body(body.to_vec())
    }

    fn send_failed(&self, url: &str, err: NtlmError) -> HandlerError {
        match err {
            NtlmError::Protocol(message) => HandlerError::permanent(message),
            NtlmError::Http(err) => {
                let mut message = format!(
                    "{} {}: {}",
                    self.method,
                    redact(url),
                    describe(&err.without_url())
                );
                if let Some(name) = &self.ssl_name {
                    message.push_str(&format!(" (TLS settings: [ssl.{name}])"));
                }
                HandlerError::retryable(message)
            }
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

type SecretOf<'a> = dyn Fn(&str, &SecretSource) -> Result<SecretString, String> + 'a;

/// The URL's host, after checking that the URL is http(s) and well formed.
fn url_host(url: &Template) -> Result<String, String> {
    let sample = url.with_stand_in("x");
    match reqwest::Url::parse(&sample) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
            Ok(parsed.host_str().unwrap_or_default().to_owned())
        }
        _ => Err(format!("url: {sample:?} is not an http:// or https:// URL")),
    }
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("headers: the value of {name} is not a valid header value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

fn auth(settings: &Settings, secret: &SecretOf<'_>) -> Result<Auth, String> {
    Ok(
        match (
            &settings.basic_user,
            &settings.basic_password,
            &settings.bearer_token,
        ) {
            (Some(_), _, Some(_)) => {
                return Err("use basic_user or bearer_token, not both".to_owned());
            }
            (Some(user), password, None) => Auth::Basic {
                user: user.clone(),
                password: match password {
                    Some(source) => secret("basic_password", source)?,
                    None => String::new().into(),
                },
            },
            (None, Some(_), _) => return Err("basic_password needs basic_user".to_owned()),
            (None, None, Some(token)) => Auth::Bearer(secret("bearer_token", token)?),
            (None, None, None) => Auth::None,
        },
    )
}

fn ntlm_session(
    settings: &Settings,
    host: &str,
    secret: &SecretOf<'_>,
) -> Result<Option<NtlmSession>, String> {
    if !settings.use_ntlm_authentication {
        return match settings.ntlm_user {
            Some(_) => Err("ntlm_user is set but use_ntlm_authentication is false".to_owned()),
            None => Ok(None),
        };
    }
    if !settings.use_ntlmv2 {
        return Err(
            "use_ntlmv2 = false asks for NTLMv1, which is broken and not supported; \
                    remove it (NTLMv2 is the default)"
                .to_owned(),
        );
    }
    if settings.basic_user.is_some() || settings.bearer_token.is_some() {
        return Err("use NTLM, basic_user or bearer_token, not several".to_owned());
    }
    let user = settings
        .ntlm_user
        .as_deref()
        .ok_or("use_ntlm_authentication needs ntlm_user")?;
    let password = match &settings.ntlm_password {
        Some(source) => secret("ntlm_password", source)?,
        None => return Err("use_ntlm_authentication needs ntlm_password".to_owned()),
    };
    Ok(Some(NtlmSession::new(
        NtlmCredentials::new(user, password)?,
        host,
    )))
}

fn proxy(settings: &Settings, secret: &SecretOf<'_>) -> Result<Option<ProxySpec>, String> {
    let Some(host) = &settings.proxy_host else {
        if settings.proxy_port.is_some() || settings.proxy_username.is_some() {
            return Err("proxy_port and proxy_username need proxy_host".to_owned());
        }
        return Ok(None);
    };
    let (scheme, default_port) = match settings.proxy_scheme {
        ProxyScheme::Http => ("http", 3128),
        ProxyScheme::Https => ("https", 8080),
        ProxyScheme::Socks5 => ("socks5", 1080),
    };
    let credentials = match (&settings.proxy_username, &settings.proxy_password) {
        (Some(user), Some(password)) => Some((user.clone(), secret("proxy_password", password)?)),
        (Some(user), None) => Some((user.clone(), String::new().into())),
        (None, Some(_)) => return Err("proxy_password needs proxy_username".to_owned()),
        (None, None) => None,
    };
    Ok(Some(ProxySpec {
        url: format!(
            "{scheme}://{host}:{}",
            settings.proxy_port.unwrap_or(default_port)
        ),
        credentials,
        no_proxy: settings.no_proxy.as_ref().map(|list| list.0.join(",")),
    }))
}

/// Reads up to `limit` bytes of the body (the rest is left unread).
async fn drain(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())])
            }
            _ => break,
        }
    }
    body
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The error and its causes ("error sending request: connection refused").
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The URL without a password in it, for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(redact("https://u:secret@h/x"), "https://u:REDACTED@h/x");
        assert_eq!(redact("https://h/x"), "https://h/x");
    }
}
