//! The MCP server aggregate: an upstream MCP endpoint registered with Portico.
//!
//! `hostname` (the full URL of the upstream endpoint) and `auth_type` are fixed at creation.
//! Credentials are never part of an event: they go to the vault, and the log records only that
//! a credential of a kind was set and its version ([`ServerCredentialSet`]).
//!
//! [`decide`] holds the rules of [`ServerCommand`]s; [`ServerState::apply`] folds the events of
//! one server's stream (`server-{id}`) and holds none.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::ServerId;
use super::overrides::{self, Capability, CapabilityOverride};
use super::validate::{self, MAX_DESCRIPTION_LEN};
use crate::event::Event;

crate::wire_enum! {
    /// How Portico authenticates to the upstream server.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum AuthType {
        Oauth = "oauth",
        Bearer = "bearer",
        Unauthenticated = "unauthenticated",
    }
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

impl CredentialKind {
    /// The wire name of the write-only field (`auth_credentials`, `client_secret`).
    pub fn field(self) -> &'static str {
        match self {
            CredentialKind::AuthCredentials => "auth_credentials",
            CredentialKind::ClientSecret => "client_secret",
        }
    }
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

/// A sync reached the upstream and read its tools and prompts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSynced {
    pub server_id: ServerId,
    /// The upstream's capabilities; `None` when they are the same as at the last sync (a
    /// periodic sync of an unchanged server records only that it happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<SyncedCapabilities>,
    /// Server-level tool overrides dropped because their tool is gone upstream (renamed or
    /// removed): an alias does not follow a renamed tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_tool_overrides: Vec<String>,
    /// The same for prompts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_prompt_overrides: Vec<String>,
}

/// The MCP `Tool` and `Prompt` objects an upstream listed, as it sent them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncedCapabilities {
    pub tools: Vec<serde_json::Value>,
    pub prompts: Vec<serde_json::Value>,
}

impl SyncedCapabilities {
    /// The `name` of each tool, in order (a tool without a string name has none).
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        names(&self.tools)
    }

    /// The `name` of each prompt, in order.
    pub fn prompt_names(&self) -> impl Iterator<Item = &str> {
        names(&self.prompts)
    }
}

fn names(items: &[serde_json::Value]) -> impl Iterator<Item = &str> {
    items.iter().filter_map(|item| item.get("name")?.as_str())
}

/// A sync did not reach the upstream, or the upstream answered with an error. The tools and
/// prompts of the last successful sync stay in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSyncFailed {
    pub server_id: ServerId,
    pub error: SyncError,
}

/// Why a sync failed, in the shape of the API's `error_details`. Never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncError {
    pub cause: String,
    /// The upstream answered (with an HTTP or MCP error), as opposed to a local failure.
    pub is_upstream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_code: Option<i64>,
    /// Whether trying again later may succeed.
    pub retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// The most tools, and separately prompts, one server may list.
pub const MAX_SYNCED_CAPABILITIES: usize = 10_000;
/// The longest `cause` kept for a failed sync.
pub const MAX_SYNC_ERROR_LEN: usize = 2_000;

/// The stream that holds one server's events: `server-{id}`.
pub fn server_stream(id: &ServerId) -> String {
    format!("server-{id}")
}

/// The stream that holds the results of one server's syncs: `server-sync-{id}`. They are
/// appended with no expected version: a sync decides against the server's state, but never
/// conflicts with an admin write.
pub fn sync_stream(id: &ServerId) -> String {
    format!("server-sync-{id}")
}

/// A command on the server aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCommand {
    Add(AddServer),
    Update(UpdateServer),
    Remove(RemoveServer),
    RecordSync(RecordSync),
}

impl From<RecordSync> for ServerCommand {
    fn from(command: RecordSync) -> Self {
        ServerCommand::RecordSync(command)
    }
}

/// Record the outcome of a sync of the server's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSync {
    pub server_id: ServerId,
    pub outcome: SyncOutcome,
}

/// What a sync found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The upstream listed these capabilities.
    Synced(SyncedCapabilities),
    /// The upstream listed exactly what the catalog holds from the last successful sync.
    Unchanged,
    /// The upstream could not be synced.
    Failed(SyncError),
}

impl From<AddServer> for ServerCommand {
    fn from(command: AddServer) -> Self {
        ServerCommand::Add(command)
    }
}

