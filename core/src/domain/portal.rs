//! The portal aggregate: one MCP endpoint that puts several servers behind a single login.
//!
//! `hostname` is a bare host name (`mcp.example.com`); the endpoint is `https://{hostname}/mcp`.

use serde::{Deserialize, Serialize};

use super::ids::{PortalId, ServerId};
use super::overrides::CapabilityOverride;

/// Whether and how code mode is offered to clients of a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeMode {
    /// Unavailable; query parameters are ignored.
    Off,
    /// Off unless the client asks for it with `?codemode=search_and_execute`.
    #[default]
    OptIn,
    /// On unless the client sends `?codemode=off`.
    DefaultOn,
    /// Always on; query parameters are ignored.
    Enforced,
}

/// One server in a portal, with the portal's settings for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalServer {
    pub server_id: ServerId,
    /// The server starts toggled off in sessions, and its tools and prompts are hidden unless an
    /// override enables them.
    #[serde(default)]
    pub default_disabled: bool,
    /// Each user does their own upstream OAuth (`true`), or the portal uses the server's admin
    /// credential (`false`). Service tokens only reach servers with `false`.
    #[serde(default = "default_on_behalf")]
    pub on_behalf: bool,
    #[serde(default)]
    pub updated_tools: Vec<CapabilityOverride>,
    #[serde(default)]
    pub updated_prompts: Vec<CapabilityOverride>,
}

fn default_on_behalf() -> bool {
    true
}

/// The mutable settings of a portal; a PUT replaces all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortalSettings {
    pub name: String,
    /// Bare host name where the portal is served.
    pub hostname: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub code_mode: CodeMode,
    #[serde(default)]
    pub secure_web_gateway: bool,
    #[serde(default)]
    pub servers: Vec<PortalServer>,
}

/// A portal was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalAdded {
    pub portal_id: PortalId,
    pub settings: PortalSettings,
}

/// A portal's settings (including its servers) were replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalUpdated {
    pub portal_id: PortalId,
    pub settings: PortalSettings,
}

/// A portal was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRemoved {
    pub portal_id: PortalId,
}
