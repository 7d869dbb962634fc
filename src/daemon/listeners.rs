//! What the daemon listens on: the ingest socket (Windows: pipe), the admin
//! API and HTTP ingest, bound before the daemon runs so that a taken address
//! ends it with exit code 2.

use std::sync::Arc;

use crate::admin;
use crate::config::values::error_chain;
use crate::ingest::{self, Listener, http};
use crate::setup::Config;

/// What the listeners read from files before they bind (`check` reads it
/// too): each problem is one message naming what could not be read.
pub struct Credentials {
    /// `[[admin.tokens]]`, for the admin API and HTTP ingest.
    pub tokens: Option<Arc<admin::Tokens>>,
    /// HTTP ingest's certificate and key, when it serves HTTPS.
    pub ingest_tls: Option<Arc<rustls::ServerConfig>>,
}

pub fn credentials(config: &Config) -> Result<Credentials, Vec<String>> {
    let mut problems = Vec::new();
    let tokens = config.admin.as_ref().and_then(|settings| {
        admin::Tokens::resolve(&settings.tokens, &config.dir)
            .map(Arc::new)
            .map_err(|unreadable| problems.extend(unreadable))
            .ok()
    });
    let ingest_tls = config.http_ingest.as_ref().and_then(|settings| {
        let (cert, key) = (settings.tls_cert.as_ref()?, settings.tls_key.as_ref()?);
        http::server_config(cert, key)
            .map_err(|err| problems.push(error_chain(&err)))
            .ok()
    });
    if problems.is_empty() {
        Ok(Credentials { tokens, ingest_tls })
    } else {
        Err(problems)
    }
}

/// What the daemon listens on.
pub struct Listeners {
    /// The ingest socket (Windows: pipe).
    pub events: Listener,
    /// The admin API, when configured.
    pub admin: Option<admin::Listener>,
    /// HTTP ingest, when configured.
    pub http: Option<http::Listener>,
    /// Who may call the admin API and post to HTTP ingest.
    pub tokens: Option<Arc<admin::Tokens>>,
}

impl Listeners {
    /// Binds the socket (pipe), and the admin API and HTTP ingest as
    /// configured.
    pub fn bind(config: &Config, credentials: Credentials) -> Result<Listeners, anyhow::Error> {
        let events = bind(config)?;
        let admin = config
            .admin
            .as_ref()
            .map(admin::Listener::bind)
            .transpose()?;
        let http = config
            .http_ingest
            .as_ref()
            .map(|settings| http::Listener::bind(settings, credentials.ingest_tls))
            .transpose()?;
        Ok(Listeners {
            events,
            admin,
            http,
            tokens: credentials.tokens,
        })
    }
}

/// Opens the ingest endpoint named by the config.
fn bind(config: &Config) -> Result<Listener, ingest::BindError> {
    #[cfg(unix)]
    return Listener::bind(&config.daemon.socket, config.daemon.socket_mode.0);
    #[cfg(windows)]
    return Listener::bind(&config.daemon.pipe, &config.daemon.pipe_clients);
}
