//! The MCP server aggregate: an upstream MCP endpoint registered with Portico.
//!
//! `hostname` (the full URL of the upstream endpoint) and `auth_type` are fixed at creation.
//! Credentials are never part of an event: they go to the vault, and the log records only that
//! a credential of a kind was set and its version ([`ServerCredentialSet`]).

use serde::{Deserialize, Serialize};

use super::ids::ServerId;
use super::overrides::CapabilityOverride;

/// How Portico authenticates to the upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Oauth,
    Bearer,
    Unauthenticated,
}

/// Which write-only credential of a server was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `auth_credentials`: a bearer token, custom headers, or the manual OAuth configuration.
    AuthCredentials,
    /// `client_secret`: the OAuth client secret for manual mode.
    ClientSecret,
}

/// The mutable settings of a server; a PUT replaces all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerSettings {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_shared_oauth_callback_enabled: bool,
    #[serde(default)]
    pub secure_web_gateway: bool,
    #[serde(default)]
    pub updated_tools: Vec<CapabilityOverride>,
    #[serde(default)]
    pub updated_prompts: Vec<CapabilityOverride>,
}

/// A server was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAdded {
    pub server_id: ServerId,
    /// Full URL of the upstream MCP endpoint, e.g. `https://example.com/mcp`.
    pub hostname: String,
    pub auth_type: AuthType,
    pub settings: ServerSettings,
}

/// A server's mutable settings were replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerUpdated {
    pub server_id: ServerId,
    pub settings: ServerSettings,
}

/// A server was deleted. Its id may be registered again later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRemoved {
    pub server_id: ServerId,
}

/// A write-only credential of a server was stored in the vault under `version`.
/// The secret itself is never in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCredentialSet {
    pub server_id: ServerId,
    pub credential: CredentialKind,
    pub version: u32,
}
