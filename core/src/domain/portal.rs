//! The portal aggregate: one MCP endpoint that puts several servers behind a single login.
//!
//! `hostname` is a bare host name (`mcp.example.com`); the endpoint is `https://{hostname}/mcp`.
//!
//! [`decide`] holds the rules of [`PortalCommand`]s. The rules about a portal's servers need to
//! know which servers exist and their server-level overrides: the caller provides that through
//! [`ServerDirectory`]. [`PortalState::apply`] folds the events of one portal's stream
//! (`portal-{id}`) and holds no rules.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::{PortalId, ServerId, truncate_for_message};
use super::overrides::{self, Capability, CapabilityOverride};
use super::server::{Server, ServerSettings};
use super::validate::{self, MAX_DESCRIPTION_LEN};
use crate::event::Event;

/// The most servers one portal may hold.
pub const MAX_SERVERS_PER_PORTAL: usize = 256;

crate::wire_enum! {
    /// Whether and how code mode is offered to clients of a portal.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub enum CodeMode {
        /// Unavailable: a client asking for it (`?codemode=search_and_execute`) is refused.
        Off = "off",
        /// Off unless the client asks for it with `?codemode=search_and_execute`.
        #[default]
        OptIn = "opt_in",
        /// On unless the client sends `?codemode=off`.
        DefaultOn = "default_on",
        /// Always on; query parameters are ignored.
        Enforced = "enforced",
    }
}

impl CodeMode {
    /// The deprecated `allow_code_mode` flag the read side derives: any mode but `off`.
    pub fn allows_code_mode(self) -> bool {
        self != CodeMode::Off
    }

    /// Resolves the two wire fields of a write into one mode. `allow_code_mode` is the
    /// deprecated flag: `false` means `off`, `true` means any mode but `off` (`opt_in` when it
    /// is sent alone). When both are sent they must agree. When neither is sent the mode is the
    /// default, `opt_in`, on create and on update alike: a PUT replaces the whole portal.
    pub fn resolve(
        code_mode: Option<CodeMode>,
        allow_code_mode: Option<bool>,
    ) -> Result<CodeMode, DomainError> {
        match (code_mode, allow_code_mode) {
            (None, None) => Ok(CodeMode::default()),
            (Some(mode), None) => Ok(mode),
            (None, Some(false)) => Ok(CodeMode::Off),
            (None, Some(true)) => Ok(CodeMode::OptIn),
            (Some(mode), Some(allow)) if allow == mode.allows_code_mode() => Ok(mode),
            (Some(mode), Some(allow)) => Err(DomainError::invalid(
                "allow_code_mode",
                format!(
                    "`{allow}` contradicts `code_mode` `{}`: the deprecated `allow_code_mode` \
                     means any code mode but `off` when `true` and `off` when `false`; send only \
                     `code_mode`",
                    mode.as_str()
                ),
            )),
        }
    }
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

/// The stream that holds one portal's events: `portal-{id}`.
pub fn portal_stream(id: &PortalId) -> String {
    format!("portal-{id}")
}

/// What the portal rules need to know about one existing server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerCapabilities {
    /// The server-level tool overrides.
    pub updated_tools: Vec<CapabilityOverride>,
    /// The server-level prompt overrides.
    pub updated_prompts: Vec<CapabilityOverride>,
    /// Names of the upstream tools found by sync (empty until the server was synced).
    pub tool_names: Vec<String>,
    /// Names of the upstream prompts found by sync.
    pub prompt_names: Vec<String>,
}

impl ServerCapabilities {
    /// The facts known from a server's settings alone (no sync yet).
    pub fn from_settings(settings: &ServerSettings) -> Self {
        ServerCapabilities {
            updated_tools: settings.updated_tools.clone(),
            updated_prompts: settings.updated_prompts.clone(),
            tool_names: Vec::new(),
            prompt_names: Vec::new(),
        }
    }

    /// The facts known from an existing server's state (no sync yet).
    pub fn from_server(server: &Server) -> Self {
        Self::from_settings(&server.settings)
    }