impl From<UpdateServer> for ServerCommand {
    fn from(command: UpdateServer) -> Self {
        ServerCommand::Update(command)
    }
}

impl From<RemoveServer> for ServerCommand {
    fn from(command: RemoveServer) -> Self {
        ServerCommand::Remove(command)
    }
}

/// Register a server (`POST /servers`).
///
/// The write-only credentials never reach the domain: the caller stores the secret in the vault
/// first, under the version [`ServerState::next_credential_version`] gives, and the command only
/// says that a new value exists under that version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddServer {
    pub server_id: ServerId,
    /// Full URL of the upstream MCP endpoint.
    pub hostname: String,
    pub auth_type: AuthType,
    pub settings: ServerSettings,
    /// The vault version of a newly sent `auth_credentials`, if one was sent.
    pub auth_credentials: Option<u32>,
    /// The vault version of a newly sent `client_secret`, if one was sent.
    pub client_secret: Option<u32>,
}

/// Replace a server's mutable settings (`PUT /servers/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateServer {
    pub server_id: ServerId,
    /// Fixed at creation; accepted only if equal to the stored value (clients that send the
    /// full object back).
    pub hostname: Option<String>,
    /// Fixed at creation; accepted only if equal to the stored value.
    pub auth_type: Option<AuthType>,
    pub settings: ServerSettings,
    /// The vault version of a newly sent `auth_credentials`; `None` keeps the stored one.
    pub auth_credentials: Option<u32>,
    /// The vault version of a newly sent `client_secret`; `None` keeps the stored one.
    pub client_secret: Option<u32>,
}

/// Delete a server (`DELETE /servers/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveServer {
    pub server_id: ServerId,
}

/// A registered server, as its events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub server_id: ServerId,
    pub hostname: String,
    pub auth_type: AuthType,
    pub settings: ServerSettings,
}

/// The state of one server's stream, folded from its events. `Default` is a stream without
/// events: the server does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerState {
    /// The server as it is now; `None` if it was never added, or was removed.
    pub server: Option<Server>,
    /// The latest vault version of each credential kind. Kept across removal: a server added
    /// again under the same id continues the stream, and its versions keep increasing.
    pub credential_versions: BTreeMap<CredentialKind, u32>,
    /// The names of the tools at the last successful sync (empty before the first).
    #[serde(default)]
    pub synced_tools: BTreeSet<String>,
    /// The names of the prompts at the last successful sync.
    #[serde(default)]
    pub synced_prompts: BTreeSet<String>,
    /// Whether a sync ever succeeded.
    #[serde(default)]
    pub ever_synced: bool,
    /// How many events of this server were folded: the stream version to expect on the next
    /// append.
    pub stream_version: u64,
}

impl ServerState {
    /// Folds one event into the state. Holds no rules: every fact is taken as recorded.
    /// Events of other aggregates are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ServerAdded(e) => {
                self.server = Some(Server {
                    server_id: e.server_id.clone(),
                    hostname: e.hostname.clone(),
                    auth_type: e.auth_type,
                    settings: e.settings.clone(),
                });
            }
            Event::ServerUpdated(e) => {
                if let Some(server) = &mut self.server {
                    server.settings = e.settings.clone();
                }
            }
            Event::ServerRemoved(_) => {
                self.server = None;
                self.synced_tools.clear();
                self.synced_prompts.clear();
                self.ever_synced = false;
            }
            Event::ServerSynced(e) => {
                if let Some(server) = &mut self.server {
                    drop_overrides(&mut server.settings, e);
                }
                if let Some(capabilities) = &e.capabilities {
                    self.synced_tools = capabilities.tool_names().map(str::to_owned).collect();
                    self.synced_prompts = capabilities.prompt_names().map(str::to_owned).collect();
                }
                self.ever_synced = true;
            }
            Event::ServerSyncFailed(_) => {}
            Event::ServerCredentialSet(e) => {
                self.credential_versions.insert(e.credential, e.version);
            }
            // Events of other aggregates are not this server's.
            _ => return,
        }
        // Sync results live on their own stream (`server-sync-{id}`), so that an admin write
        // never conflicts with a sync: they do not count toward the server stream's version.
        if !matches!(event, Event::ServerSynced(_) | Event::ServerSyncFailed(_)) {
            self.stream_version += 1;
        }
    }

    /// Whether the server exists now (added and not removed since).
    pub fn exists(&self) -> bool {
        self.server.is_some()
    }

    /// The latest version of a credential, `0` if none was ever set.
    pub fn credential_version(&self, kind: CredentialKind) -> u32 {
        self.credential_versions.get(&kind).copied().unwrap_or(0)
    }

    /// The version under which to store a new value of a credential in the vault.
    pub fn next_credential_version(&self, kind: CredentialKind) -> u32 {
        self.credential_version(kind).saturating_add(1)
    }
}

