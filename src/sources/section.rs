//! Reading `[sources.NAME]` sections: the `type` key picks the kind of
//! source, its own keys and the connection keys are each read on their own,
//! and every problem keeps its position.

use toml::Spanned;
use toml::de::DeValue;

use super::settings::{JobHistorySettings, SourceSection};
use crate::config::{Diagnostic, Locator, closest, from_value, split};
use crate::http::settings::ConnectionSettings;

/// The kinds of source, as `type` names them.
const TYPES: &[&str] = &["keyfactor_job_history"];

/// Parses every `[sources.NAME]`, reporting problems of each one.
pub fn parse_all(
    table: Spanned<DeValue<'_>>,
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<SourceSection> {
    let span = table.span();
    let DeValue::Table(table) = table.into_inner() else {
        diagnostics.push(locator.error(
            Some(span),
            "`sources` must be a table of [sources.NAME] sections",
        ));
        return Vec::new();
    };
    let mut sections = Vec::new();
    for (name, value) in table {
        match parse_one(name.get_ref(), value, locator) {
            Ok(job_history) => sections.push(SourceSection {
                name: name.get_ref().to_string(),
                position: locator.position(Some(name.span())),
                job_history,
            }),
            Err(problem) => diagnostics.push(problem),
        }
    }
    sections
}

fn parse_one(
    name: &str,
    value: Spanned<DeValue<'_>>,
    locator: &Locator<'_>,
) -> Result<JobHistorySettings, Diagnostic> {
    let in_source = |mut diagnostic: Diagnostic| {
        diagnostic.message = format!("source `{name}`: {}", diagnostic.message);
        diagnostic
    };
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        return Err(locator.error(Some(span), format!("source `{name}` must be a table")));
    };
    let (kind, rest) = split(table, &["type"]);
    match kind.into_iter().next().map(|(_, value)| value) {
        None => {
            return Err(in_source(locator.error(
                Some(span),
                format!("missing field `type` (one of {})", TYPES.join(", ")),
            )));
        }
        Some(value) => check_type(&value, locator).map_err(in_source)?,
    }
    let (connection, own) = split(rest, ConnectionSettings::keys());
    let settings =
        from_value::<JobHistorySettings>(Spanned::new(span.clone(), DeValue::Table(own))).and_then(
            |mut settings| {
                settings.connection = from_value(Spanned::new(span, DeValue::Table(connection)))?;
                Ok(settings)
            },
        );
    let known = [&["type"], ConnectionSettings::keys()].concat();
    settings.map_err(|err| in_source(locator.toml_error(&err, &known)))
}

/// `type` must name a kind of source.
fn check_type(value: &Spanned<DeValue<'_>>, locator: &Locator<'_>) -> Result<(), Diagnostic> {
    let DeValue::String(given) = value.get_ref() else {
        return Err(locator.error(Some(value.span()), "`type` must be a string"));
    };
    if TYPES.contains(&given.as_ref()) {
        return Ok(());
    }
    let mut message = format!(
        "unknown type `{given}`; expected one of {}",
        TYPES.join(", ")
    );
    if let Some(hint) = closest(given, TYPES.iter().copied()) {
        message.push_str(&format!("; did you mean `{hint}`?"));
    }
    Err(locator.error(Some(value.span()), message))
}
