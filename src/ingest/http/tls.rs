//! The certificate and key HTTP ingest serves HTTPS with, read once at
//! start from `tls_cert` and `tls_key`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::read::{MAX_FILE_BYTES, ReadError, read_regular};

/// Why HTTPS cannot be served; each names the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[ingest.http] {key} {}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("[ingest.http] tls_cert {}: no PEM certificate in it", path.display())]
    NoCertificate {
        path: PathBuf,
        #[source]
        source: Option<pem::Error>,
    },
    #[error("[ingest.http] tls_key {}: no PEM private key in it", path.display())]
    NoKey {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("[ingest.http] tls_cert and tls_key cannot serve together")]
    Mismatch(#[source] rustls::Error),
}

/// The server side of TLS from a PEM certificate chain and its key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |key: &'static str, path: &Path| {
        read_regular(path, MAX_FILE_BYTES).map_err(|source| TlsError::Read {
            key,
            path: path.to_owned(),
            source,
        })
    };
    let chain = CertificateDer::pem_slice_iter(&read("tls_cert", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::NoCertificate {
            path: cert.to_owned(),
            source: Some(source),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
            source: None,
        });
    }
    let private_key = PrivateKeyDer::from_pem_slice(&read("tls_key", key)?).map_err(|source| {
        TlsError::NoKey {
            path: key.to_owned(),
            source,
        }
    })?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(TlsError::Mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::error_chain;

    #[test]
    fn problems_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let missing = error_chain(&server_config(&cert, &key).unwrap_err());
        assert!(missing.starts_with("[ingest.http] tls_cert "), "{missing}");
        assert!(missing.contains("cert.pem"), "{missing}");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let empty = server_config(&cert, &key).unwrap_err().to_string();
        assert!(empty.contains("no PEM certificate"), "{empty}");
    }
}
