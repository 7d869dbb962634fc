//! Lua scripting (Lua 5.4): sandboxed states, the API scripts call, the pool
//! of states that runs a script, and drop-in scripts that join chains.
//!
//! A script is compiled once per build and run by a small pool of states, so
//! several events can run one script at once; events of one job still reach
//! it in order (the chain awaits each call). Each state lives on a thread of
//! its own (`pool`), never on the daemon's runtime: a busy or stuck script
//! can delay only its own calls, and a call past its deadline is abandoned
//! with its state, without anything waiting for its thread.

mod api;
pub(crate) mod convert;
pub mod drop_in;
mod guards;
pub mod pool;
mod response;
mod sandbox;
pub mod settings;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use pool::{ScriptPool, ScriptSpec};
pub use settings::ApiSettings;

use crate::config::{Diagnostic, Position};
use crate::http;

/// What every script of one build shares.
#[derive(Debug, Clone)]
pub struct Scripting {
    api: Option<Arc<api::ApiClient>>,
    http: reqwest::Client,
    scripts_dir: PathBuf,
}

/// Why what scripts share cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ScriptingError {
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error("the client for scripts' http.request")]
    Client(#[from] http::ClientError),
}

/// Most states (threads) one script gets: how many of its calls may be under
/// way at once. They are started as calls overlap: a script run by the
/// workers alone never has more than `workers`; one that makes requests runs
/// as tasks and may use them all.
pub const MAX_STATES: usize = 16;

impl Scripting {
    /// Builds the `[api]` client; scripts live in `scripts_dir`.
    pub fn new(
        api: Option<&ApiSettings>,
        http: http::Context<'_>,
        scripts_dir: &Path,
    ) -> Result<Scripting, ScriptingError> {
        let api = match api {
            Some(settings) => Some(Arc::new(api::ApiClient::new(settings, http)?)),
            None => None,
        };
        Ok(Scripting {
            api,
            http: http::build_client(Default::default())?,
            scripts_dir: scripts_dir.to_owned(),
        })
    }

    /// A script named in a section, which is relative to `scripts_dir`.
    pub fn script_path(&self, script: &Path) -> PathBuf {
        self.scripts_dir.join(script)
    }

    fn env(&self, handler: &str, allow_env: &[String], memory_limit: u64) -> api::ScriptEnv {
        api::ScriptEnv {
            handler: handler.to_owned(),
            allow_env: allow_env.to_vec(),
            api: self.api.clone(),
            http: self.http.clone(),
            max_body: memory_limit,
            networked: Arc::default(),
        }
    }
}

/// What the scripts folder holds: every file's path, size and modification
/// time. Two equal fingerprints mean no script changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, u64, Option<std::time::SystemTime>)>);

impl Fingerprint {
    pub fn of(dir: &Path) -> Fingerprint {
        let mut files = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                if metadata.is_dir() {
                    pending.push(entry.path());
                } else {
                    files.push((entry.path(), metadata.len(), metadata.modified().ok()));
                }
            }
        }
        files.sort();
        Fingerprint(files)
    }
}

/// Limits and permissions of one script.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_limit: u64,
    pub allow_env: Vec<String>,
}

/// The problem as the script's author needs it: message without the Lua
/// traceback, and the innermost cause of a callback error.
pub fn describe(err: &mlua::Error) -> String {
    match err {
        mlua::Error::CallbackError { cause, .. } => describe(cause),
        mlua::Error::WithContext { cause, .. } => describe(cause),
        mlua::Error::RuntimeError(message) | mlua::Error::SyntaxError { message, .. } => {
            first_part(message)
        }
        mlua::Error::MemoryError(_) => "memory_limit exceeded".to_owned(),
        other => first_part(&other.to_string()),
    }
}

fn first_part(message: &str) -> String {
    message
        .split("\nstack traceback:")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A script problem found while building, at the script's line when Lua
/// names one (`path:LINE: message`).
pub fn script_diagnostic(path: &Path, err: &mlua::Error) -> Diagnostic {
    let message = describe(err);
    let prefix = format!("{}:", path.display());
    let located = message.strip_prefix(&prefix).and_then(|rest| {
        let (line, text) = rest.split_once(':')?;
        Some((line.parse::<usize>().ok()?, text.trim().to_owned()))
    });
    let (line, text) = located.unwrap_or((1, message));
    Position {
        file: path.to_owned(),
        line,
        column: 1,
    }
    .error(text)
}
