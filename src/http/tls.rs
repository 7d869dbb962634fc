//! `[ssl.NAME]` sections: trust roots, client certificates and TLS versions
//! for outgoing HTTPS.

use std::path::{Path, PathBuf};

use reqwest::ClientBuilder;
use reqwest::tls::{Certificate, Identity, Version};
use serde::Deserialize;

use crate::config::read::{MAX_FILE_BYTES, read_regular};
use crate::config::values::error_chain;

/// One `[ssl.NAME]` section, named by a handler's `ssl_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslSettings {
    /// PEM file of CA certificates to trust, in addition to the system's
    /// (or instead of them with `ca_only = true`).
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system's roots. Default `false`.
    #[serde(default)]
    pub ca_only: bool,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Lowest TLS version accepted: `"1.2"` or `"1.3"`. Default `"1.2"`.
    #[serde(default)]
    pub min_tls_version: TlsVersion,
    /// Accept any server certificate, even an invalid one. For tests only:
    /// it removes the protection TLS gives. Default `false`.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl SslSettings {
    /// Applies this section to a client; errors name the section and the file.
    pub fn apply(
        &self,
        name: &str,
        mut builder: ClientBuilder,
        config_dir: &Path,
    ) -> Result<ClientBuilder, String> {
        let read = |what: &str, path: &Path| {
            let path = config_dir.join(path);
            read_regular(&path, MAX_FILE_BYTES)
                .map_err(|err| format!("[ssl.{name}] {what}: {}", error_chain(&err)))
        };
        if let Some(ca_file) = &self.ca_file {
            let pem = read("ca_file", ca_file)?;
            let roots = Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|roots| !roots.is_empty())
                .ok_or_else(|| {
                    format!(
                        "[ssl.{name}] ca_file {}: no PEM certificate in it",
                        ca_file.display()
                    )
                })?;
            builder = if self.ca_only {
                builder.tls_certs_only(roots)
            } else {
                builder.tls_certs_merge(roots)
            };
        } else if self.ca_only {
            return Err(format!("[ssl.{name}] ca_only = true needs a ca_file"));
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                // reqwest wants certificate and key in one PEM buffer.
                let mut pem = read("client_cert", cert)?;
                pem.push(b'\n');
                pem.extend(read("client_key", key)?);
                let identity = Identity::from_pem(&pem).map_err(|err| {
                    format!("[ssl.{name}] client_cert/client_key: not a usable PEM certificate and key: {err}")
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(format!(
                    "[ssl.{name}] client_cert and client_key go together"
                ));
            }
        }
        builder = builder.tls_version_min(match self.min_tls_version {
            TlsVersion::Tls12 => Version::TLS_1_2,
            TlsVersion::Tls13 => Version::TLS_1_3,
        });
        if self.accept_invalid_certs {
            // Config validation warns about it, in `check` and in the log.
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(builder)
    }
}
