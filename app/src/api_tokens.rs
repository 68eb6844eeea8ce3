//! Admin API tokens: 40 characters of `[A-Za-z0-9]` (the shape Cloudflare's tools accept), the
//! first 8 of which are the token's id. Only the SHA-256 of the whole token is stored.
//!
//! [`create`] and [`revoke`] are the commands (used by the CLI, the bootstrap and the demo);
//! the rest generates, adopts and verifies token texts.

use portico_core::Actor;
use portico_core::EventLog;
use portico_core::domain::account::{
    ApiTokenCommand, ApiTokenCreated, ApiTokenState, TokenScope, api_token_stream,
};
use sha2::{Digest, Sha256};

use crate::AppError;

/// Records the creation of `token` named `name` with `scope`.
pub async fn create(
    log: &dyn EventLog,
    token: &NewToken,
    name: &str,
    scope: TokenScope,
    actor: &Actor,
) -> Result<(), AppError> {
    let command = ApiTokenCommand::Create(ApiTokenCreated {
        token_id: token.token_id.clone(),
        name: name.to_owned(),
        scope,
        secret_hash: token.hash.clone(),
    });
    let stream = api_token_stream(&token.token_id);
    crate::execute_on_log::<ApiTokenState>(log, &stream, command, &(), actor).await?;
    Ok(())
}

/// Revokes API token `id`: it stops authenticating at once.
pub async fn revoke(log: &dyn EventLog, id: &str, actor: &Actor) -> Result<(), AppError> {
    let command = ApiTokenCommand::Revoke { token_id: id.to_owned() };
    crate::execute_on_log::<ApiTokenState>(log, &api_token_stream(id), command, &(), actor).await?;
    Ok(())
}

/// Length of the token id prefix.
pub const ID_LEN: usize = 8;
/// Total token length.
pub const TOKEN_LEN: usize = 40;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly generated token: shown once, then only its hash is kept.
#[derive(Clone)]
pub struct NewToken {
    pub token_id: String,
    pub secret: String,
    pub hash: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("token_id", &self.token_id).finish_non_exhaustive()
    }
}

/// Generates a token from the OS random source.
pub fn generate() -> Result<NewToken, getrandom::Error> {
    let mut id_bytes = [0u8; ID_LEN / 2];
    getrandom::getrandom(&mut id_bytes)?;
    let token_id = hex::encode(id_bytes);
    let mut secret = token_id.clone();
    let mut random = [0u8; 64];
    while secret.len() < TOKEN_LEN {
        getrandom::getrandom(&mut random)?;
        // Rejection sampling keeps the characters uniform (62 does not divide 256).
        for b in random.iter().filter(|b| **b < 248) {
            if secret.len() == TOKEN_LEN {
                break;
            }
            secret.push(char::from(ALPHABET[usize::from(*b % 62)]));
        }
    }
    Ok(NewToken { hash: hash(&secret), token_id, secret })
}

/// Adopts a token chosen by the operator (`PORTICO_ADMIN_TOKEN`), checking its shape.
pub fn adopt(token: &str) -> Result<NewToken, String> {
    if token.len() != TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "an admin token must be {TOKEN_LEN} characters of A-Z, a-z and 0-9 (generate one with `portico token create`, or leave it unset)"
        ));
    }
    let token_id = token[..ID_LEN].to_ascii_lowercase();
    Ok(NewToken { hash: hash(token), token_id, secret: token.to_owned() })
}

/// The stored verifier of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id part of a presented token, if it has the right shape.
pub fn id_of(token: &str) -> Option<String> {
    (token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| token[..ID_LEN].to_ascii_lowercase())
}

/// Compares two hashes in time independent of where they differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_cloudflare_shape_and_verify() {
        let t = generate().unwrap();
        assert_eq!(t.secret.len(), TOKEN_LEN);
        assert!(t.secret.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(id_of(&t.secret).unwrap(), t.token_id);
        assert!(hashes_match(&hash(&t.secret), &t.hash));
        assert!(!hashes_match(&hash("x"), &t.hash));
        assert_ne!(generate().unwrap().secret, t.secret);
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn adopted_tokens_are_checked() {
        assert!(adopt("short").is_err());
        assert!(adopt(&"a".repeat(39).to_owned().replace('a', "-")).is_err());
        let t = adopt("ABCDEFGH0123456789abcdefghijklmnopqrstuv").unwrap();
        assert_eq!(t.token_id, "abcdefgh");
    }
}
