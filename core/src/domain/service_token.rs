//! Service tokens: credentials for machines (`CF-Access-Client-Id` + `CF-Access-Client-Secret`),
//! Cloudflare-compatible. The log keeps the client id and the SHA-256 of the client secret,
//! never the secret itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
