//! `[handlers.NAME]` sections: the common keys are read by `config`, the
//! `library` key picks the library, and the library reads the rest.

use toml::Spanned;
use toml::de::DeValue;

use super::library::{Library, LibrarySettings};
use crate::config::{CommonSettings, Diagnostic, Locator, Position, closest, from_value, split};

/// The key naming a section's library, then its alias.
pub const LIBRARY_KEYS: &[&str] = &["library", "LibraryName"];

/// One `[handlers.NAME]` section.
#[derive(Debug)]
pub struct HandlerSection {
    /// `NAME`: hooks name the handler by it, and logs and dead letters show it.
    pub name: String,
    /// Where the section's name is written; problems found when the handler is
    /// built are reported here.
    pub position: Position,
    /// Filters, retries and timeout: the chain applies them.
    pub common: CommonSettings,
    /// The library's own keys.
    pub library: LibrarySettings,
}

/// Parses every `[handlers.NAME]`, reporting problems of each one.
pub fn parse_all(
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
    let (common, specific) = split(table, CommonSettings::keys());
    let (named, specific) = split(specific, LIBRARY_KEYS);
    let library = named.into_iter().next().map(|(_, value)| value);
    let library = parse_library(name, library, span.clone(), locator)?;
    let common: Result<CommonSettings, _> =
        from_value(Spanned::new(span.clone(), DeValue::Table(common)));
    let common = common.map_err(|err| vec![in_handler(name, locator.toml_error(&err, &[]))])?;
    let known = [LIBRARY_KEYS, CommonSettings::keys(), Library::extra_keys()].concat();
    let fail = |err: toml::de::Error| vec![in_handler(name, locator.toml_error(&err, &known))];
    let library = LibrarySettings::read(library, specific, span).map_err(fail)?;
    Ok((common, library))
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
