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
use super::values::{List, Seconds};
use crate::handlers::{Library, http, text_file};

/// Keys of [`CommonSettings`], with their aliases.
const COMMON_KEYS: &[&str] = &[
    "library",
    "LibraryName",
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

/// Settings every handler accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonSettings {
    /// The built-in handler: `TextFileHandler` or `HttpHandler`. Alias `LibraryName`.
    #[serde(alias = "LibraryName")]
    pub library: Spanned<String>,
    /// `false` skips this handler in every chain. Default `true`.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Only events whose `JobType` or `JobTypeId` is one of these (any case).
    /// An array or one comma-separated string. Alias `JobTypes`. Default: all.
    #[serde(alias = "JobTypes")]
    pub job_types: Option<List>,
    /// Only events whose `JobResult` is one of these. Default: all.
    pub results: Option<Spanned<List>>,
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
#[derive(Debug)]
pub enum LibrarySettings {
    TextFile(text_file::Settings),
    Http(Box<http::Settings>),
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
    let (common, specific): (DeTable<'_>, DeTable<'_>) = table
        .into_iter()
        .partition(|(key, _)| COMMON_KEYS.contains(&key.get_ref().as_ref()));
    let common: Result<CommonSettings, _> =
        from_value(Spanned::new(span.clone(), DeValue::Table(common)));
    let common = common.map_err(|err| vec![in_handler(name, locator.toml_error(&err, &[]))])?;
    let library = Library::parse(common.library.get_ref()).ok_or_else(|| {
        let given = common.library.get_ref();
        let mut message = format!(
            "handler `{name}`: unknown library `{given}`; expected one of {}",
            Library::NAMES.join(", ")
        );
        if let Some(hint) = closest(given, Library::NAMES.iter().copied()) {
            message.push_str(&format!("; did you mean `{hint}`?"));
        }
        vec![locator.error(Some(common.library.span()), message)]
    })?;
    let specific = Spanned::new(span, DeValue::Table(specific));
    let library = match library {
        Library::TextFile => from_value(specific).map(LibrarySettings::TextFile),
        Library::Http => from_value(specific).map(|s| LibrarySettings::Http(Box::new(s))),
    }
    .map_err(|err| vec![in_handler(name, locator.toml_error(&err, COMMON_KEYS))])?;
    let mut problems = Vec::new();
    if let Some(results) = &common.results {
        for result in &results.get_ref().0 {
            if crate::event::JobResult::parse(result).is_none() {
                problems.push(locator.error(
                    Some(results.span()),
                    format!("handler `{name}`: results: `{result}` is not Success, Warning, Failure or Unknown"),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok((common, library))
    } else {
        Err(problems)
    }
}

fn in_handler(name: &str, mut diagnostic: Diagnostic) -> Diagnostic {
    diagnostic.message = format!("handler `{name}`: {}", diagnostic.message);
    diagnostic
}
