//! An HTTP destination as configured: authentication, proxy and TLS settings
//! (shared by `HttpHandler` sections and the `[api]` section Lua scripts call)
//! and the ready client built from them.

use std::time::Duration;

use reqwest::{Client, RequestBuilder};
use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use super::error::{SendError, Waiting, within};
use super::ntlm::NtlmCredentials;
use super::ntlm_session::{Answer, NtlmSession};
use super::{Auth, ClientSpec, ProxySpec, build_client};
use crate::config::Config;
use crate::config::values::{List, SecretSource};

/// Keys of [`ConnectionSettings`], with their aliases: a section's keys are
/// split on these before each half is read.
pub const CONNECTION_KEYS: &[&str] = &[
    "basic_user",
    "BasicUser",
    "basic_password",
    "BasicPassword",
    "bearer_token",
    "use_ntlm_authentication",
    "UseNTLMAuthentication",
    "ntlm_user",
    "NTLMUser",
    "ntlm_password",
    "NTLMPassword",
    "use_ntlmv2",
    "UseNTLMv2",
    "proxy_host",
    "ProxyHost",
    "proxy_port",
    "ProxyPort",
    "proxy_scheme",
    "proxy_username",
    "ProxyUsername",
    "proxy_password",
    "ProxyPassword",
    "no_proxy",
    "ssl_config",
    "SSLConfig",
];

/// How to reach and authenticate to a server.
#[derive(Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
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
    #[serde(alias = "UseNTLMv2")]
    pub use_ntlmv2: Option<bool>,
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
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyScheme {
    #[default]
    Http,
    Https,
    Socks5,
}

/// A pooled client with the authentication to apply to each request.
#[derive(Debug)]
pub struct Endpoint {
    client: Client,
    auth: Auth,
    ntlm: Option<NtlmSession>,
    /// The `[ssl.NAME]` section in use, named in connection errors.
    ssl_name: Option<String>,
}

type SecretOf<'a> = dyn Fn(&str, &SecretSource) -> Result<SecretString, String> + 'a;

impl Endpoint {
    /// Resolves the secrets and builds the client for requests to `host`
    /// (NTLM binds its credentials to the host's name).
    pub fn new(settings: &ConnectionSettings, host: &str, config: &Config) -> Result<Self, String> {
        let dir = &config.dir;
        let secret = |what: &str, source: &SecretSource| {
            source.resolve(dir).map_err(|err| format!("{what}: {err}"))
        };
        let tls = match &settings.ssl_config {
            Some(name) => {
                let section = config.ssl.get(name.get_ref()).ok_or_else(|| {
                    format!("ssl_config: there is no [ssl.{}] section", name.get_ref())
                })?;
                Some((name.get_ref().as_str(), section))
            }
            None => None,
        };
        let ntlm = ntlm_session(settings, host, &secret)?;
        let spec = ClientSpec {
            tls,
            proxy: proxy(settings, &secret)?,
            single_connection: ntlm.is_some(),
        };
        Ok(Endpoint {
            client: build_client(spec, dir)?,
            auth: auth(settings, &secret)?,
            ntlm,
            ssl_name: settings
                .ssl_config
                .as_ref()
                .map(|name| name.get_ref().clone()),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends the request `build` makes (given an NTLM leg's `Authorization`
    /// header, if any), authenticated as configured. `timeout` bounds the
    /// exchange up to the answer's headers; with NTLM, waiting for the
    /// connection has a bound of its own, equally long. The answer holds the
    /// NTLM connection until it is dropped: read its body first.
    pub async fn deliver(
        &self,
        build: impl Fn(Option<String>) -> RequestBuilder,
        timeout: Duration,
    ) -> Result<Answer<'_>, SendError> {
        let request = |authorization: Option<String>| self.auth.apply(build(authorization));
        match &self.ntlm {
            None => within(timeout, Waiting::Answer, async {
                request(None).send().await.map_err(SendError::Http)
            })
            .await
            .map(Answer::alone),
            Some(session) => session.send(request, timeout).await,
        }
    }

    /// Allows NTLM one more logon after the server refused the credentials:
    /// an operator replayed a dead letter.
    pub fn rearm(&self) {
        if let Some(session) = &self.ntlm {
            session.rearm();
        }
    }

    /// What went wrong, for a log line: the cause chain, and the TLS section
    /// when one is in use.
    pub fn describe(&self, err: reqwest::Error) -> String {
        let mut message = describe(err);
        if let Some(name) = &self.ssl_name {
            message.push_str(&format!(" (TLS settings: [ssl.{name}])"));
        }
        message
    }
}

/// The error and its causes ("error sending request: connection refused"),
/// without the URL (it may hold a password; messages name it redacted).
pub fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // webpki's name for it does not say what to do.
    if text.contains("CaUsedAsEndEntity") {
        text.push_str(CA_AS_SERVER);
    }
    text
}

const CA_AS_SERVER: &str = " (the server's certificate is a CA certificate \
    (basicConstraints CA:TRUE), which TLS never accepts as a server's own, even \
    when ca_file pins it: make a CA, sign a server certificate with it that has \
    basicConstraints CA:FALSE, and put the CA in ca_file)";

fn auth(settings: &ConnectionSettings, secret: &SecretOf<'_>) -> Result<Auth, String> {
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
    settings: &ConnectionSettings,
    host: &str,
    secret: &SecretOf<'_>,
) -> Result<Option<NtlmSession>, String> {
    if !settings.use_ntlm_authentication {
        return match settings.ntlm_user {
            Some(_) => Err("ntlm_user is set but use_ntlm_authentication is false".to_owned()),
            None => Ok(None),
        };
    }
    if settings.use_ntlmv2 == Some(false) {
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

fn proxy(
    settings: &ConnectionSettings,
    secret: &SecretOf<'_>,
) -> Result<Option<ProxySpec>, String> {
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
