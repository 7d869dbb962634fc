//! What the config says about the admin API: the `[admin]` section and its
//! `[[admin.tokens]]`. Data only.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::values::{Bytes, Seconds, SecretSource};

/// `[admin]`: the HTTP admin API, `/health` and `/metrics`. Absent: no
/// listener. Changing it needs a restart.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Address and port to listen on, e.g. `"127.0.0.1:9464"`. Must be a
    /// loopback address unless `allow_remote = true`.
    #[serde(deserialize_with = "socket_address")]
    pub listen: SocketAddr,
    /// Allow a non-loopback `listen` address (put TLS in front of it: the
    /// API speaks plain HTTP). Default false.
    #[serde(default)]
    pub allow_remote: bool,
    /// Largest request body accepted; larger requests get 413. Default
    /// `"1MiB"`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: Bytes,
    /// Longest a request may take (a registration or reload waits for the
    /// new config to serve); `GET /events` streams are not bound by it.
    /// Default `"30s"`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Seconds,
    /// Who may call the API, and what each may do.
    #[serde(default)]
    pub tokens: Vec<TokenSettings>,
}

/// One `[[admin.tokens]]` entry: a bearer token and what it is allowed.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Who holds the token; written to the log beside each change it makes
    /// (the token itself never is).
    pub name: String,
    /// The bearer token: a string, `{ env = "NAME" }` or `{ file = "path" }`.
    pub token: SecretSource,
    /// What the token may do: `handlers:read`, `handlers:modify`,
    /// `deadletter:read`, `deadletter:modify`, `reload`, `events:read`,
    /// `events:write`.
    pub permissions: Vec<Permission>,
}

/// One thing a token may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Permission {
    #[serde(rename = "handlers:read")]
    HandlersRead,
    #[serde(rename = "handlers:modify")]
    HandlersModify,
    #[serde(rename = "deadletter:read")]
    DeadletterRead,
    #[serde(rename = "deadletter:modify")]
    DeadletterModify,
    #[serde(rename = "reload")]
    Reload,
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "events:write")]
    EventsWrite,
}

impl Permission {
    /// As written in the config and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Permission::HandlersRead => "handlers:read",
            Permission::HandlersModify => "handlers:modify",
            Permission::DeadletterRead => "deadletter:read",
            Permission::DeadletterModify => "deadletter:modify",
            Permission::Reload => "reload",
            Permission::EventsRead => "events:read",
            Permission::EventsWrite => "events:write",
        }
    }
}

fn default_max_body() -> Bytes {
    Bytes(1 << 20)
}

fn default_request_timeout() -> Seconds {
    Seconds(Duration::from_secs(30))
}

pub(super) fn socket_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "expected an address and port such as \"127.0.0.1:9464\" or \"[::1]:9464\", not {text:?}"
        ))
    })
}
