//! What the config says about scripting: the `[api]` section and the memory a
//! script's state may use by default. Data only.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::values::{Bytes, Seconds};
use crate::http::settings::ConnectionSettings;

/// Keys of the `[api]` section besides the connection keys.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// The API's base URL; `client:get("path")` requests `base_url` + `path`.
    pub base_url: String,
    /// Headers sent with every API request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest an API request may take (the script's own `timeout` still
    /// bounds the whole call). Default `"30s"`.
    #[serde(default = "default_api_timeout")]
    pub timeout: Seconds,
    /// Authentication, proxy and TLS: read from the same section by
    /// `crate::setup` (the keys of `ConnectionSettings`).
    #[serde(skip)]
    pub connection: ConnectionSettings,
}

fn default_api_timeout() -> Seconds {
    Seconds(Duration::from_secs(30))
}

/// Memory a script's state may use unless its settings say otherwise.
pub fn default_memory_limit() -> Bytes {
    Bytes(32 << 20)
}
