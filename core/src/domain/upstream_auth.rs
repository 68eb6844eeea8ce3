//! Portico's own authorizations at OAuth-protected upstream servers.
//!
//! A server with `auth_type: oauth` is used either with the admin's authorization (the
//! server's credential, for every portal that maps it with `on_behalf: false`) or with each
//! person's own (`on_behalf: true`). Portico runs the OAuth flow to the upstream, keeps the
//! tokens in the vault (never in the log), and refreshes them. These events record that it
//! happened, for whom and until when; they never carry a token, a code or a client secret.
//!
//! Every event of one server goes to the stream `upstream-auth-{server_id}`, appended with no
//! expected version: the facts come from the data plane and never conflict with admin writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{PortalId, ServerId};

/// The stream of a server's upstream authorizations: `upstream-auth-{server_id}`.
pub fn upstream_auth_stream(server_id: &ServerId) -> String {
    format!("upstream-auth-{}", server_id.as_str())
}

/// Whose authorization at the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UpstreamGrantOwner {
    /// The server's own credential, authorized by an admin; used wherever the server is
    /// mapped with `on_behalf: false`, and by sync.
    Server,
    /// One person's, by Portico's user id; used where the server is mapped with
    /// `on_behalf: true`.
    User { id: String },
}

impl UpstreamGrantOwner {
    /// The person, for a user's authorization.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            UpstreamGrantOwner::Server => None,
            UpstreamGrantOwner::User { id } => Some(id),
        }
    }
}

/// How Portico identified itself to the upstream's authorization server (MCP authorization's
/// order of preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamClientKind {
    /// A client the admin registered with the authorization server (manual OAuth).
    Preregistered,
    /// Portico's Client ID Metadata Document.
    MetadataDocument,
    /// A client registered just now with Dynamic Client Registration.
    DynamicRegistration,
}

/// An authorization completed: Portico holds an access token (and usually a refresh token)
/// for `owner` at the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamAuthorized {
    pub server_id: ServerId,
    pub owner: UpstreamGrantOwner,
    /// The portal the person authorized from (none for an admin's authorization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_id: Option<PortalId>,
    /// The authorization server's issuer, when its metadata names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub client: UpstreamClientKind,
    /// The scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the access token expires, if the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub refreshable: bool,
}

/// An access token was refreshed silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTokenRefreshed {
    pub server_id: ServerId,
    pub owner: UpstreamGrantOwner,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An authorization stopped working: the refresh was refused (the grant was revoked at the
/// upstream, or it expired) or there was nothing to refresh with. The owner must authorize
/// again; nobody else is affected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamAuthorizationFailed {
    pub server_id: ServerId,
    pub owner: UpstreamGrantOwner,
    /// What the authorization server answered, in words (never a token).
    pub reason: String,
}

/// Why Portico let go of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamRevokeReason {
    /// The person signed out of the portal: all their upstream authorizations go.
    SignedOut,
    /// The server was removed, or its URL changed.
    ServerChanged,
}

/// Portico deleted an authorization's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamAuthorizationRevoked {
    pub server_id: ServerId,
    pub owner: UpstreamGrantOwner,
    pub reason: UpstreamRevokeReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_have_a_stable_json_shape() {
        let user = UpstreamGrantOwner::User { id: "u1".to_owned() };
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            serde_json::json!({"kind": "user", "id": "u1"})
        );
        assert_eq!(
            serde_json::to_value(UpstreamGrantOwner::Server).unwrap(),
            serde_json::json!({"kind": "server"})
        );
        assert_eq!(user.user_id(), Some("u1"));
        assert_eq!(UpstreamGrantOwner::Server.user_id(), None);
    }
}