/// Decides a command against the current state of its server: all the business rules.
/// Returns the events to append (to [`server_stream`]) or the first rule broken.
///
/// An update always emits [`ServerUpdated`], even when nothing changed: a PUT is a fact worth
/// recording (who confirmed the settings, when), and the caller can rely on one event per
/// accepted command.
pub fn decide(state: &ServerState, command: ServerCommand) -> Result<Vec<Event>, DomainError> {
    match command {
        ServerCommand::Add(command) => add(state, command),
        ServerCommand::Update(command) => update(state, command),
        ServerCommand::Remove(command) => remove(state, command),
        ServerCommand::RecordSync(command) => record_sync(state, command),
    }
}

/// Removes the overrides a sync dropped from a server's settings.
pub fn drop_overrides(settings: &mut ServerSettings, synced: &ServerSynced) {
    if !synced.dropped_tool_overrides.is_empty() {
        settings.updated_tools.retain(|o| !synced.dropped_tool_overrides.contains(&o.name));
    }
    if !synced.dropped_prompt_overrides.is_empty() {
        settings.updated_prompts.retain(|o| !synced.dropped_prompt_overrides.contains(&o.name));
    }
}

fn record_sync(state: &ServerState, command: RecordSync) -> Result<Vec<Event>, DomainError> {
    let Some(server) = &state.server else {
        return Err(DomainError::NotFound { kind: "server", id: command.server_id.into() });
    };
    let event = match command.outcome {
        SyncOutcome::Synced(capabilities) => {
            for (field, items) in
                [("tools", &capabilities.tools), ("prompts", &capabilities.prompts)]
            {
                if items.len() > MAX_SYNCED_CAPABILITIES {
                    return Err(DomainError::invalid(
                        field,
                        format!(
                            "the upstream listed {} {field}; at most {MAX_SYNCED_CAPABILITIES} are kept",
                            items.len()
                        ),
                    ));
                }
            }
            let tools: BTreeSet<&str> = capabilities.tool_names().collect();
            let prompts: BTreeSet<&str> = capabilities.prompt_names().collect();
            // Only an override of a capability the last sync saw and this one does not is
            // dropped: an override written before the first sync waits for its tool.
            let gone =
                |list: &[CapabilityOverride], before: &BTreeSet<String>, now: &BTreeSet<&str>| {
                    list.iter()
                        .filter(|o| before.contains(&o.name) && !now.contains(o.name.as_str()))
                        .map(|o| o.name.clone())
                        .collect::<Vec<_>>()
                };
            let dropped_tool_overrides =
                gone(&server.settings.updated_tools, &state.synced_tools, &tools);
            let dropped_prompt_overrides =
                gone(&server.settings.updated_prompts, &state.synced_prompts, &prompts);
            Event::ServerSynced(ServerSynced {
                server_id: command.server_id,
                capabilities: Some(capabilities),
                dropped_tool_overrides,
                dropped_prompt_overrides,
            })
        }
        SyncOutcome::Unchanged => {
            if !state.ever_synced {
                return Err(DomainError::invalid(
                    "capabilities",
                    "an unchanged sync needs an earlier successful one to compare with",
                ));
            }
            Event::ServerSynced(ServerSynced {
                server_id: command.server_id,
                capabilities: None,
                dropped_tool_overrides: Vec::new(),
                dropped_prompt_overrides: Vec::new(),
            })
        }
        SyncOutcome::Failed(mut error) => {
            if error.cause.len() > MAX_SYNC_ERROR_LEN {
                let mut end = MAX_SYNC_ERROR_LEN;
                while !error.cause.is_char_boundary(end) {
                    end -= 1;
                }
                error.cause.truncate(end);
            }
            Event::ServerSyncFailed(ServerSyncFailed { server_id: command.server_id, error })
        }
    };
    Ok(vec![event])
}

