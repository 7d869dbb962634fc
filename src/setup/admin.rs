//! `[admin]` as `setup` reads it: the section, then what crosses its keys.

use std::collections::HashSet;

use toml::Spanned;
use toml::de::DeValue;

use crate::config::{AdminSettings, Diagnostic, Locator, from_value};

/// `[admin]`: a listener reachable from elsewhere only when asked for, and
/// token names that tell their holders apart in the log.
pub(super) fn parse_admin(
    table: Spanned<DeValue<'_>>,
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<AdminSettings> {
    let span = table.span();
    let admin = match from_value::<AdminSettings>(table) {
        Ok(admin) => admin,
        Err(err) => {
            diagnostics.push(locator.toml_error(&err, &[]));
            return None;
        }
    };
    if !admin.listen.ip().is_loopback() && !admin.allow_remote {
        diagnostics.push(locator.error(
            Some(span.clone()),
            format!(
                "[admin] listen = \"{}\" is not a loopback address; set allow_remote = true \
                 to serve the admin API to other hosts",
                admin.listen
            ),
        ));
    }
    let mut names = HashSet::new();
    for token in &admin.tokens {
        if !names.insert(token.name.as_str()) {
            diagnostics.push(locator.error(
                Some(span.clone()),
                format!(
                    "[[admin.tokens]] name `{}` is used twice; the log tells tokens apart by name",
                    token.name
                ),
            ));
        }
    }
    Some(admin)
}
