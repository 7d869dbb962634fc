//! What the config says about outgoing HTTP: `[ssl.NAME]` sections and the
//! connection keys (authentication, proxy, TLS section) that `HttpHandler`
//! sections, `[api]` and `[sources.*]` share. Data only: the clients are
//! built in `endpoint` and `tls`.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::config::keys_of;
use crate::config::values::{List, SecretSource};

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

impl ConnectionSettings {
    /// The keys these settings read, with their aliases: a section's keys
    /// are split on these before each half is read.
    pub fn keys() -> &'static [&'static str] {
        keys_of::<ConnectionSettings>()
    }

    /// The secrets these settings hold, by key.
    pub fn secrets(&self) -> impl Iterator<Item = (&'static str, &SecretSource)> {
        [
            ("basic_password", &self.basic_password),
            ("bearer_token", &self.bearer_token),
            ("ntlm_password", &self.ntlm_password),
            ("proxy_password", &self.proxy_password),
        ]
        .into_iter()
        .filter_map(|(key, source)| Some((key, source.as_ref()?)))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyScheme {
    #[default]
    Http,
    Https,
    Socks5,
}

/// One `[ssl.NAME]` section, named by a handler's `ssl_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslSettings {
    /// PEM file of CA certificates to trust, in addition to the system's
    /// (or instead of them with `ca_only = true`).
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system's roots. Default `false`.
    #[serde(default)]
    pub ca_only: bool,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Lowest TLS version accepted: `"1.2"` or `"1.3"`. Default `"1.2"`.
    #[serde(default)]
    pub min_tls_version: TlsVersion,
    /// Accept any server certificate, even an invalid one. For tests only:
    /// it removes the protection TLS gives. Default `false`.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}