    fn capability(&self, capability: Capability) -> (&[CapabilityOverride], &[String]) {
        match capability {
            Capability::Tool => (&self.updated_tools, &self.tool_names),
            Capability::Prompt => (&self.updated_prompts, &self.prompt_names),
        }
    }
}

/// Read-only look-up of the servers that exist now, for the rules of a portal's `servers`.
/// The layer above implements it over its read model of servers.
pub trait ServerDirectory {
    /// The facts of server `id`, or `None` if it does not exist (never added, or removed).
    fn server(&self, id: &ServerId) -> Option<ServerCapabilities>;
}

impl ServerDirectory for BTreeMap<ServerId, ServerCapabilities> {
    fn server(&self, id: &ServerId) -> Option<ServerCapabilities> {
        self.get(id).cloned()
    }
}

/// A command on the portal aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalCommand {
    Add(AddPortal),
    Update(UpdatePortal),
    Remove(RemovePortal),
}

impl From<AddPortal> for PortalCommand {
    fn from(command: AddPortal) -> Self {
        PortalCommand::Add(command)
    }
}

impl From<UpdatePortal> for PortalCommand {
    fn from(command: UpdatePortal) -> Self {
        PortalCommand::Update(command)
    }
}

impl From<RemovePortal> for PortalCommand {
    fn from(command: RemovePortal) -> Self {
        PortalCommand::Remove(command)
    }
}

/// A portal's mutable settings as a client writes them: like [`PortalSettings`], except that
/// code mode is still the two wire fields `code_mode` and the deprecated `allow_code_mode`,
/// which [`decide`] resolves into one [`CodeMode`]. Deserializes from the body of a create or
/// update request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortalInput {
    pub name: String,
    /// Bare host name; stored lowercased.
    pub hostname: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub code_mode: Option<CodeMode>,
    /// Deprecated: `true` means any code mode but `off`, `false` means `off`.
    #[serde(default)]
    pub allow_code_mode: Option<bool>,
    #[serde(default)]
    pub secure_web_gateway: bool,
    #[serde(default)]
    pub servers: Vec<PortalServer>,
}

/// Create a portal (`POST /portals`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPortal {
    pub portal_id: PortalId,
    pub input: PortalInput,
}

/// Replace a portal's settings, servers included (`PUT /portals/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePortal {
    pub portal_id: PortalId,
    pub input: PortalInput,
}

/// Delete a portal (`DELETE /portals/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovePortal {
    pub portal_id: PortalId,
}

/// An existing portal, as its events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portal {
    pub portal_id: PortalId,
    pub settings: PortalSettings,
}

/// The state of one portal's stream, folded from its events. `Default` is a stream without
/// events: the portal does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortalState {
    /// The portal as it is now; `None` if it was never added, or was removed.
    pub portal: Option<Portal>,
    /// How many events of this portal were folded: the stream version to expect on the next
    /// append.
    pub stream_version: u64,
}

impl PortalState {
    /// Folds one event into the state. Holds no rules: every fact is taken as recorded.
    /// Events of other aggregates are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::PortalAdded(e) => {
                self.portal =
                    Some(Portal { portal_id: e.portal_id.clone(), settings: e.settings.clone() });
            }
            Event::PortalUpdated(e) => {
                if let Some(portal) = &mut self.portal {
                    portal.settings = e.settings.clone();
                }
            }
            Event::PortalRemoved(_) => self.portal = None,
            // Events of other aggregates are not this portal's.
            _ => return,
        }
        self.stream_version += 1;
    }

    /// Whether the portal exists now (added and not removed since).
    pub fn exists(&self) -> bool {
        self.portal.is_some()
    }
}

