//! Why a client for a destination cannot be built from its settings. Each
//! error names the key or section at fault and keeps its cause.

use super::tls::TlsError;
use crate::config::values::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("ssl_config: there is no [ssl.{0}] section")]
    NoSslSection(String),
    #[error("{key}")]
    Secret {
        key: &'static str,
        #[source]
        source: SecretError,
    },
    /// Keys that do not go together, or one that needs another.
    #[error("{0}")]
    Combination(&'static str),
    #[error("ntlm_user {user:?}: write DOMAIN\\user or user@domain")]
    NtlmUser {
        user: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("proxy {0}: not a URL with a host")]
    ProxyUrl(String),
    #[error("proxy {url}")]
    Proxy {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    #[error("headers: {name:?} is not a valid header name")]
    HeaderName {
        name: String,
        #[source]
        source: reqwest::header::InvalidHeaderName,
    },
    #[error("headers: the value of {name} is not a valid header value")]
    HeaderValue {
        name: String,
        #[source]
        source: reqwest::header::InvalidHeaderValue,
    },
}
