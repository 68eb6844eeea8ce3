//! The account and its admin API tokens.
//!
//! A Portico instance (or a group of instances sharing one log) serves one account, whose id is
//! generated on first start: 32 lowercase hex characters, like Cloudflare's account ids, so the
//! `/client/v4/accounts/{account_id}/...` paths of Cloudflare's SDKs work unchanged.
//!
//! An API token is handed out once; the log keeps only its id, name, scope and the SHA-256 of
//! its secret part (a verifier of a 256-bit random value, not something that can be replayed).

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::truncate_for_message;
use crate::event::Event;

/// The longest token name accepted.
pub const MAX_TOKEN_NAME_LEN: usize = 100;

/// The stream of the account's own facts.
pub const ACCOUNT_STREAM: &str = "account";

/// The stream of one API token.
pub fn api_token_stream(token_id: &str) -> String {
    format!("api-token-{token_id}")
}

/// A 32-character lowercase hex account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
        let value = value.into();
        if value.len() == 32
            && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(AccountId(value))
        } else {
            Err(DomainError::invalid(
                "account_id",
                format!("`{}` is not 32 lowercase hex characters", truncate_for_message(&value)),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read every admin resource.
    Read,
    /// Read and change every admin resource.
    Edit,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Edit => "edit",
        }
    }

    /// Whether this scope allows writes.
    pub fn can_write(self) -> bool {
        self == TokenScope::Edit
    }
}

impl std::str::FromStr for TokenScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(TokenScope::Read),
            "edit" => Ok(TokenScope::Edit),
            other => Err(format!("unknown scope `{other}`: expected `read` or `edit`")),
        }
    }
}

/// The account was created (on the first start of Portico).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub account_id: AccountId,
}

/// An API token was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenCreated {
    pub token_id: String,
    pub name: String,
    pub scope: TokenScope,
    /// Lowercase hex SHA-256 of the token's secret part.
    pub secret_hash: String,
}

/// An API token was revoked; it no longer authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRevoked {
    pub token_id: String,
}

/// The state of the account stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountState {
    pub account_id: Option<AccountId>,
    pub stream_version: u64,
}

impl AccountState {
    pub fn apply(&mut self, event: &Event) {
        if let Event::AccountCreated(e) = event {
            self.account_id = Some(e.account_id.clone());
            self.stream_version += 1;
        }
    }
}

/// Creates the account; only once.
pub fn decide_create_account(
    state: &AccountState,
    account_id: AccountId,
) -> Result<Vec<Event>, DomainError> {
    if let Some(existing) = &state.account_id {
        return Err(DomainError::AlreadyExists { kind: "account", id: existing.to_string() });
    }
    Ok(vec![Event::AccountCreated(AccountCreated { account_id })])
}

/// The state of one token's stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiTokenState {
    pub created: bool,
    pub revoked: bool,
    pub stream_version: u64,
}

impl ApiTokenState {
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ApiTokenCreated(_) => self.created = true,
            Event::ApiTokenRevoked(_) => self.revoked = true,
            _ => return,
        }
        self.stream_version += 1;
    }
}

/// Creates a token. The caller generates the id and the secret, and hashes the secret.
pub fn decide_create_token(
    state: &ApiTokenState,
    token: ApiTokenCreated,
) -> Result<Vec<Event>, DomainError> {
    if state.created {
        return Err(DomainError::AlreadyExists { kind: "api token", id: token.token_id });
    }
    let name = token.name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_TOKEN_NAME_LEN {
        return Err(DomainError::invalid(
            "name",
            format!("is longer than {MAX_TOKEN_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid("name", "must not contain control characters"));
    }
    let hex64 = |s: &str| {
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex64(&token.secret_hash) {
        return Err(DomainError::invalid("secret_hash", "is not a lowercase hex SHA-256"));
    }
    let name = name.to_owned();
    Ok(vec![Event::ApiTokenCreated(ApiTokenCreated { name, ..token })])
}

/// Revokes a token.
pub fn decide_revoke_token(
    state: &ApiTokenState,
    token_id: &str,
) -> Result<Vec<Event>, DomainError> {
    if !state.created || state.revoked {
        return Err(DomainError::NotFound { kind: "api token", id: token_id.to_owned() });
    }
    Ok(vec![Event::ApiTokenRevoked(ApiTokenRevoked { token_id: token_id.to_owned() })])
}

/// Create the account (once, on first start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccount(pub AccountId);

impl super::Aggregate for AccountState {
    type Command = CreateAccount;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        AccountState::apply(self, event);
    }

    fn decide(&self, CreateAccount(id): CreateAccount, _: &()) -> Result<Vec<Event>, DomainError> {
        decide_create_account(self, id)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

/// A command on one API token's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTokenCommand {
    /// Create it; the caller generated the id and the secret and hashed the secret.
    Create(ApiTokenCreated),
    /// Revoke it.
    Revoke { token_id: String },
}

impl super::Aggregate for ApiTokenState {
    type Command = ApiTokenCommand;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        ApiTokenState::apply(self, event);
    }

    fn decide(&self, command: ApiTokenCommand, _: &()) -> Result<Vec<Event>, DomainError> {
        match command {
            ApiTokenCommand::Create(token) => decide_create_token(self, token),
            ApiTokenCommand::Revoke { token_id } => decide_revoke_token(self, &token_id),
        }
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token(name: &str) -> ApiTokenCreated {
        ApiTokenCreated {
            token_id: "0123456789abcdef".into(),
            name: name.into(),
            scope: TokenScope::Edit,
            secret_hash: "a".repeat(64),
        }
    }

    #[test]
    fn the_account_is_created_once() {
        let id = AccountId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let events = decide_create_account(&AccountState::default(), id.clone()).unwrap();
        let mut state = AccountState::default();
        state.apply(&events[0]);
        assert_eq!(state.account_id, Some(id.clone()));
        assert!(matches!(
            decide_create_account(&state, id),
            Err(DomainError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn account_ids_are_32_lowercase_hex() {
        assert!(AccountId::parse("0123456789ABCDEF0123456789abcdef").is_err());
        assert!(AccountId::parse("0123456789abcdef").is_err());
        assert!(AccountId::parse("0123456789abcdef0123456789abcdeg").is_err());
    }

    #[test]
    fn token_rules() {
        let fresh = ApiTokenState::default();
        let events = decide_create_token(&fresh, token("  ci  ")).unwrap();
        match &events[0] {
            Event::ApiTokenCreated(t) => assert_eq!(t.name, "ci", "name is trimmed"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide_create_token(&fresh, token(" ")).unwrap_err().to_string(),
            "invalid `name`: must not be empty"
        );
        assert!(decide_create_token(&fresh, token(&"x".repeat(101))).is_err());
        assert!(decide_create_token(&fresh, token("a\u{7}b")).is_err());
        let mut bad_hash = token("ci");
        bad_hash.secret_hash = "nothex".into();
        assert!(decide_create_token(&fresh, bad_hash).is_err());

        let mut state = ApiTokenState::default();
        state.apply(&events[0]);
        assert!(decide_create_token(&state, token("again")).is_err());
        let revoked = decide_revoke_token(&state, "0123456789abcdef").unwrap();
        state.apply(&revoked[0]);
        assert!(matches!(
            decide_revoke_token(&state, "0123456789abcdef"),
            Err(DomainError::NotFound { .. })
        ));
        assert!(decide_revoke_token(&ApiTokenState::default(), "x").is_err());
    }
}
