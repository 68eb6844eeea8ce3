//! Service tokens: credentials for machines (`CF-Access-Client-Id` + `CF-Access-Client-Secret`),
//! Cloudflare-compatible. The log keeps the client id and the SHA-256 of the client secret,
//! never the secret itself.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use crate::event::Event;

/// The stream of one service token.
pub fn service_token_stream(token_id: &str) -> String {
    format!("service-token-{token_id}")
}

/// A service token was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTokenCreated {
    /// The token's id (a UUID, as Cloudflare's).
    pub token_id: String,
    /// The public client id (`<32 hex>.access`).
    pub client_id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the client secret.
    pub secret_hash: String,
    /// Cloudflare's duration string (`8760h`, `forever`).
    pub duration: String,
    /// When the token stops working (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A service token's name or duration changed (or it was refreshed: a new expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTokenUpdated {
    pub token_id: String,
    pub name: String,
    pub duration: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A service token got a new client secret; the old one stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTokenRotated {
    pub token_id: String,
    pub secret_hash: String,
}

/// A service token was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTokenDeleted {
    pub token_id: String,
}

/// The longest service token name accepted.
pub const MAX_SERVICE_TOKEN_NAME_LEN: usize = 255;
/// Cloudflare's default lifetime of a service token: one year.
pub const DEFAULT_DURATION: &str = "8760h";
/// The duration of a token that never expires.
pub const FOREVER: &str = "forever";
/// The shortest finite lifetime accepted.
pub const MIN_DURATION_SECONDS: i64 = 60;
/// The longest finite lifetime accepted: 100 years of 365.25 days.
pub const MAX_DURATION_SECONDS: i64 = 876_600 * 3600;

/// The lifetime of a service token, parsed from Cloudflare's duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLifetime {
    /// `forever`: the token never expires.
    Forever,
    /// A bounded lifetime (between [`MIN_DURATION_SECONDS`] and [`MAX_DURATION_SECONDS`]).
    Finite(TimeDelta),
}

impl TokenLifetime {
    /// Parses `forever` or a Go-style duration made of whole numbers with the units `h`, `m`
    /// and `s` (`8760h`, `30m`, `1h30m`), bounded to 1 minute ..= 100 years.
    pub fn parse(duration: &str) -> Result<Self, DomainError> {
        if duration == FOREVER {
            return Ok(TokenLifetime::Forever);
        }
        let invalid = |why: &str| {
            DomainError::invalid(
                "duration",
                format!(
                    "`{}` {why}; expected `forever` or a duration such as `8760h`, `30m` or `1h30m` (units `h`, `m`, `s`)",
                    super::ids::truncate_for_message(duration)
                ),
            )
        };
        if duration.is_empty() {
            return Err(invalid("is empty"));
        }
        let mut seconds: i64 = 0;
        let mut number: Option<i64> = None;
        for c in duration.chars() {
            if let Some(digit) = c.to_digit(10) {
                let next = number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(digit)))
                    .ok_or_else(|| invalid("is too long"))?;
                number = Some(next);
                continue;
            }
            let unit = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(invalid("is not a duration")),
            };
            let n = number.take().ok_or_else(|| invalid("has a unit without a number"))?;
            seconds = n
                .checked_mul(unit)
                .and_then(|s| seconds.checked_add(s))
                .ok_or_else(|| invalid("is too long"))?;
        }
        if number.is_some() {
            return Err(invalid("has a number without a unit"));
        }
        if seconds < MIN_DURATION_SECONDS {
            return Err(invalid("is shorter than 1 minute"));
        }
        if seconds > MAX_DURATION_SECONDS {
            return Err(invalid("is longer than 100 years (876600h)"));
        }
        Ok(TokenLifetime::Finite(TimeDelta::seconds(seconds)))
    }

    /// When a token of this lifetime that starts (or is refreshed) at `from` expires.
    pub fn expires_at(self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            TokenLifetime::Forever => None,
            // Saturates at chrono's far future rather than failing: 100 years always fit.
            TokenLifetime::Finite(delta) => {
                Some(from.checked_add_signed(delta).unwrap_or(DateTime::<Utc>::MAX_UTC))
            }
        }
    }
}

