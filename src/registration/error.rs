//! What can go wrong when handlers are read or changed, each kind with the
//! HTTP status the admin API answers it with.

use std::path::PathBuf;

use crate::config::read::ReadError;

/// Why a handler could not be shown or changed. Messages name the field,
/// handler or file, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The registration's JSON has the wrong shape (400).
    #[error("`{field}`: {reason}")]
    BadRequest { field: String, reason: String },
    /// No handler has this name (404).
    #[error("no handler named `{name}`")]
    NotFound { name: String },
    /// A handler of this name exists already (409).
    #[error("a handler named `{name}` exists already")]
    Exists { name: String },
    /// The handler is a drop-in script: it is changed by editing or removing
    /// the script, not through the config (409).
    #[error(
        "handler `{name}` is a drop-in script of scripts_dir; edit or remove the script to change it"
    )]
    DropIn { name: String },
    /// The file changed since the config the change was made on was read:
    /// writing would lose that edit (409).
    #[error("{} changed since it was read; read it again and retry", file.display())]
    Changed { file: PathBuf },
    /// The changed config would not load; nothing was written (422). Each
    /// problem is printed `FILE:LINE:COL: severity: message`.
    #[error("the change would make the config invalid:\n{}", problems.join("\n"))]
    Invalid { problems: Vec<String> },
    /// The config file could not be read again (500).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing the config file failed (500).
    #[error("cannot {action} {}", file.display())]
    Io {
        action: &'static str,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RegistrationError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            RegistrationError::BadRequest { .. } => 400,
            RegistrationError::NotFound { .. } => 404,
            RegistrationError::Exists { .. }
            | RegistrationError::DropIn { .. }
            | RegistrationError::Changed { .. } => 409,
            RegistrationError::Invalid { .. } => 422,
            RegistrationError::Read(_) | RegistrationError::Io { .. } => 500,
        }
    }

    pub(super) fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RegistrationError::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
