//! A candidate config checked before anything is written: parsed,
//! validated and its pipeline built as a whole (secrets resolved, clients
//! built, scripts compiled, drop-ins read). Handler changes touch only
//! handlers and hooks, so the `[admin]` tokens and sources `jobhook check`
//! also builds are left as they run.

use std::path::Path;

use super::RegistrationError;
use crate::chain::Pipeline;
use crate::config::Diagnostic;
use crate::setup;

/// Checks `candidate` as the content of `file` (which names it in problems
/// and anchors its relative paths). Blocking: it builds every handler, so
/// call it off the runtime (`spawn_blocking`).
pub fn validate(candidate: &str, file: &Path) -> Result<(), RegistrationError> {
    let loaded = setup::parse(candidate, file);
    let mut problems = loaded.diagnostics;
    if let Some(config) = &loaded.config {
        match Pipeline::build(config) {
            Ok((_, warnings)) => problems.extend(warnings),
            Err(errors) => problems.extend(errors),
        }
    }
    if loaded.config.is_some() && !problems.iter().any(Diagnostic::is_error) {
        return Ok(());
    }
    Err(RegistrationError::Invalid {
        problems: problems.iter().map(Diagnostic::to_string).collect(),
    })
}
