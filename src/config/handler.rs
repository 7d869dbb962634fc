//! `[handlers.NAME]` sections.
//!
//! A section mixes keys every handler has (filters, retries, `library`) with
//! keys of its library. The keys are split in two and each half is
//! deserialised into its own struct with `deny_unknown_fields`, keeping toml's
//! positions — which serde's `flatten` and internally tagged enums would lose.

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Diagnostic, Locator, Position, closest};
use super::from_value;
use super::sections::Backoff;
use super::values::{List, Results, Seconds};
use crate::handlers::{Library, http, lua, text_file};
use crate::http::endpoint::CONNECTION_KEYS;

/// The key naming a section's library, with its alias.
const LIBRARY_KEYS: &[&str] = &["library", "LibraryName"];

/// Keys of [`CommonSettings`], with their aliases.
pub const COMMON_KEYS: &[&str] = &[
    "enabled",
    "job_types",
    "JobTypes",
    "results",
    "event_types",
    "retries",
    "Retries",
    "retry_interval",
    "RetryInterval",
    "backoff",
    "max_retry_interval",
    "timeout",
];

/// One `[handlers.NAME]` section.
#[derive(Debug)]
pub struct HandlerSection {
    pub name: String,
    /// Where the section's name is written; problems found when the handler is
    /// built are reported here.
    pub position: Position,
    pub common: CommonSettings,
    pub library: LibrarySettings,
}

/// Settings every handler accepts (a drop-in Lua script gives them in the
/// table it returns).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonSettings {
    /// `false` skips this handler in every chain. Default `true`.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
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

/// The library-specific half of a section.
#[derive(Debug, PartialEq)]
pub enum LibrarySettings {
    TextFile(text_file::Settings),
    Http(Box<http::Settings>),
    Lua(lua::Settings),
}

/// Parses every `[handlers.NAME]`, reporting problems of each one.
pub(super) fn parse_all(
    table: Spanned<DeValue<'_>>,
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<HandlerSection> {
    let span = table.span();
    let DeValue::Table(table) = table.into_inner() else {
        diagnostics.push(locator.error(
            Some(span),
            "`handlers` must be a table of [handlers.NAME] sections",
        ));
        return Vec::new();
    };
    let mut sections = Vec::new();
    for (name, value) in table {
        match parse_one(name.get_ref(), value, locator) {
            Ok((common, library)) => sections.push(HandlerSection {
                name: name.get_ref().to_string(),
                position: locator.position(Some(name.span())),
                common,
                library,
            }),
            Err(problems) => diagnostics.extend(problems),
        }
    }
    sections
}

fn parse_one(
    name: &str,
    value: Spanned<DeValue<'_>>,
    locator: &Locator<'_>,
) -> Result<(CommonSettings, LibrarySettings), Vec<Diagnostic>> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        return Err(vec![
            locator.error(Some(span), format!("handler `{name}` must be a table")),
        ]);
    };
    let (common, specific) = split(table, COMMON_KEYS);
    let (named, specific) = split(specific, LIBRARY_KEYS);
    let library = named.into_iter().next().map(|(_, value)| value);
    let library = parse_library(name, library, span.clone(), locator)?;
    let common: Result<CommonSettings, _> =
        from_value(Spanned::new(span.clone(), DeValue::Table(common)));
    let common = common.map_err(|err| vec![in_handler(name, locator.toml_error(&err, &[]))])?;
    let known = [LIBRARY_KEYS, COMMON_KEYS, CONNECTION_KEYS].concat();
    let fail = |err: toml::de::Error| vec![in_handler(name, locator.toml_error(&err, &known))];
    let library = match library {
        Library::TextFile => {
            from_value(Spanned::new(span, DeValue::Table(specific))).map(LibrarySettings::TextFile)
        }
        Library::Http => {
            let (connection, request) = split(specific, CONNECTION_KEYS);
            let mut settings: http::Settings =
                from_value(Spanned::new(span.clone(), DeValue::Table(request))).map_err(fail)?;
            settings.connection =
                from_value(Spanned::new(span, DeValue::Table(connection))).map_err(fail)?;
            Ok(LibrarySettings::Http(Box::new(settings)))
        }
        Library::Lua => {
            from_value(Spanned::new(span, DeValue::Table(specific))).map(LibrarySettings::Lua)
        }
    }
    .map_err(fail)?;
    Ok((common, library))
}

/// The entries of `table` whose key is in `keys`, and the others.
pub(super) fn split<'a>(table: DeTable<'a>, keys: &[&str]) -> (DeTable<'a>, DeTable<'a>) {
    table
        .into_iter()
        .partition(|(key, _)| keys.contains(&key.get_ref().as_ref()))
}

/// The library a section names, or why it names none.
fn parse_library(
    name: &str,
    value: Option<Spanned<DeValue<'_>>>,
    section: std::ops::Range<usize>,
    locator: &Locator<'_>,
) -> Result<Library, Vec<Diagnostic>> {
    let Some(value) = value else {
        return Err(vec![locator.error(
            Some(section),
            format!("handler `{name}`: missing field `library`"),
        )]);
    };
    let span = value.span();
    let DeValue::String(given) = value.get_ref() else {
        return Err(vec![locator.error(
            Some(span),
            format!("handler `{name}`: `library` must be a string"),
        )]);
    };
    Library::parse(given).ok_or_else(|| {
        let mut message = format!(
            "handler `{name}`: unknown library `{given}`; expected one of {}",
            Library::NAMES.join(", ")
        );
        if let Some(hint) = closest(given, Library::NAMES.iter().copied()) {
            message.push_str(&format!("; did you mean `{hint}`?"));
        }
        vec![locator.error(Some(span), message)]
    })
}

fn in_handler(name: &str, mut diagnostic: Diagnostic) -> Diagnostic {
    diagnostic.message = format!("handler `{name}`: {}", diagnostic.message);
    diagnostic
}
