//! An HTTP destination as configured: authentication, proxy and TLS settings
//! (shared by `HttpHandler` sections, the `[api]` section Lua scripts call
//! and `[sources.*]`) and the ready client built from them.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, RequestBuilder};
use secrecy::SecretString;

use hyper::Uri;
use hyper_util::client::proxy::matcher::Matcher;

use super::connect_deadline;
use super::error::{Deadline, SendError, Waiting};
use super::ntlm::NtlmCredentials;
use super::ntlm_session::{Answer, NtlmSession};
use super::own_connection::Dialer;
use super::settings::{ConnectionSettings, ProxyScheme};
use super::tls::client_config;
use super::{Auth, CertificateProblem, ClientError, ClientSpec, Context, ProxySpec, build_client};
use crate::config::values::{SecretSource, error_chain};

/// A pooled client with the authentication to apply to each request.
#[derive(Debug)]
pub struct Endpoint {
    client: Client,
    auth: Auth,
    ntlm: Option<NtlmSession>,
    /// Which destinations go through the proxy, named when connecting to
    /// one times out.
    proxy: Option<Matcher>,
    /// The `[ssl.NAME]` section in use, named in connection errors.
    ssl_name: Option<String>,
}

type SecretOf<'a> = dyn Fn(&'static str, &SecretSource) -> Result<SecretString, ClientError> + 'a;

impl Endpoint {
    /// Resolves the secrets and builds the client for requests to `host`
    /// (NTLM binds its credentials to the host's name).
    pub fn new(
        settings: &ConnectionSettings,
        host: &str,
        context: Context<'_>,
    ) -> Result<Self, ClientError> {
        let dir = context.dir;
        let secret = |key: &'static str, source: &SecretSource| {
            source
                .resolve(dir)
                .map_err(|source| ClientError::Secret { key, source })
        };
        let tls = match &settings.ssl_config {
            Some(name) => {
                let section = context
                    .ssl
                    .get(name.get_ref())
                    .ok_or_else(|| ClientError::NoSslSection(name.get_ref().clone()))?;
                Some((name.get_ref().as_str(), section))
            }
            None => None,
        };
        let tls = client_config(tls, dir)?;
        let proxy = proxy(settings, &secret)?;
        let ntlm = match ntlm_credentials(settings, &secret)? {
            Some(credentials) => {
                let dialer = Dialer::new(Arc::new(tls.clone()), proxy.as_ref())?;
                Some(NtlmSession::new(credentials, host, dialer))
            }
            None => None,
        };
        let matcher = proxy.as_ref().map(ProxySpec::matcher).transpose()?;
        let spec = ClientSpec {
            tls: Some(tls),
            proxy,
        };
        Ok(Endpoint {
            client: build_client(spec)?,
            auth: auth(settings, &secret)?,
            ntlm,
            proxy: matcher,
            ssl_name: settings
                .ssl_config
                .as_ref()
                .map(|name| name.get_ref().clone()),
        })
    }

    /// Makes the requests [`Endpoint::deliver`] sends (NTLM's too: they are
    /// then sent on the session's own connection).
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
            None => {
                let (client, request) = request(None).build_split();
                let request = request.map_err(SendError::Http)?;
                let proxy = self.proxy_of(request.url());
                let deadline = Deadline::after(timeout);
                let sent = deadline.within(Waiting::Answer, async {
                    client.execute(request).await.map_err(SendError::Http)
                });
                match connect_deadline::scoped(deadline, sent).await {
                    Err(SendError::Http(err)) if connect_deadline::ran_out(&err) => {
                        Err(SendError::TimedOut {
                            waiting: Waiting::Connection { proxy },
                            after: timeout,
                        })
                    }
                    sent => sent.map(Answer::alone),
                }
            }
            Some(session) => session.send(request, timeout).await,
        }
    }

    /// The proxy a request to `url` goes through, if any.
    fn proxy_of(&self, url: &reqwest::Url) -> Option<String> {
        let matcher = self.proxy.as_ref()?;
        let destination: Uri = url.as_str().parse().ok()?;
        Some(matcher.intercept(&destination)?.uri().to_string())
    }

    /// Allows NTLM one more logon after the server refused the credentials:
    /// an operator replayed a dead letter.
    pub fn rearm(&self) {
        if let Some(session) = &self.ntlm {
            session.rearm();
        }
    }

    /// Why a request failed, for a log line: the cause chain, and the TLS
    /// section when one is in use.
    pub fn explain(&self, err: SendError) -> String {
        match err {
            SendError::Http(err) => self.describe(err),
            SendError::Connection(err) => {
                let mut message = error_chain(&err);
                advise(&mut message, &err);
                self.name_section(message)
            }
            other => error_chain(&other),
        }
    }

    /// What went wrong, for a log line: the cause chain, and the TLS section
    /// when one is in use.
    pub fn describe(&self, err: reqwest::Error) -> String {
        self.name_section(describe(err))
    }

    fn name_section(&self, mut message: String) -> String {
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
        error_chain(&err)
    };
    advise(&mut text, &err);
    text
}

