//! The server catalog: every registered MCP server as the admin API shows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use portico_core::domain::ids::ServerId;
use portico_core::domain::server::{AuthType, CredentialKind, ServerSettings, SyncError};
use portico_core::domain::upstream_auth::UpstreamGrantOwner;
use portico_core::{Actor, Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// One server of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogServer {
    pub server_id: ServerId,
    /// Full URL of the upstream MCP endpoint.
    pub hostname: String,
    pub auth_type: AuthType,
    pub settings: ServerSettings,
    /// The vault version of each credential that was set (never the secret).
    pub credentials: BTreeMap<CredentialKind, u32>,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub modified_at: DateTime<Utc>,
    pub modified_by: Actor,
    /// The version of the server's stream this entry reflects (for optimistic concurrency).
    pub stream_version: u64,
    /// What the syncs of the upstream found.
    #[serde(default)]
    pub sync: SyncState,
    /// The admin's OAuth authorization of the server (`auth_type: oauth` only).
    #[serde(default)]
    pub admin_authorization: AdminAuthorization,
}

/// Where the admin's OAuth authorization of a server stands: the API's
/// `authentication_status` (`required`, `connected`, `stale`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AdminAuthorization {
    /// Never authorized, or its tokens were let go.
    #[default]
    Required,
    /// Portico holds tokens; they may be refreshed until `expires_at` and beyond.
    Connected { at: DateTime<Utc> },
    /// The tokens can no longer be refreshed: an admin must authorize again.
    Stale { reason: String, at: DateTime<Utc> },
}

/// A server's sync status, as the API's `status` field shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Not synced yet.
    #[default]
    Waiting,
    /// The last sync succeeded.
    Ready,
    /// The last sync failed; see `error`.
    Error,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Waiting => "waiting",
            SyncStatus::Ready => "ready",
            SyncStatus::Error => "error",
        }
    }
}

/// The synced capabilities of a server and how its last sync went.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncState {
    pub status: SyncStatus,
    /// The upstream's `Tool` objects at the last successful sync (shared, never copied on read).
    pub tools: Arc<Vec<serde_json::Value>>,
    /// The upstream's `Prompt` objects at the last successful sync.
    pub prompts: Arc<Vec<serde_json::Value>>,
    pub last_synced: Option<DateTime<Utc>>,
    pub last_successful_sync: Option<DateTime<Utc>>,
    /// Why the last sync failed, when it did.
    pub error: Option<SyncError>,
    /// The log position of the last event that changed `tools` or `prompts`.
    pub capabilities_position: u64,
    /// The log position of the last sync result (syncs have their own stream, so the server's
    /// `stream_version` does not move with them).
    #[serde(default)]
    pub position: u64,
}

/// Every server that exists now, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerCatalog {
    servers: BTreeMap<ServerId, CatalogServer>,
}

impl ServerCatalog {
    /// The server `id`, if it exists.
    pub fn get(&self, id: &ServerId) -> Option<&CatalogServer> {
        self.servers.get(id)
    }

    /// Every server, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &CatalogServer> {
        self.servers.values()
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Servers whose id or name contains `query` (case-insensitive), ordered by id.
    pub fn search<'a>(&'a self, query: &'a str) -> impl Iterator<Item = &'a CatalogServer> + 'a {
        let needle = query.to_lowercase();
        self.servers.values().filter(move |s| {
            needle.is_empty()
                || s.server_id.as_str().contains(&needle)
                || s.settings.name.to_lowercase().contains(&needle)
        })
    }
}

impl Projection for ServerCatalog {
    const NAME: &'static str = "server_catalog";
    const VERSION: u32 = 3;

