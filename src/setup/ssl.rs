//! What crosses `[ssl.NAME]` sections and their users: every name used
//! is defined, and a section that verifies nothing is said so.

use std::collections::BTreeMap;

use crate::config::{Diagnostic, Locator, closest};
use crate::handlers::HandlerSection;
use crate::http::SslSettings;
use crate::lua::ApiSettings;
use crate::sources::settings::SourceSection;

/// Every `ssl_config` must name an `[ssl.NAME]` section.
pub(super) fn check_ssl_names(
    ssl: &BTreeMap<String, SslSettings>,
    handlers: &[HandlerSection],
    api: Option<&ApiSettings>,
    sources: &[SourceSection],
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let users = handlers
        .iter()
        .filter_map(|handler| {
            let name = handler.library.ssl_config()?;
            Some((format!("handler `{}`", handler.name), name))
        })
        .chain(api.and_then(|api| {
            let name = api.connection.ssl_config.as_ref()?;
            Some(("[api]".to_owned(), name))
        }))
        .chain(sources.iter().filter_map(|source| {
            let name = source.job_history.connection.ssl_config.as_ref()?;
            Some((format!("source `{}`", source.name), name))
        }));
    for (user, name) in users {
        if !ssl.contains_key(name.get_ref()) {
            let mut message = format!(
                "{user}: ssl_config names [ssl.{}], which is not defined",
                name.get_ref()
            );
            if let Some(hint) = closest(name.get_ref(), ssl.keys().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            diagnostics.push(locator.error(Some(name.span()), message));
        }
    }
}

/// `accept_invalid_certs = true` turns TLS into encryption without
/// authentication: said at every load, so `check` and the log at start show it.
pub(super) fn warn_unverified(
    ssl: &BTreeMap<String, SslSettings>,
    text: &str,
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (name, settings) in ssl {
        if settings.accept_invalid_certs {
            // The section's header, when it is written as one.
            let header = text.find(&format!("[ssl.{name}]"));
            diagnostics.push(
                locator
                    .position(header.map(|start| start..start))
                    .warning(format!(
                        "[ssl.{name}] accept_invalid_certs = true: server certificates are NOT \
                     verified; anyone on the path can read and change these requests"
                    )),
            );
        }
    }
}
