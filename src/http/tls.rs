//! `[ssl.NAME]` sections: trust roots, client certificates and TLS versions
//! for outgoing HTTPS, made into one rustls configuration that a
//! destination's reqwest client and its NTLM connection (`own_connection`)
//! both use, so that both make the same trust decisions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_platform_verifier::Verifier;

use super::CertificateProblem;
use super::settings::{SslSettings, TlsVersion};
use crate::config::read::{MAX_FILE_BYTES, ReadError, read_regular};

/// Why an `[ssl.NAME]` section cannot be used; each names the section.
/// (rustls's errors are boxed: they would make every `Result` carrying this
/// one large.)
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
    #[error("[ssl.{section}] ca_file {}: not a usable CA certificate", path.display())]
    BadCertificate {
        section: String,
        path: PathBuf,
        #[source]
        source: Box<rustls::Error>,
    },
    #[error("[ssl.{section}] ca_only = true needs a ca_file")]
    CaOnlyWithoutFile { section: String },
    #[error("[ssl.{section}] {key} {}: no PEM {what} in it", path.display())]
    NoIdentity {
        section: String,
        key: &'static str,
        what: &'static str,
        path: PathBuf,
    },
    #[error("[ssl.{section}] client_cert/client_key: not a usable PEM certificate and key")]
    Identity {
        section: String,
        #[source]
        source: Box<rustls::Error>,
    },
    #[error(
        "[ssl.{section}] client_cert {}: an X.509 version 1 certificate, which rustls cannot \
         use; issue a version 3 one (openssl x509 -req with -extfile giving \
         basicConstraints=CA:FALSE and extendedKeyUsage=clientAuth)",
        path.display()
    )]
    Version1ClientCertificate {
        section: String,
        path: PathBuf,
        #[source]
        source: Box<rustls::Error>,
    },
    #[error("[ssl.{section}] client_cert and client_key go together")]
    HalfIdentity { section: String },
    /// The system's trust store (with `ca_file`'s roots added) is unusable.
    #[error("{}cannot set up certificate verification", section.as_ref().map(|name| format!("[ssl.{name}] ")).unwrap_or_default())]
    Verifier {
        section: Option<String>,
        #[source]
        source: Box<rustls::Error>,
    },
}

/// The TLS configuration for a destination: its `[ssl.NAME]` section (with
/// its name, for messages) or, without one, the system's roots. Speaks
/// HTTP/1.1 only (ALPN), as every client of jobhook does.
pub fn client_config(
    section: Option<(&str, &SslSettings)>,
    config_dir: &Path,
) -> Result<ClientConfig, TlsError> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut config = match section {
        Some((name, settings)) => settings.config(name, provider, config_dir)?,
        None => {
            let verifier = Verifier::new(provider.clone()).map_err(unverifiable(None))?;
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(unverifiable(None))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl SslSettings {
    /// This section's configuration; errors name the section and the file.
    fn config(
        &self,
        name: &str,
        provider: Arc<CryptoProvider>,
        config_dir: &Path,
    ) -> Result<ClientConfig, TlsError> {
        let section = || name.to_owned();
        let read = |key: &'static str, path: &Path| {
            read_regular(&config_dir.join(path), MAX_FILE_BYTES).map_err(|source| TlsError::Read {
                section: section(),
                key,
                source,
            })
        };
        let versions: &[&rustls::SupportedProtocolVersion] = match self.min_tls_version {
            TlsVersion::Tls12 => rustls::ALL_VERSIONS,
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(unverifiable(Some(name)))?;
        let roots = match &self.ca_file {
            Some(ca_file) => {
                let pem = read("ca_file", ca_file)?;
                let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<_, _>>()
                    .ok()
                    .filter(|roots: &Vec<_>| !roots.is_empty())
                    .ok_or_else(|| TlsError::NoCertificate {
                        section: section(),
                        path: ca_file.clone(),
                    })?;
                Some((ca_file, roots))
            }
            None if self.ca_only => {
                return Err(TlsError::CaOnlyWithoutFile { section: section() });
            }
            None => None,
        };
        let builder = if self.accept_invalid_certs {
            // Config validation warns about it, in `check` and in the log.
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            match roots {
                Some((ca_file, roots)) if self.ca_only => {
                    let mut store = RootCertStore::empty();
                    for root in roots {
                        store.add(root).map_err(|source| TlsError::BadCertificate {
                            section: section(),
                            path: ca_file.clone(),
                            source: Box::new(source),
                        })?;
                    }
                    builder.with_root_certificates(store)
                }
                Some((_, roots)) => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(
                        Verifier::new_with_extra_roots(roots, provider)
                            .map_err(unverifiable(Some(name)))?,
                    )),
                None => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(
                        Verifier::new(provider).map_err(unverifiable(Some(name)))?,
                    )),
            }
        };
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let missing = |key: &'static str, what, path: &PathBuf| TlsError::NoIdentity {
                    section: section(),
                    key,
                    what,
                    path: path.clone(),
                };
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(&read("client_cert", cert)?)
                        .collect::<Result<_, _>>()
                        .ok()
                        .filter(|chain: &Vec<_>| !chain.is_empty())
                        .ok_or_else(|| missing("client_cert", "certificate", cert))?;
                let private = PrivateKeyDer::from_pem_slice(&read("client_key", key)?)
                    .map_err(|_| missing("client_key", "private key", key))?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|source| match CertificateProblem::of(&source) {
                        Some(CertificateProblem::Version1) => TlsError::Version1ClientCertificate {
                            section: section(),
                            path: config_dir.join(cert),
                            source: Box::new(source),
                        },
                        _ => TlsError::Identity {
                            section: section(),
                            source: Box::new(source),
                        },
                    })
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(TlsError::HalfIdentity { section: section() }),
        }
    }
}

/// The error for a verifier (trust store, TLS versions) that cannot be set
/// up, naming the section if there is one.
fn unverifiable(section: Option<&str>) -> impl FnOnce(rustls::Error) -> TlsError + '_ {
    move |source| TlsError::Verifier {
        section: section.map(str::to_owned),
        source: Box::new(source),
    }
}

/// `accept_invalid_certs = true`: any server certificate passes.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
