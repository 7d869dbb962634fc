//! NTLMv2 client messages, made by Devolutions' `sspi` (which also does the
//! MD4 / HMAC-MD5 work). This module only drives its three steps:
//! NEGOTIATE → (server's CHALLENGE) → AUTHENTICATE.
//!
//! NTLM authenticates a connection, not a request: all three legs must travel
//! on one kept-alive connection. [`NtlmSession`] gets that from a client with
//! a single pooled HTTP/1 connection (see `ClientSpec::single_connection`) by
//! sending one request at a time, and restarts the handshake when the server
//! asks again.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation, Ntlm,
    SecurityBuffer, SecurityStatus, Sspi, SspiImpl, Username,
};

/// Who to authenticate as: `DOMAIN\user` or `user@domain`.
pub struct NtlmCredentials {
    username: Username,
    password: SecretString,
}

impl std::fmt::Debug for NtlmCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NtlmCredentials({}, [REDACTED])",
            self.username.account_name()
        )
    }
}

impl NtlmCredentials {
    pub fn new(user: &str, password: SecretString) -> Result<Self, String> {
        let username = Username::parse(user).map_err(|err| {
            format!("ntlm_user {user:?}: {err}; write DOMAIN\\user or user@domain")
        })?;
        Ok(NtlmCredentials { username, password })
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

/// How often a handshake is started over when the server answers the last
/// leg with a bare `NTLM` (it saw the legs on different connections).
const RESTARTS: usize = 2;

/// Why an NTLM-authenticated request failed.
#[derive(Debug)]
pub enum NtlmError {
    /// The request itself failed (connection, timeout): may pass.
    Http(reqwest::Error),
    /// The NTLM messages could not be made or read: will not pass.
    Protocol(String),
}

/// Sends requests to one server, authenticating the connection with NTLM.
pub struct NtlmSession {
    credentials: NtlmCredentials,
    host: String,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for NtlmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NtlmSession({:?}, {})", self.credentials, self.host)
    }
}

impl NtlmSession {
    pub fn new(credentials: NtlmCredentials, host: &str) -> Self {
        NtlmSession {
            credentials,
            host: host.to_owned(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Sends the request `build(authorization)` makes. When the server answers
    /// 401 with `WWW-Authenticate: NTLM`, runs the handshake and returns the
    /// answer to its last leg (a 401 then means the credentials were refused).
    pub async fn send(
        &self,
        build: impl Fn(Option<String>) -> RequestBuilder,
    ) -> Result<Response, NtlmError> {
        let _alone = self.one_at_a_time.lock().await;
        let mut response = build(None).send().await.map_err(NtlmError::Http)?;
        for _ in 0..=RESTARTS {
            if !asks_for_ntlm(&response) {
                return Ok(response);
            }
            // Read the 401 to its end, or the connection is not reused.
            let _ = response.bytes().await;
            settle().await;
            let (handshake, negotiate) =
                Handshake::start(&self.credentials, &self.host).map_err(NtlmError::Protocol)?;
            let challenged = build(Some(header(&negotiate)))
                .send()
                .await
                .map_err(NtlmError::Http)?;
            let challenge = match ntlm_header(&challenged) {
                Some(token) if !token.is_empty() => token,
                _ => return Ok(challenged),
            };
            let _ = challenged.bytes().await.map_err(NtlmError::Http)?;
            settle().await;
            let authenticate = handshake
                .authenticate(&challenge)
                .map_err(NtlmError::Protocol)?;
            response = build(Some(header(&authenticate)))
                .send()
                .await
                .map_err(NtlmError::Http)?;
        }
        Ok(response)
    }
}

/// Lets the connection that carried the last answer go back to the pool
/// before the next leg is sent. Otherwise the next request can find it not
/// yet idle and open a new connection — which has no NTLM context, so the
/// server answers a bare 401 (seen under load against pyspnego).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
}

fn header(message: &[u8]) -> String {
    format!("NTLM {}", BASE64.encode(message))
}

fn ntlm_header(response: &Response) -> Option<Vec<u8>> {
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
fn asks_for_ntlm(response: &Response) -> bool {
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