/// A service token as its events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceToken {
    pub token_id: String,
    pub client_id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the current client secret.
    pub secret_hash: String,
    pub duration: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The state of one service token's stream. `Default` is a stream without events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceTokenState {
    /// The token as it is now; `None` if it was never created, or was deleted.
    pub token: Option<ServiceToken>,
    /// Whether the token was deleted (its id is never used again).
    pub deleted: bool,
    /// How many events of this token were folded: the version to expect on the next append.
    pub stream_version: u64,
}

impl ServiceTokenState {
    /// Folds one event. Holds no rules; events of other aggregates are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ServiceTokenCreated(e) => {
                self.token = Some(ServiceToken {
                    token_id: e.token_id.clone(),
                    client_id: e.client_id.clone(),
                    name: e.name.clone(),
                    secret_hash: e.secret_hash.clone(),
                    duration: e.duration.clone(),
                    expires_at: e.expires_at,
                });
            }
            Event::ServiceTokenUpdated(e) => {
                if let Some(token) = &mut self.token {
                    token.name = e.name.clone();
                    token.duration = e.duration.clone();
                    token.expires_at = e.expires_at;
                }
            }
            Event::ServiceTokenRotated(e) => {
                if let Some(token) = &mut self.token {
                    token.secret_hash = e.secret_hash.clone();
                }
            }
            Event::ServiceTokenDeleted(_) => {
                self.token = None;
                self.deleted = true;
            }
            _ => return,
        }
        self.stream_version += 1;
    }

    /// Whether the token exists now (created and not deleted).
    pub fn exists(&self) -> bool {
        self.token.is_some()
    }
}

/// A command on a service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceTokenCommand {
    Create(CreateServiceToken),
    Update(UpdateServiceToken),
    Rotate(RotateServiceToken),
    Refresh(RefreshServiceToken),
    Delete(DeleteServiceToken),
}