    fn apply(&mut self, recorded: &RecordedEvent) {
        let at = recorded.recorded_at;
        let by = &recorded.actor;
        match &recorded.event {
            Event::ServerAdded(e) => {
                // A server added again after removal starts afresh, but its credential versions
                // continue (the vault keeps counting).
                self.servers.insert(
                    e.server_id.clone(),
                    CatalogServer {
                        server_id: e.server_id.clone(),
                        hostname: e.hostname.clone(),
                        auth_type: e.auth_type,
                        settings: e.settings.clone(),
                        credentials: BTreeMap::new(),
                        created_at: at,
                        created_by: by.clone(),
                        modified_at: at,
                        modified_by: by.clone(),
                        stream_version: recorded.stream_version,
                        sync: SyncState::default(),
                        admin_authorization: AdminAuthorization::default(),
                    },
                );
            }
            Event::ServerUpdated(e) => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    server.settings = e.settings.clone();
                    touch(server, recorded);
                }
            }
            Event::ServerCredentialSet(e) => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    server.credentials.insert(e.credential, e.version);
                    touch(server, recorded);
                }
            }
            Event::ServerRemoved(e) => {
                self.servers.remove(&e.server_id);
            }
            Event::ServerSynced(e) => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    portico_core::domain::server::drop_overrides(&mut server.settings, e);
                    let sync = &mut server.sync;
                    if let Some(capabilities) = &e.capabilities {
                        sync.tools = Arc::new(capabilities.tools.clone());
                        sync.prompts = Arc::new(capabilities.prompts.clone());
                        sync.capabilities_position = recorded.position;
                    }
                    sync.status = SyncStatus::Ready;
                    sync.last_synced = Some(at);
                    sync.last_successful_sync = Some(at);
                    sync.error = None;
                    sync.position = recorded.position;
                }
            }
            Event::ServerSyncFailed(e) => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    server.sync.status = SyncStatus::Error;
                    server.sync.last_synced = Some(at);
                    server.sync.error = Some(e.error.clone());
                    server.sync.position = recorded.position;
                }
            }
            Event::UpstreamAuthorized(e) if e.owner == UpstreamGrantOwner::Server => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    server.admin_authorization = AdminAuthorization::Connected { at };
                }
            }
            Event::UpstreamAuthorizationFailed(e) if e.owner == UpstreamGrantOwner::Server => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    server.admin_authorization =
                        AdminAuthorization::Stale { reason: e.reason.clone(), at };
                }
            }
            Event::UpstreamAuthorizationRevoked(e) if e.owner == UpstreamGrantOwner::Server => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    server.admin_authorization = AdminAuthorization::Required;
                }
            }
            // Only server events shape the catalog.
            _ => {}
        }
    }
}

