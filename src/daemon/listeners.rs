//! What the daemon listens on: the ingest socket (Windows: pipe) and the
//! admin API, bound before the daemon runs so that a taken address ends it
//! with exit code 2.

use crate::admin;
use crate::ingest::{self, Listener};
use crate::setup::Config;

/// The admin API's tokens, read from where the config says (`None`
/// without an admin API); the problems, one per token that cannot be read.
pub fn admin_tokens(config: &Config) -> Result<Option<admin::Tokens>, Vec<String>> {
    let Some(settings) = &config.admin else {
        return Ok(None);
    };
    admin::Tokens::resolve(&settings.tokens, &config.dir).map(Some)
}

/// The admin API's address, bound, with its tokens.
pub(super) fn bind_admin(
    config: &Config,
    tokens: admin::Tokens,
) -> Result<(admin::Listener, admin::Tokens), admin::BindError> {
    let settings = config.admin.as_ref().expect("tokens come from [admin]");
    Ok((admin::Listener::bind(settings)?, tokens))
}

/// What the daemon listens on.
pub struct Listeners {
    /// The ingest socket (Windows: pipe).
    pub events: Listener,
    /// The admin API, when configured.
    pub admin: Option<(admin::Listener, admin::Tokens)>,
}

/// Opens the ingest endpoint named by the config.
pub fn bind(config: &Config) -> Result<Listener, ingest::BindError> {
    #[cfg(unix)]
    return Listener::bind(&config.daemon.socket, config.daemon.socket_mode.0);
    #[cfg(windows)]
    return Listener::bind(&config.daemon.pipe, &config.daemon.pipe_clients);
}