/// Adds what to do about a certificate problem among `err`'s causes that
/// webpki's name for it does not say.
fn advise(text: &mut String, err: &(dyn std::error::Error + 'static)) {
    if CertificateProblem::of(err) == Some(CertificateProblem::CaAsServer) {
        text.push_str(CA_AS_SERVER);
    }
}

const CA_AS_SERVER: &str = " (the server's certificate is a CA certificate \
    (basicConstraints CA:TRUE), which TLS never accepts as a server's own, even \
    when ca_file pins it: make a CA, sign a server certificate with it that has \
    basicConstraints CA:FALSE, and put the CA in ca_file)";

fn auth(settings: &ConnectionSettings, secret: &SecretOf<'_>) -> Result<Auth, ClientError> {
    Ok(
        match (
            &settings.basic_user,
            &settings.basic_password,
            &settings.bearer_token,
        ) {
            (Some(_), _, Some(_)) => {
                return Err(ClientError::Combination(
                    "use basic_user or bearer_token, not both",
                ));
            }
            (Some(user), password, None) => Auth::Basic {
                user: user.clone(),
                password: match password {
                    Some(source) => secret("basic_password", source)?,
                    None => String::new().into(),
                },
            },
            (None, Some(_), _) => {
                return Err(ClientError::Combination("basic_password needs basic_user"));
            }
            (None, None, Some(token)) => Auth::Bearer(secret("bearer_token", token)?),
            (None, None, None) => Auth::None,
        },
    )
}

fn ntlm_credentials(
    settings: &ConnectionSettings,
    secret: &SecretOf<'_>,
) -> Result<Option<NtlmCredentials>, ClientError> {
    if !settings.use_ntlm_authentication {
        return match settings.ntlm_user {
            Some(_) => Err(ClientError::Combination(
                "ntlm_user is set but use_ntlm_authentication is false",
            )),
            None => Ok(None),
        };
    }
    if settings.use_ntlmv2 == Some(false) {
        return Err(ClientError::Combination(
            "use_ntlmv2 = false asks for NTLMv1, which is broken and not supported; \
             remove it (NTLMv2 is the default)",
        ));
    }
    if settings.basic_user.is_some() || settings.bearer_token.is_some() {
        return Err(ClientError::Combination(
            "use NTLM, basic_user or bearer_token, not several",
        ));
    }
    let user = settings
        .ntlm_user
        .as_deref()
        .ok_or(ClientError::Combination(
            "use_ntlm_authentication needs ntlm_user",
        ))?;
    let password = match &settings.ntlm_password {
        Some(source) => secret("ntlm_password", source)?,
        None => {
            return Err(ClientError::Combination(
                "use_ntlm_authentication needs ntlm_password",
            ));
        }
    };
    Ok(Some(NtlmCredentials::new(user, password)?))
}

fn proxy(
    settings: &ConnectionSettings,
    secret: &SecretOf<'_>,
) -> Result<Option<ProxySpec>, ClientError> {
    let Some(host) = &settings.proxy_host else {
        if settings.proxy_port.is_some() || settings.proxy_username.is_some() {
            return Err(ClientError::Combination(
                "proxy_port and proxy_username need proxy_host",
            ));
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
        (None, Some(_)) => {
            return Err(ClientError::Combination(
                "proxy_password needs proxy_username",
            ));
        }
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
