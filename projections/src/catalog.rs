//! The server catalog: every registered MCP server as the admin API shows it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use portico_core::domain::ids::ServerId;
use portico_core::domain::server::{AuthType, CredentialKind, ServerSettings};
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
    const VERSION: u32 = 1;

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
