//! The server catalog: every registered MCP server as the admin API shows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use portico_core::domain::ids::ServerId;
use portico_core::domain::server::{AuthType, CredentialKind, ServerSettings, SyncError};
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
    const VERSION: u32 = 2;

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
                    server.stream_version = recorded.stream_version;
                }
            }
            Event::ServerSyncFailed(e) => {
                if let Some(server) = self.servers.get_mut(&e.server_id) {
                    server.sync.status = SyncStatus::Error;
                    server.sync.last_synced = Some(at);
                    server.sync.error = Some(e.error.clone());
                    server.stream_version = recorded.stream_version;
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