fn touch(server: &mut CatalogServer, recorded: &RecordedEvent) {
    server.modified_at = recorded.recorded_at;
    server.modified_by = recorded.actor.clone();
    server.stream_version = recorded.stream_version;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use portico_core::domain::overrides::CapabilityOverride;
    use portico_core::domain::server::{
        ServerAdded, ServerSyncFailed, ServerSynced, ServerUpdated, SyncedCapabilities,
    };
    use serde_json::json;

    use super::*;

    fn id() -> ServerId {
        ServerId::parse("docs").unwrap()
    }

    fn recorded(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: "server-docs".to_owned(),
            stream_version: position,
            event_id: uuid::Uuid::now_v7(),
            schema_version: 1,
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + chrono::TimeDelta::seconds(i64::try_from(position).unwrap()),
            actor: Actor::system("test"),
            correlation_id: portico_core::CorrelationId::new(),
            event,
        }
    }

    fn added(updated_tools: Vec<CapabilityOverride>) -> Event {
        Event::ServerAdded(ServerAdded {
            server_id: id(),
            hostname: "https://docs.example.com/mcp".to_owned(),
            auth_type: AuthType::Unauthenticated,
            settings: ServerSettings {
                name: "Docs".to_owned(),
                updated_tools,
                ..ServerSettings::default()
            },
        })
    }

    fn synced(tools: Option<&[&str]>, dropped: &[&str]) -> Event {
        Event::ServerSynced(ServerSynced {
            server_id: id(),
            capabilities: tools.map(|tools| SyncedCapabilities {
                tools: tools.iter().map(|name| json!({"name": name})).collect(),
                prompts: vec![json!({"name": "summarise"})],
            }),
            dropped_tool_overrides: dropped.iter().map(|n| (*n).to_owned()).collect(),
            dropped_prompt_overrides: Vec::new(),
        })
    }

    fn failed(cause: &str) -> Event {
        Event::ServerSyncFailed(ServerSyncFailed {
            server_id: id(),
            error: SyncError {
                cause: cause.to_owned(),
                is_upstream: false,
                mcp_code: None,
                retryable: true,
                status_code: None,
            },
        })
    }

    fn tool_names(sync: &SyncState) -> Vec<&str> {
        sync.tools.iter().filter_map(|t| t["name"].as_str()).collect()
    }

    fn override_of(name: &str) -> CapabilityOverride {
        CapabilityOverride {
            name: name.to_owned(),
            alias: Some(format!("{name}_alias")),
            description: None,
            enabled: None,
        }
    }

    #[test]
    fn a_new_server_waits_for_its_first_sync() {
        let mut catalog = ServerCatalog::default();
        catalog.apply(&recorded(1, added(Vec::new())));
        let sync = &catalog.get(&id()).unwrap().sync;
        assert_eq!(sync.status, SyncStatus::Waiting);
        assert!(sync.tools.is_empty() && sync.prompts.is_empty());
        assert_eq!((sync.last_synced, sync.last_successful_sync), (None, None));
        assert_eq!(sync.error, None);
    }

    #[test]
    fn sync_status_goes_waiting_ready_error_ready() {
        let mut catalog = ServerCatalog::default();
        catalog.apply(&recorded(1, added(Vec::new())));

        catalog.apply(&recorded(2, synced(Some(&["search", "fetch"]), &[])));
        let server = catalog.get(&id()).unwrap();
        assert_eq!(server.sync.status, SyncStatus::Ready);
        assert_eq!(tool_names(&server.sync), ["search", "fetch"]);
        assert_eq!(server.sync.prompts.len(), 1);
        assert_eq!(server.sync.capabilities_position, 2);
        let first_success = server.sync.last_successful_sync.unwrap();
        assert_eq!(server.sync.last_synced, Some(first_success));
        assert_eq!(server.stream_version, 1, "syncs are not on the server's stream");
        assert_eq!(server.sync.position, 2);

        // A failure keeps the last tools and says why.
        catalog.apply(&recorded(3, failed("connection refused")));
        let server = catalog.get(&id()).unwrap();
        assert_eq!(server.sync.status, SyncStatus::Error);
        assert_eq!(server.sync.error.as_ref().unwrap().cause, "connection refused");
        assert_eq!(tool_names(&server.sync), ["search", "fetch"]);
        assert_eq!(server.sync.capabilities_position, 2);
        assert_eq!(server.sync.last_successful_sync, Some(first_success));
        assert!(server.sync.last_synced.unwrap() > first_success);
        assert_eq!(server.stream_version, 1);
        assert_eq!(server.sync.position, 3);

        // An unchanged sync clears the error and keeps the tools.
        catalog.apply(&recorded(4, synced(None, &[])));
        let server = catalog.get(&id()).unwrap();
        assert_eq!(server.sync.status, SyncStatus::Ready);
        assert_eq!(server.sync.error, None);
        assert_eq!(tool_names(&server.sync), ["search", "fetch"]);
        assert_eq!(server.sync.capabilities_position, 2);
        assert!(server.sync.last_successful_sync.unwrap() > first_success);
        assert_eq!(server.sync.last_synced, server.sync.last_successful_sync);
    }

    #[test]
    fn a_failure_before_any_success_has_no_tools() {
        let mut catalog = ServerCatalog::default();
        catalog.apply(&recorded(1, added(Vec::new())));
        catalog.apply(&recorded(2, failed("name not resolved")));
        let sync = &catalog.get(&id()).unwrap().sync;
        assert_eq!(sync.status, SyncStatus::Error);
        assert!(sync.tools.is_empty());
        assert_eq!(sync.last_successful_sync, None);
        assert!(sync.last_synced.is_some());
    }

    #[test]
    fn a_sync_drops_the_overrides_it_names_from_the_settings() {
        let mut catalog = ServerCatalog::default();
        catalog.apply(&recorded(1, added(vec![override_of("search"), override_of("fetch")])));
        catalog.apply(&recorded(2, synced(Some(&["search", "fetch"]), &[])));
        catalog.apply(&recorded(3, synced(Some(&["fetch"]), &["search"])));
        let server = catalog.get(&id()).unwrap();
        assert_eq!(server.settings.updated_tools, vec![override_of("fetch")]);
        assert_eq!(tool_names(&server.sync), ["fetch"]);
    }

    #[test]
    fn an_update_keeps_the_sync_state_and_removal_forgets_it() {
        let mut catalog = ServerCatalog::default();
        catalog.apply(&recorded(1, added(Vec::new())));
        catalog.apply(&recorded(2, synced(Some(&["search"]), &[])));
        catalog.apply(&recorded(
            3,
            Event::ServerUpdated(ServerUpdated {
                server_id: id(),
                settings: ServerSettings { name: "New".to_owned(), ..ServerSettings::default() },
            }),
        ));
        let server = catalog.get(&id()).unwrap();
        assert_eq!(server.sync.status, SyncStatus::Ready);
        assert_eq!(tool_names(&server.sync), ["search"]);

        catalog.apply(&recorded(
            4,
            Event::ServerRemoved(portico_core::domain::server::ServerRemoved { server_id: id() }),
        ));
        catalog.apply(&recorded(5, added(Vec::new())));
        let sync = &catalog.get(&id()).unwrap().sync;
        assert_eq!(sync.status, SyncStatus::Waiting);
        assert!(sync.tools.is_empty());
    }

    #[test]
    fn sync_events_of_an_unknown_server_are_ignored() {
        let mut catalog = ServerCatalog::default();
        catalog.apply(&recorded(1, synced(Some(&["search"]), &[])));
        catalog.apply(&recorded(2, failed("down")));
        assert!(catalog.is_empty());
    }
}