/// Decides a command against the current state of its portal: all the business rules.
/// `servers` tells which servers exist, for the rules of the portal's `servers`. Returns the
/// events to append (to [`portal_stream`]) or the first rule broken.
///
/// An update always emits [`PortalUpdated`], even when nothing changed: a PUT is recorded, and
/// the caller can rely on one event per accepted command.
pub fn decide(
    state: &PortalState,
    command: PortalCommand,
    servers: &dyn ServerDirectory,
) -> Result<Vec<Event>, DomainError> {
    match command {
        PortalCommand::Add(AddPortal { portal_id, input }) => {
            if state.exists() {
                return Err(DomainError::AlreadyExists { kind: "portal", id: portal_id.into() });
            }
            let settings = settings(input, servers)?;
            Ok(vec![Event::PortalAdded(PortalAdded { portal_id, settings })])
        }
        PortalCommand::Update(UpdatePortal { portal_id, input }) => {
            if !state.exists() {
                return Err(DomainError::NotFound { kind: "portal", id: portal_id.into() });
            }
            let settings = settings(input, servers)?;
            Ok(vec![Event::PortalUpdated(PortalUpdated { portal_id, settings })])
        }
        PortalCommand::Remove(RemovePortal { portal_id }) => {
            if !state.exists() {
                return Err(DomainError::NotFound { kind: "portal", id: portal_id.into() });
            }
            Ok(vec![Event::PortalRemoved(PortalRemoved { portal_id })])
        }
    }
}

/// Checks a portal's input and turns it into the settings to record.
fn settings(
    input: PortalInput,
    servers: &dyn ServerDirectory,
) -> Result<PortalSettings, DomainError> {
    validate::name("name", &input.name)?;
    let hostname = validate::portal_hostname("hostname", &input.hostname)?;
    validate::description("description", input.description.as_deref(), MAX_DESCRIPTION_LEN)?;
    let code_mode = CodeMode::resolve(input.code_mode, input.allow_code_mode)?;
    validate_servers(&input.servers, servers)?;
    Ok(PortalSettings {
        name: input.name,
        hostname,
        description: input.description,
        code_mode,
        secure_web_gateway: input.secure_web_gateway,
        servers: input.servers,
    })
}

fn validate_servers(
    mapping: &[PortalServer],
    directory: &dyn ServerDirectory,
) -> Result<(), DomainError> {
    if mapping.len() > MAX_SERVERS_PER_PORTAL {
        return Err(DomainError::invalid(
            "servers",
            format!(
                "has {} servers; a portal holds at most {MAX_SERVERS_PER_PORTAL}",
                mapping.len()
            ),
        ));
    }
    let mut seen: HashMap<&ServerId, usize> = HashMap::with_capacity(mapping.len());
    for (i, server) in mapping.iter().enumerate() {
        let id_field = format!("servers[{i}].server_id");
        if let Some(first) = seen.insert(&server.server_id, i) {
            return Err(DomainError::invalid(
                id_field,
                format!(
                    "`{}` is already listed at `servers[{first}]`; merge the two entries",
                    truncate_for_message(server.server_id.as_str())
                ),
            ));
        }
        let Some(facts) = directory.server(&server.server_id) else {
            return Err(DomainError::invalid(
                id_field,
                format!(
                    "server `{}` does not exist",
                    truncate_for_message(server.server_id.as_str())
                ),
            ));
        };
        for (capability, list) in [
            (Capability::Tool, &server.updated_tools),
            (Capability::Prompt, &server.updated_prompts),
        ] {
            let field = format!("servers[{i}].{}", capability.list_field());
            let (underlying, known_names) = facts.capability(capability);
            overrides::validate_list(&field, list)?;
            overrides::validate_aliases_unique(&field, capability, list, underlying, known_names)?;
        }
    }
    Ok(())
}

impl super::Aggregate for PortalState {
    type Command = PortalCommand;
    type Services = dyn ServerDirectory;

    fn apply(&mut self, event: &Event) {
        PortalState::apply(self, event);
    }

    fn decide(
        &self,
        command: PortalCommand,
        servers: &dyn ServerDirectory,
    ) -> Result<Vec<Event>, DomainError> {
        decide(self, command, servers)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
