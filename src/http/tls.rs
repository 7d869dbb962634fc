//! `[ssl.NAME]` sections: trust roots, client certificates and TLS versions
//! for outgoing HTTPS.

use std::path::{Path, PathBuf};

use reqwest::ClientBuilder;
use reqwest::tls::{Certificate, Identity, Version};

use super::settings::{SslSettings, TlsVersion};
use crate::config::read::{MAX_FILE_BYTES, ReadError, read_regular};

/// Why an `[ssl.NAME]` section cannot be used; each names the section.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[ssl.{section}] {key}")]
    Read {
        section: String,
        key: &'static str,
        #[source]
        source: ReadError,
    },
    #[error("[ssl.{section}] ca_file {}: no PEM certificate in it", path.display())]
    NoCertificate { section: String, path: PathBuf },
    #[error("[ssl.{section}] ca_only = true needs a ca_file")]
    CaOnlyWithoutFile { section: String },
    #[error("[ssl.{section}] client_cert/client_key: not a usable PEM certificate and key")]
    Identity {
        section: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("[ssl.{section}] client_cert and client_key go together")]
    HalfIdentity { section: String },
}

impl SslSettings {
    /// Applies this section to a client; errors name the section and the file.
    pub fn apply(
        &self,
        name: &str,
        mut builder: ClientBuilder,
        config_dir: &Path,
    ) -> Result<ClientBuilder, TlsError> {
        let section = || name.to_owned();
        let read = |key: &'static str, path: &Path| {
            read_regular(&config_dir.join(path), MAX_FILE_BYTES).map_err(|source| TlsError::Read {
                section: section(),
                key,
                source,
            })
        };
        if let Some(ca_file) = &self.ca_file {
            let pem = read("ca_file", ca_file)?;
            let roots = Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|roots| !roots.is_empty())
                .ok_or_else(|| TlsError::NoCertificate {
                    section: section(),
                    path: ca_file.clone(),
                })?;
            builder = if self.ca_only {
                builder.tls_certs_only(roots)
            } else {
                builder.tls_certs_merge(roots)
            };
        } else if self.ca_only {
            return Err(TlsError::CaOnlyWithoutFile { section: section() });
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                // reqwest wants certificate and key in one PEM buffer.
                let mut pem = read("client_cert", cert)?;
                pem.push(b'\n');
                pem.extend(read("client_key", key)?);
                let identity = Identity::from_pem(&pem).map_err(|source| TlsError::Identity {
                    section: section(),
                    source,
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(TlsError::HalfIdentity { section: section() });
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
