//! NTLMv2 client messages, made by Devolutions' `sspi` (which also does the
//! MD4 / HMAC-MD5 work). This module only drives its three steps:
//! NEGOTIATE → (server's CHALLENGE) → AUTHENTICATE.
//! `super::ntlm_session` sends them on one connection.

use super::ClientError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation, Ntlm,
    SecurityBuffer, SecurityStatus, Sspi, SspiImpl, Username,
};

/// Who to authenticate as: `DOMAIN\user` or `user@domain`.
pub struct NtlmCredentials {
    /// As configured, for messages.
    user: String,
    username: Username,
    password: SecretString,
}

impl std::fmt::Debug for NtlmCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NtlmCredentials({}, [REDACTED])", self.user)
    }
}

impl NtlmCredentials {
    pub fn new(user: &str, password: SecretString) -> Result<Self, ClientError> {
        let username = Username::parse(user).map_err(|source| ClientError::NtlmUser {
            user: user.to_owned(),
            source: Box::new(source),
        })?;
        Ok(NtlmCredentials {
            user: user.to_owned(),
            username,
            password,
        })
    }

    /// The user as configured (`CORP\svc`).
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// One handshake in progress.
pub struct Handshake {
    ntlm: Ntlm,
    credentials: <Ntlm as SspiImpl>::CredentialsHandle,
    target: String,
}

impl Handshake {
    /// Starts a handshake with `host`; returns it and the NEGOTIATE message.
    pub fn start(
        credentials: &NtlmCredentials,
        host: &str,
    ) -> Result<(Handshake, Vec<u8>), String> {
        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: credentials.username.clone(),
            password: credentials.password.expose_secret().to_owned().into(),
        };
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|err| format!("NTLM: {err}"))?;
        let mut handshake = Handshake {
            ntlm,
            credentials: acquired.credentials_handle,
            target: format!("HTTP/{host}"),
        };
        let negotiate = handshake.step(None)?;
        Ok((handshake, negotiate))
    }

    /// Answers the server's CHALLENGE with the AUTHENTICATE message.
    pub fn authenticate(mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        self.step(Some(challenge))
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut input = vec![SecurityBuffer::new(
            input.unwrap_or_default().to_vec(),
            BufferType::Token,
        )];
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(ClientRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&self.target)
            .with_output(&mut output);
        if !input[0].buffer.is_empty() {
            builder = builder.with_input(&mut input);
        }
        let result = self
            .ntlm
            .initialize_security_context_impl(&mut builder)
            .and_then(|mut generator| generator.resolve_to_result())
            .map_err(|err| format!("NTLM: {err}"))?;
        if matches!(
            result.status,
            SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
        ) {
            self.ntlm
                .complete_auth_token(&mut output)
                .map_err(|err| format!("NTLM: {err}"))?;
        }
        Ok(std::mem::take(&mut output[0].buffer))
    }
}

pub(super) fn header(message: &[u8]) -> String {
    format!("NTLM {}", BASE64.encode(message))
}

pub(super) fn ntlm_header(response: &Response) -> Option<Vec<u8>> {
    if response.status() != StatusCode::UNAUTHORIZED {
        return None;
    }
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(challenge_token)
}

/// A 401 that offers NTLM (a bare `NTLM`, no token: a new handshake).
pub(super) fn asks_for_ntlm(response: &Response) -> bool {
    ntlm_header(response).is_some_and(|token| token.is_empty())
}

/// The NTLM token of a `WWW-Authenticate` header value (`NTLM <base64>`);
/// `Some(empty)` for a bare `NTLM` (the server wants a new handshake).
fn challenge_token(header: &str) -> Option<Vec<u8>> {
    let rest = header
        .trim()
        .strip_prefix("NTLM")
        .or_else(|| header.trim().strip_prefix("ntlm"))?;
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(Vec::new());
    }
    BASE64.decode(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_type(message: &[u8]) -> u32 {
        assert_eq!(&message[..8], b"NTLMSSP\0");
        u32::from_le_bytes(message[8..12].try_into().unwrap())
    }

    #[test]
    fn negotiate_is_an_ntlm_type_1_message() {
        let credentials = NtlmCredentials::new(r"CORP\svc", "pw".to_owned().into()).unwrap();
        let (_, negotiate) = Handshake::start(&credentials, "itsm.example").unwrap();
        assert_eq!(message_type(&negotiate), 1);
    }

    #[test]
    fn user_names_in_both_forms_and_no_password_in_debug() {
        assert!(NtlmCredentials::new("svc@corp.example", "pw".to_owned().into()).is_ok());
        let credentials = NtlmCredentials::new(r"CORP\svc", "s3cret".to_owned().into()).unwrap();
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }

    #[test]
    fn reads_challenge_headers() {
        assert_eq!(challenge_token("NTLM"), Some(Vec::new()));
        assert_eq!(
            challenge_token("NTLM TlRMTVNTUAAC"),
            Some(b"NTLMSSP\0\x02".to_vec())
        );
        assert_eq!(challenge_token("Basic realm=x"), None);
    }
}
