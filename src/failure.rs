//! Why a handler's attempt failed, and whether another attempt may help: what
//! handlers (and the Lua states that run scripts) report and the chain acts on.

use std::time::Duration;

/// Why an attempt failed, and whether another attempt may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    pub retry: Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Trying again cannot help (a 400, a bad template value).
    Never,
    /// Trying again may help; `after` is the wait the other side asked for.
    Later { after: Option<Duration> },
}

impl HandlerError {
    pub fn retryable(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Later { after: None },
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Never,
        }
    }
}
