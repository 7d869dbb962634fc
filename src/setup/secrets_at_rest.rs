//! Secrets at rest: a secret every user of the machine can read is no
//! secret. Each load warns when the config file holds a secret written in
//! it, or a secret is read from a file (`{ file = "…" }`, an `[ssl.NAME]`
//! `client_key`, `[ingest.http] tls_key`), and that file is readable by
//! everyone (Unix mode `o+r`):
//! handlers', `[api]`'s and sources' credentials and the admin API's tokens.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Config;
use crate::config::values::SecretSource;
use crate::config::{Diagnostic, Position};

/// One warning per file: what it holds and how to close it.
pub(super) fn warnings(config: &Config) -> Vec<Diagnostic> {
    let top = Position {
        file: config.file.clone(),
        line: 1,
        column: 1,
    };
    let mut secrets: Vec<(String, &Position, &SecretSource)> = Vec::new();
    for handler in &config.handlers {
        for (key, source) in handler.library.secrets() {
            let owner = format!("handler `{}` {key}", handler.name);
            secrets.push((owner, &handler.position, source));
        }
    }
    if let Some(api) = &config.api {
        for (key, source) in api.connection.secrets() {
            secrets.push((format!("[api] {key}"), &top, source));
        }
    }
    for source in &config.sources {
        for (key, secret) in source.job_history.connection.secrets() {
            let owner = format!("[sources.{}] {key}", source.name);
            secrets.push((owner, &source.position, secret));
        }
    }
    for token in config.admin.iter().flat_map(|admin| &admin.tokens) {
        let owner = format!("[[admin.tokens]] `{}` token", token.name);
        secrets.push((owner, &top, &token.token));
    }
    let mut diagnostics = Vec::new();
    let written: Vec<&str> = secrets
        .iter()
        .filter(|(_, _, source)| matches!(source, SecretSource::Literal(_)))
        .map(|(owner, _, _)| owner.as_str())
        .collect();
    if let (Some(mode), false) = (readable_by_everyone(&config.file), written.is_empty()) {
        let file = config.file.display();
        diagnostics.push(top.warning(format!(
            "{file} holds secrets written in it ({}) and everyone can read it (mode {mode:o}): \
             chmod 640 {file} (or 600), or read them from {{ env = \"NAME\" }} or \
             {{ file = \"path\" }}",
            written.join(", ")
        )));
    }
    let mut files: Vec<(String, &Position, PathBuf)> = secrets
        .iter()
        .filter_map(|(owner, position, source)| {
            Some((owner.clone(), *position, source.file(&config.dir)?))
        })
        .collect();
    for (name, ssl) in &config.ssl {
        if let Some(key) = &ssl.client_key {
            files.push((
                format!("[ssl.{name}] client_key"),
                &top,
                config.dir.join(key),
            ));
        }
    }
    if let Some(key) = config
        .http_ingest
        .as_ref()
        .and_then(|http| http.tls_key.clone())
    {
        files.push(("[ingest.http] tls_key".to_owned(), &top, key));
    }
    let mut warned = BTreeSet::new();
    for (owner, position, path) in files {
        let Some(mode) = readable_by_everyone(&path) else {
            continue;
        };
        if warned.insert(path.clone()) {
            let path = path.display();
            diagnostics.push(position.warning(format!(
                "{owner}: the secret file {path} is readable by everyone (mode {mode:o}): \
                 chmod 600 {path} (or 640, group-readable by the daemon's group)"
            )));
        }
    }
    diagnostics
}

/// The file's permission bits, if everyone may read it.
#[cfg(unix)]
fn readable_by_everyone(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then_some(mode)
}

/// Windows files have ACLs, not a mode: nothing to say here.
#[cfg(not(unix))]
fn readable_by_everyone(_: &Path) -> Option<u32> {
    None
}
