//! Why an `HttpHandler` cannot be built from its section.

use super::signing::SignerError;
use super::target::TargetError;
use crate::config::values::SecretError;
use crate::http::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("method: {0:?} is not an HTTP method")]
    Method(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("signing_secret")]
    SigningSecret(#[source] SecretError),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error("min_concurrency ({min}) is above max_concurrency ({max})")]
    Concurrency { min: usize, max: usize },
}
