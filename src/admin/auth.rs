//! Bearer tokens: read once at start, kept only as SHA-256 digests, and
//! compared in constant time, every token every time, so neither a token
//! nor which one nearly matched can be learnt from timing.

use std::path::Path;

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::values::error_chain;
use crate::config::{Permission, TokenSettings};

/// The tokens of `[[admin.tokens]]` (by default none: every request is
/// refused).
#[derive(Default)]
pub struct Tokens(Vec<Token>);

struct Token {
    name: String,
    digest: [u8; 32],
    permissions: Vec<Permission>,
}

impl Tokens {
    /// Reads each token's secret; every one that cannot be read is a
    /// problem naming the token (never its value).
    pub fn resolve(settings: &[TokenSettings], config_dir: &Path) -> Result<Tokens, Vec<String>> {
        let mut problems = Vec::new();
        let mut tokens = Vec::new();
        for token in settings {
            match token.token.resolve(config_dir) {
                Ok(secret) => {
                    use secrecy::ExposeSecret;
                    tokens.push(Token {
                        name: token.name.clone(),
                        digest: digest(secret.expose_secret()),
                        permissions: token.permissions.clone(),
                    });
                }
                Err(err) => problems.push(format!(
                    "[[admin.tokens]] `{}`: cannot read the token: {}",
                    token.name,
                    error_chain(&err)
                )),
            }
        }
        if problems.is_empty() {
            Ok(Tokens(tokens))
        } else {
            Err(problems)
        }
    }

    /// The name of the token the request carries, if it may do `needed`:
    /// 401 without a known token, 403 when it lacks the permission.
    pub fn authorize(&self, headers: &HeaderMap, needed: Permission) -> Result<&str, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing bearer token (Authorization: Bearer TOKEN)",
                )
            })?;
        let presented = digest(presented);
        let mut found = None;
        for token in &self.0 {
            if bool::from(token.digest.ct_eq(&presented)) {
                found = Some(token);
            }
        }
        let token =
            found.ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown bearer token"))?;
        if !token.permissions.contains(&needed) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` lacks the permission `{}`",
                    token.name,
                    needed.name()
                ),
            ));
        }
        Ok(&token.name)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::SecretSource;

    fn tokens() -> Tokens {
        let settings = vec![TokenSettings {
            name: "ops".to_owned(),
            token: SecretSource::Literal("s3cret-token".to_owned()),
            permissions: vec![Permission::Reload],
        }];
        Tokens::resolve(&settings, Path::new(".")).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn tokens_are_told_apart_by_value_and_permission() {
        let tokens = tokens();
        assert_eq!(
            tokens
                .authorize(&bearer("s3cret-token"), Permission::Reload)
                .unwrap(),
            "ops"
        );
        let status = |headers: &HeaderMap, permission| {
            tokens.authorize(headers, permission).unwrap_err().status()
        };
        assert_eq!(
            status(&HeaderMap::new(), Permission::Reload),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&bearer("s3cret-tokeN"), Permission::Reload),
            StatusCode::UNAUTHORIZED
        );
        let forbidden = tokens
            .authorize(&bearer("s3cret-token"), Permission::HandlersModify)
            .unwrap_err();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert!(!forbidden.to_string().contains("s3cret"));
    }

    #[test]
    fn an_unreadable_token_is_named_not_shown() {
        let settings = vec![TokenSettings {
            name: "ci".to_owned(),
            token: SecretSource::Env {
                env: "JOBHOOK_TEST_NO_SUCH_TOKEN".to_owned(),
            },
            permissions: vec![],
        }];
        let problems = Tokens::resolve(&settings, Path::new(".")).err().unwrap();
        assert_eq!(
            problems,
            [
                "[[admin.tokens]] `ci`: cannot read the token: environment variable JOBHOOK_TEST_NO_SUCH_TOKEN is not set"
            ]
        );
    }
}
