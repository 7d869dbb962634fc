//! Secrets in `handlers.toml`: written in, or read from an environment
//! variable or a file when the config is built, and never printed.

use std::fmt;
use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

use crate::config::read::{MAX_FILE_BYTES, ReadError, read_regular_text};

/// Where a secret comes from. The value is read only when the config is built,
/// and never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, { env = \"NAME\" } or { file = \"path\" }"
)]
pub enum SecretSource {
    Literal(String),
    Env {
        /// Name of the environment variable that holds the secret.
        env: String,
    },
    File {
        /// File whose content (trailing newline removed) is the secret.
        file: String,
    },
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Literal(_) => f.write_str("Literal([REDACTED])"),
            SecretSource::Env { env } => write!(f, "Env({env})"),
            SecretSource::File { file } => write!(f, "File({file})"),
        }
    }
}

impl SecretSource {
    /// The file the secret is read from, when it is read from a file.
    pub fn file(&self, config_dir: &Path) -> Option<std::path::PathBuf> {
        match self {
            SecretSource::File { file } => Some(config_dir.join(file)),
            SecretSource::Literal(_) | SecretSource::Env { .. } => None,
        }
    }

    /// Reads the secret. Errors name where it was looked for, never its
    /// value; an empty secret is an error (a variable set to nothing, a file
    /// truncated by mistake).
    pub fn resolve(&self, config_dir: &Path) -> Result<SecretString, SecretError> {
        let value = match self {
            SecretSource::Literal(value) => return Ok(value.clone().into()),
            SecretSource::Env { env } => {
                let value = std::env::var(env).map_err(|source| match source {
                    std::env::VarError::NotPresent => SecretError::Unset { name: env.clone() },
                    source => SecretError::Env {
                        name: env.clone(),
                        source,
                    },
                })?;
                if value.is_empty() {
                    return Err(SecretError::EmptyEnv { name: env.clone() });
                }
                value
            }
            SecretSource::File { file } => {
                let path = config_dir.join(file);
                let text = read_regular_text(&path, MAX_FILE_BYTES).map_err(SecretError::File)?;
                let value = text.trim_end_matches(['\r', '\n']).to_owned();
                if value.is_empty() {
                    return Err(SecretError::EmptyFile { path });
                }
                value
            }
        };
        Ok(value.into())
    }
}

/// Why a secret could not be read. It names where the secret was looked
/// for, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {name} is not set")]
    Unset { name: String },
    #[error("environment variable {name}")]
    Env {
        name: String,
        #[source]
        source: std::env::VarError,
    },
    #[error("environment variable {name} is empty")]
    EmptyEnv { name: String },
    #[error("secret file")]
    File(#[source] ReadError),
    #[error("secret file {} is empty", path.display())]
    EmptyFile { path: std::path::PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::tests::parse;

    #[test]
    fn secrets_resolve_without_leaking() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pass"), "s3cret\n").unwrap();
        let from_file = parse::<SecretSource>("{ file = \"pass\" }").unwrap();
        assert_eq!(
            from_file.resolve(dir.path()).unwrap().expose_secret(),
            "s3cret"
        );
        let literal = parse::<SecretSource>("\"hunter2\"").unwrap();
        assert!(!format!("{literal:?}").contains("hunter2"));
        let missing = parse::<SecretSource>("{ env = \"JOBHOOK_TEST_UNSET_VARIABLE\" }").unwrap();
        assert_eq!(
            missing.resolve(dir.path()).unwrap_err().to_string(),
            "environment variable JOBHOOK_TEST_UNSET_VARIABLE is not set"
        );
        assert!(parse::<SecretSource>("{ vault = \"x\" }").is_err());
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let empty = parse::<SecretSource>("{ file = \"empty\" }").unwrap();
        assert!(
            empty
                .resolve(dir.path())
                .unwrap_err()
                .to_string()
                .ends_with("empty is empty")
        );
    }
}