/// Create a token. The caller generates the id, the client id and the secret, hashes the
/// secret, and computes `expires_at` from the request time and the duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateServiceToken {
    pub token_id: String,
    pub client_id: String,
    pub name: String,
    pub secret_hash: String,
    pub duration: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Change a token's name and duration; `expires_at` is the caller's (recomputed from the
/// request time when the duration changes, else the current one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateServiceToken {
    pub token_id: String,
    pub name: String,
    pub duration: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Give a token a new client secret (the caller generated and hashed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateServiceToken {
    pub token_id: String,
    pub secret_hash: String,
}

/// Extend a token's life: `expires_at` is the request time plus the token's duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshServiceToken {
    pub token_id: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Delete a token; it stops authenticating at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteServiceToken {
    pub token_id: String,
}

macro_rules! command_from {
    ($($variant:ident($command:ty)),*) => {
        $(impl From<$command> for ServiceTokenCommand {
            fn from(command: $command) -> Self {
                ServiceTokenCommand::$variant(command)
            }
        })*
    };
}

command_from!(
    Create(CreateServiceToken),
    Update(UpdateServiceToken),
    Rotate(RotateServiceToken),
    Refresh(RefreshServiceToken),
    Delete(DeleteServiceToken)
);

/// The rules of the service token commands.
pub fn decide(
    state: &ServiceTokenState,
    command: ServiceTokenCommand,
) -> Result<Vec<Event>, DomainError> {
    match command {
        ServiceTokenCommand::Create(c) => {
            if state.stream_version > 0 {
                return Err(DomainError::AlreadyExists { kind: "service token", id: c.token_id });
            }
            check_token_id(&c.token_id)?;
            check_client_id(&c.client_id)?;
            let name = check_name(&c.name)?;
            check_secret_hash(&c.secret_hash)?;
            check_expiry(&c.duration, c.expires_at)?;
            Ok(vec![Event::ServiceTokenCreated(ServiceTokenCreated {
                token_id: c.token_id,
                client_id: c.client_id,
                name,
                secret_hash: c.secret_hash,
                duration: c.duration,
                expires_at: c.expires_at,
            })])
        }
        ServiceTokenCommand::Update(c) => {
            existing(state, &c.token_id)?;
            let name = check_name(&c.name)?;
            check_expiry(&c.duration, c.expires_at)?;
            Ok(vec![Event::ServiceTokenUpdated(ServiceTokenUpdated {
                token_id: c.token_id,
                name,
                duration: c.duration,
                expires_at: c.expires_at,
            })])
        }
        ServiceTokenCommand::Rotate(c) => {
            let token = existing(state, &c.token_id)?;
            check_secret_hash(&c.secret_hash)?;
            if c.secret_hash == token.secret_hash {
                return Err(DomainError::invalid("secret_hash", "is the current secret's"));
            }
            Ok(vec![Event::ServiceTokenRotated(ServiceTokenRotated {
                token_id: c.token_id,
                secret_hash: c.secret_hash,
            })])
        }
        ServiceTokenCommand::Refresh(c) => {
            let token = existing(state, &c.token_id)?;
            check_expiry(&token.duration, c.expires_at)?;
            Ok(vec![Event::ServiceTokenUpdated(ServiceTokenUpdated {
                token_id: c.token_id,
                name: token.name.clone(),
                duration: token.duration.clone(),
                expires_at: c.expires_at,
            })])
        }
        ServiceTokenCommand::Delete(c) => {
            existing(state, &c.token_id)?;
            Ok(vec![Event::ServiceTokenDeleted(ServiceTokenDeleted { token_id: c.token_id })])
        }
    }
}

fn existing<'a>(state: &'a ServiceTokenState, id: &str) -> Result<&'a ServiceToken, DomainError> {
    state
        .token
        .as_ref()
        .ok_or_else(|| DomainError::NotFound { kind: "service token", id: id.to_owned() })
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A token id is a lowercase hyphenated UUID, as Cloudflare's.
pub fn check_token_id(id: &str) -> Result<(), DomainError> {
    let canonical = uuid::Uuid::parse_str(id).map(|u| u.hyphenated().to_string());
    if canonical.as_deref() == Ok(id) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "id",
            format!("`{}` is not a lowercase UUID", super::ids::truncate_for_message(id)),
        ))
    }
}

/// A client id is 32 lowercase hex characters followed by `.access`.
pub fn check_client_id(client_id: &str) -> Result<(), DomainError> {
    match client_id.strip_suffix(".access") {
        Some(hex) if is_lower_hex(hex, 32) => Ok(()),
        _ => Err(DomainError::invalid(
            "client_id",
            format!(
                "`{}` is not 32 lowercase hex characters followed by `.access`",
                super::ids::truncate_for_message(client_id)
            ),
        )),
    }
}

fn check_secret_hash(hash: &str) -> Result<(), DomainError> {
    if is_lower_hex(hash, 64) {
        Ok(())
    } else {
        Err(DomainError::invalid("secret_hash", "is not a lowercase hex SHA-256"))
    }
}

/// Trims a name and checks it: 1 to 255 characters, no control characters.
fn check_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_SERVICE_TOKEN_NAME_LEN {
        return Err(DomainError::invalid(
            "name",
            format!("is longer than {MAX_SERVICE_TOKEN_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// A finite duration needs an expiry and `forever` must not have one.
fn check_expiry(duration: &str, expires_at: Option<DateTime<Utc>>) -> Result<(), DomainError> {
    match (TokenLifetime::parse(duration)?, expires_at) {
        (TokenLifetime::Forever, None) | (TokenLifetime::Finite(_), Some(_)) => Ok(()),
        (TokenLifetime::Forever, Some(_)) => {
            Err(DomainError::invalid("expires_at", "must be absent for a `forever` token"))
        }
        (TokenLifetime::Finite(_), None) => {
            Err(DomainError::invalid("expires_at", "is required for a token with a duration"))
        }
    }
}

impl super::Aggregate for ServiceTokenState {
    type Command = ServiceTokenCommand;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        ServiceTokenState::apply(self, event);
    }

    fn decide(&self, command: ServiceTokenCommand, _: &()) -> Result<Vec<Event>, DomainError> {
        decide(self, command)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