fn add(state: &ServerState, command: AddServer) -> Result<Vec<Event>, DomainError> {
    if state.exists() {
        return Err(DomainError::AlreadyExists { kind: "server", id: command.server_id.into() });
    }
    validate::server_url("hostname", &command.hostname)?;
    validate_settings(&command.settings)?;
    let credentials =
        credentials(state, command.auth_type, command.auth_credentials, command.client_secret)?;
    let mut events = vec![Event::ServerAdded(ServerAdded {
        server_id: command.server_id.clone(),
        hostname: command.hostname,
        auth_type: command.auth_type,
        settings: command.settings,
    })];
    events.extend(credential_events(&command.server_id, credentials));
    Ok(events)
}

fn update(state: &ServerState, command: UpdateServer) -> Result<Vec<Event>, DomainError> {
    let Some(server) = &state.server else {
        return Err(DomainError::NotFound { kind: "server", id: command.server_id.into() });
    };
    if command.hostname.as_ref().is_some_and(|hostname| *hostname != server.hostname) {
        return Err(DomainError::Immutable { field: "hostname" });
    }
    if command.auth_type.is_some_and(|auth_type| auth_type != server.auth_type) {
        return Err(DomainError::Immutable { field: "auth_type" });
    }
    validate_settings(&command.settings)?;
    let credentials =
        credentials(state, server.auth_type, command.auth_credentials, command.client_secret)?;
    let mut events = vec![Event::ServerUpdated(ServerUpdated {
        server_id: command.server_id.clone(),
        settings: command.settings,
    })];
    events.extend(credential_events(&command.server_id, credentials));
    Ok(events)
}

fn remove(state: &ServerState, command: RemoveServer) -> Result<Vec<Event>, DomainError> {
    if !state.exists() {
        return Err(DomainError::NotFound { kind: "server", id: command.server_id.into() });
    }
    Ok(vec![Event::ServerRemoved(ServerRemoved { server_id: command.server_id })])
}

/// The rules of the mutable settings, shared by create and update.
fn validate_settings(settings: &ServerSettings) -> Result<(), DomainError> {
    validate::name("name", &settings.name)?;
    validate::description("description", settings.description.as_deref(), MAX_DESCRIPTION_LEN)?;
    for (capability, list) in [
        (Capability::Tool, &settings.updated_tools),
        (Capability::Prompt, &settings.updated_prompts),
    ] {
        let field = capability.list_field();
        overrides::validate_list(field, list)?;
        overrides::validate_aliases_unique(field, capability, list, &[], &[])?;
    }
    Ok(())
}

/// Checks the credentials a command sets against the server's auth type and the versions
/// already recorded, and returns them in the order their events are emitted.
fn credentials(
    state: &ServerState,
    auth_type: AuthType,
    auth_credentials: Option<u32>,
    client_secret: Option<u32>,
) -> Result<Vec<(CredentialKind, u32)>, DomainError> {
    if auth_type == AuthType::Unauthenticated && auth_credentials.is_some() {
        return Err(DomainError::invalid(
            "auth_credentials",
            "an `unauthenticated` server takes no credentials; leave `auth_credentials` out",
        ));
    }
    if auth_type != AuthType::Oauth && client_secret.is_some() {
        return Err(DomainError::invalid(
            "client_secret",
            format!(
                "only `oauth` servers take a client secret, and this one is `{}`",
                auth_type.as_str()
            ),
        ));
    }
    let sent = [
        (CredentialKind::AuthCredentials, auth_credentials),
        (CredentialKind::ClientSecret, client_secret),
    ];
    let mut set = Vec::new();
    for (kind, version) in sent {
        let Some(version) = version else { continue };
        let current = state.credential_version(kind);
        if version <= current {
            return Err(DomainError::invalid(
                kind.field(),
                format!("vault version {version} is not newer than the recorded version {current}"),
            ));
        }
        set.push((kind, version));
    }
    Ok(set)
}

fn credential_events(
    server_id: &ServerId,
    credentials: Vec<(CredentialKind, u32)>,
) -> impl Iterator<Item = Event> + '_ {
    credentials.into_iter().map(move |(credential, version)| {
        Event::ServerCredentialSet(ServerCredentialSet {
            server_id: server_id.clone(),
            credential,
            version,
        })
    })
}

impl super::Aggregate for ServerState {
    type Command = ServerCommand;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        ServerState::apply(self, event);
    }

    fn decide(&self, command: ServerCommand, _: &()) -> Result<Vec<Event>, DomainError> {
        decide(self, command)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
