//! Settings every handler has, whatever its library, and the tools to read a
//! section whose keys belong to several structs.
//!
//! A section mixes keys every handler has (filters, retries, `library`) with
//! keys of its library. The keys are split and each part is deserialised into
//! its own struct with `deny_unknown_fields`, keeping toml's positions —
//! which serde's `flatten` and internally tagged enums would lose.

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::keys::keys_of;
use super::sections::Backoff;
use super::values::{List, Results, Seconds};

/// Settings every handler accepts (a drop-in Lua script gives them in the
/// table it returns).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonSettings {
    /// `false` skips this handler in every chain. Alias `Enabled`. Default
    /// `true`.
    #[serde(alias = "Enabled", default = "default_enabled")]
    pub enabled: bool,
    /// A name for people, shown by the admin API (`DisplayName`); logs and
    /// hooks use the section's name. Alias `DisplayName`. Default: the
    /// section's name.
    #[serde(alias = "DisplayName")]
    pub display_name: Option<String>,
    /// Only events whose `JobType` or `JobTypeId` is one of these (any case).
    /// An array or one comma-separated string. Alias `JobTypes`. Default: all.
    #[serde(alias = "JobTypes")]
    pub job_types: Option<List>,
    /// Only events whose `JobResult` is one of these (`Success`, `Warning`,
    /// `Failure`, `Unknown`). Default: all.
    pub results: Option<Results>,
    /// Only events whose `EventType` is one of these (any case). Default: all.
    pub event_types: Option<List>,
    /// Extra attempts after a failed first one. Alias `Retries`. Default 3.
    #[serde(alias = "Retries", default = "default_retries")]
    pub retries: u32,
    /// Wait before a retry, as `"5s"` or whole seconds. Alias `RetryInterval`.
    /// Default `"5s"`.
    #[serde(alias = "RetryInterval", default = "default_retry_interval")]
    pub retry_interval: Seconds,
    /// `fixed` or `exponential` (doubling, full jitter). Default `fixed`.
    #[serde(default)]
    pub backoff: Backoff,
    /// Longest wait between retries. Default `"5m"`.
    #[serde(default = "default_max_retry_interval")]
    pub max_retry_interval: Seconds,
    /// Longest one attempt may take before it counts as failed. Default `"30s"`.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
}

impl CommonSettings {
    /// The keys these settings read, with their aliases.
    pub fn keys() -> &'static [&'static str] {
        keys_of::<CommonSettings>()
    }
}

fn default_enabled() -> bool {
    true
}
fn default_retries() -> u32 {
    3
}
fn default_retry_interval() -> Seconds {
    Seconds(std::time::Duration::from_secs(5))
}
fn default_max_retry_interval() -> Seconds {
    Seconds(std::time::Duration::from_secs(300))
}
fn default_timeout() -> Seconds {
    Seconds(std::time::Duration::from_secs(30))
}

/// The entries of `table` whose key is in `keys`, and the others.
pub fn split<'a>(table: DeTable<'a>, keys: &[&str]) -> (DeTable<'a>, DeTable<'a>) {
    table
        .into_iter()
        .partition(|(key, _)| keys.contains(&key.get_ref().as_ref()))
}

/// Deserialises a spanned toml value, keeping positions in errors.
pub fn from_value<'de, T: Deserialize<'de>>(
    value: Spanned<DeValue<'de>>,
) -> Result<T, toml::de::Error> {
    T::deserialize(toml::de::ValueDeserializer::from(value))
}
