//! Tool and prompt overrides (alias, description, enabled) and their rules.
//!
//! An override names an upstream tool or prompt by its original `name` and may give it an
//! `alias`, replace its `description`, or enable/disable it. Overrides exist at two levels:
//! on the server (they apply in every portal) and on a portal's mapping of the server. The
//! exposed name is `{server_id}_{portal alias | server alias | original name}`; the portal's
//! description beats the server's.

use serde::{Deserialize, Serialize};

/// The longest alias accepted.
pub const MAX_ALIAS_LEN: usize = 40;
/// The longest overridden description accepted.
pub const MAX_OVERRIDE_DESCRIPTION_LEN: usize = 4096;
/// The longest upstream tool or prompt name an override may reference.
pub const MAX_CAPABILITY_NAME_LEN: usize = 256;
/// The most overrides one list (`updated_tools` or `updated_prompts`) may hold.
pub const MAX_OVERRIDES: usize = 2000;

/// One entry of `updated_tools` or `updated_prompts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityOverride {
    /// The upstream tool or prompt name.
    pub name: String,
    /// Exposed name instead of `name`; `None` resets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Replaces the upstream description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the tool or prompt is exposed; `None` keeps the default of its level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}
