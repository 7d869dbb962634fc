//! `[ingest]` as `setup` reads it: the section, then what crosses its keys
//! and `[admin]`'s tokens.

use toml::Spanned;
use toml::de::DeValue;

use crate::config::{
    AdminSettings, Diagnostic, HttpIngestSettings, IngestSettings, Locator, Permission, from_value,
};

/// `[ingest.http]`: reachable from elsewhere only when asked for, anonymous
/// only where only this host can reach it, and with someone able to post.
pub(super) fn parse_ingest(
    table: Spanned<DeValue<'_>>,
    admin: Option<&AdminSettings>,
    locator: &Locator<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<HttpIngestSettings> {
    let span = Some(table.span());
    let http = match from_value::<IngestSettings>(table) {
        Ok(ingest) => ingest.http?,
        Err(err) => {
            diagnostics.push(locator.toml_error(&err, &[]));
            return None;
        }
    };
    let mut error = |message: String| diagnostics.push(locator.error(span.clone(), message));
    let loopback = http.listen.ip().is_loopback();
    if !loopback && !http.allow_remote {
        error(format!(
            "[ingest.http] listen = \"{}\" is not a loopback address; set allow_remote = true \
             to take events from other hosts",
            http.listen
        ));
    }
    if http.anonymous && !loopback {
        error(format!(
            "[ingest.http] anonymous = true is only allowed on a loopback address, not {}; \
             give the senders a token with `events:write` in [[admin.tokens]]",
            http.listen
        ));
    }
    if http.tls_cert.is_some() != http.tls_key.is_some() {
        error("[ingest.http] tls_cert and tls_key go together".to_owned());
    }
    let writers = admin.map_or(0, |admin| {
        let may_write = |token: &&crate::config::TokenSettings| {
            token.permissions.contains(&Permission::EventsWrite)
        };
        admin.tokens.iter().filter(may_write).count()
    });
    if !http.anonymous && writers == 0 {
        error(
            "[ingest.http] takes a bearer token with the permission `events:write`, and no \
             [[admin.tokens]] entry has it; add one, or set anonymous = true (loopback only)"
                .to_owned(),
        );
    }
    if !loopback && http.tls_cert.is_none() {
        diagnostics.push(locator.position(span).warning(format!(
            "[ingest.http] listens on {} without tls_cert/tls_key: tokens and events cross \
                 the network in clear text",
            http.listen
        )));
    }
    Some(http)
}
