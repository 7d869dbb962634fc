//! Standard Webhooks signatures: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;

/// Signs request bodies with a shared secret.
pub struct Signer {
    key: SecretSlice<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([REDACTED])")
    }
}

/// Why a `signing_secret` cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("signing_secret starts with whsec_ but the rest is not base64")]
    NotBase64(#[source] base64::DecodeError),
    #[error("signing_secret is empty")]
    Empty,
}

impl Signer {
    /// A `whsec_`-prefixed secret is base64 (as the specification describes
    /// and webhook providers issue them); any other secret is used as its
    /// UTF-8 bytes.
    pub fn new(secret: &SecretString) -> Result<Signer, SignerError> {
        let secret = secret.expose_secret();
        let key = match secret.strip_prefix("whsec_") {
            Some(encoded) => BASE64.decode(encoded).map_err(SignerError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SignerError::Empty);
        }
        Ok(Signer { key: key.into() })
    }

    /// The three headers for one request.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
        let mut mac =
            Hmac::new_from_slice(self.key.expose_secret()).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let signature = BASE64.encode(mac.finalize().into_bytes());
        [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", format!("v1,{signature}")),
        ]
    }
}

type Hmac = hmac::Hmac<Sha256>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks reference implementations' test suite.
        let signer =
            Signer::new(&"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned().into()).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let [id, timestamp, signature] =
            signer.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(id.1, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(timestamp.1, "1614265330");
        assert_eq!(
            signature.1,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rejects_bad_secrets_without_echoing_them() {
        let err = Signer::new(&"whsec_!!!".to_owned().into()).unwrap_err();
        assert!(!crate::config::values::error_chain(&err).contains("!!!"));
        assert!(Signer::new(&String::new().into()).is_err());
        assert!(
            !format!("{:?}", Signer::new(&"plain".to_owned().into()).unwrap()).contains("plain")
        );
    }
}
