//! Certificate problems rustls and webpki report, found by type among an
//! error's causes (reqwest passes them on only as causes, some wrapped in an
//! `io::Error`), so that a message can say what to do about them.

use std::error::Error;

use crate::config::values::causes;

/// A certificate problem with advice of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateProblem {
    /// An X.509 version 1 certificate (no extensions), which webpki refuses.
    Version1,
    /// The server presented a CA certificate as its own.
    CaAsServer,
}

impl CertificateProblem {
    /// The problem among `err`'s causes, if it is one of these.
    pub fn of(err: &(dyn Error + 'static)) -> Option<CertificateProblem> {
        causes(err).find_map(|err| unwrapped(err).and_then(from_rustls))
    }
}

/// The error itself, or the one an `io::Error` wraps (through any number
/// of `io::Error`s): it shows the wrapped error's message but skips it in
/// `source()`.
fn unwrapped<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    match err.downcast_ref::<std::io::Error>() {
        Some(io) => unwrapped(io.get_ref()?),
        None => Some(err),
    }
}

fn from_rustls(err: &(dyn Error + 'static)) -> Option<CertificateProblem> {
    let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) =
        err.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    match other.0.downcast_ref::<webpki::Error>()? {
        webpki::Error::UnsupportedCertVersion => Some(CertificateProblem::Version1),
        webpki::Error::CaUsedAsEndEntity => Some(CertificateProblem::CaAsServer),
        _ => None,
    }
}
