//! What the config says about ingest besides the socket: the `[ingest]`
//! section and its `[ingest.http]` listener. Data only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::admin::socket_address;
use super::values::{Bytes, Seconds, count_between, positive_duration, size_between};

/// `[ingest]`: ways besides the socket (pipe) for events to come in.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// `[ingest.http]`: `POST /events` over HTTP. Absent: no listener.
    pub http: Option<HttpIngestSettings>,
}

/// `[ingest.http]`: events posted over HTTP(S), answered once committed.
/// Changing it needs a restart.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpIngestSettings {
    /// Address and port to listen on. Must be a loopback address unless
    /// `allow_remote = true`. Default `"127.0.0.1:9465"`.
    #[serde(default = "default_listen", deserialize_with = "socket_address")]
    pub listen: SocketAddr,
    /// Allow a non-loopback `listen` address. Default false.
    #[serde(default)]
    pub allow_remote: bool,
    /// Accept requests without a token. Only on a loopback address (any
    /// local process may then post events); default false, when a bearer
    /// token of `[[admin.tokens]]` with `events:write` is required.
    #[serde(default)]
    pub anonymous: bool,
    /// PEM certificate chain to serve HTTPS with (with `tls_key`); relative
    /// to the config's directory. Absent: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted; larger requests get 413 and none of
    /// their events is accepted. Each event within must also fit
    /// `[daemon] max_event_bytes`, and a body may hold at most 10,000
    /// events. Default `"1MiB"`, at most `"256MiB"`.
    #[serde(
        default = "default_max_body",
        deserialize_with = "size_between::<_, 1024, { 256 << 20 }>"
    )]
    pub max_body_bytes: Bytes,
    /// Connections open at once, idle ones included; more wait to be
    /// accepted. Default 64.
    #[serde(
        default = "default_max_connections",
        deserialize_with = "count_between::<_, 1, 65536>"
    )]
    pub max_connections: usize,
    /// Connections one client address may hold open at once; its next one
    /// is answered 429 at once and closed, taking no connection slot, so
    /// that one host cannot take every connection. Local clients all share
    /// the loopback address. Default 32.
    #[serde(
        default = "default_max_connections_per_address",
        deserialize_with = "count_between::<_, 1, 65536>"
    )]
    pub max_connections_per_address: usize,
    /// Requests whose body is read and whose events are answered at once
    /// (after their token is checked); more wait their turn. Bounds memory
    /// at about `max_requests` × (2 × `max_body_bytes` + 4 MiB). Default 16.
    #[serde(
        default = "default_max_requests",
        deserialize_with = "count_between::<_, 1, 4096>"
    )]
    pub max_requests: usize,
    /// Longest a client may take over each step: the TLS handshake, a
    /// request's headers (also the longest a kept-alive connection may stay
    /// idle), its body, and taking the answer. Waiting for the commit is not
    /// bounded by it: an answer always says what became of each event.
    /// Default `"10s"`.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "positive_duration"
    )]
    pub request_timeout: Seconds,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9465))
}

fn default_max_body() -> Bytes {
    Bytes(1 << 20)
}

fn default_max_connections() -> usize {
    64
}

fn default_max_connections_per_address() -> usize {
    32
}

fn default_max_requests() -> usize {
    16
}

fn default_request_timeout() -> Seconds {
    Seconds(Duration::from_secs(10))
}
