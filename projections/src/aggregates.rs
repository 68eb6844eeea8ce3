//! The current state of every server and portal aggregate (removed ones included, since their
//! streams continue if the id is used again), folded with the domain's own `apply`. The admin
//! API decides commands against these states instead of reading each stream again; the version
//! it expects when appending makes a stale state fail with a conflict, never a lost update.

use std::collections::BTreeMap;

use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::{PortalState, ServerCapabilities, ServerState};
use portico_core::{Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// The aggregates' states, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Aggregates {
    servers: BTreeMap<ServerId, ServerState>,
    portals: BTreeMap<PortalId, PortalState>,
}

impl Aggregates {
    /// The state of server `id` (the default state if it never existed).
    pub fn server(&self, id: &ServerId) -> ServerState {
        self.servers.get(id).cloned().unwrap_or_default()
    }

    /// The state of portal `id` (the default state if it never existed).
    pub fn portal(&self, id: &PortalId) -> PortalState {
        self.portals.get(id).cloned().unwrap_or_default()
    }
}

impl portico_core::domain::ServerDirectory for Aggregates {
    fn server(&self, id: &ServerId) -> Option<ServerCapabilities> {
        self.servers.get(id)?.server.as_ref().map(ServerCapabilities::from_server)
    }
}

impl Projection for Aggregates {
    const NAME: &'static str = "aggregates";
    const VERSION: u32 = 2;

    fn apply(&mut self, recorded: &RecordedEvent) {
        let event = &recorded.event;
        match event {
            Event::ServerAdded(e) => {
                self.servers.entry(e.server_id.clone()).or_default().apply(event)
            }
            Event::ServerUpdated(e) => {
                self.servers.entry(e.server_id.clone()).or_default().apply(event)
            }
            Event::ServerRemoved(e) => {
                self.servers.entry(e.server_id.clone()).or_default().apply(event)
            }
            Event::ServerCredentialSet(e) => {
                self.servers.entry(e.server_id.clone()).or_default().apply(event)
            }
            Event::ServerSynced(e) => {
                self.servers.entry(e.server_id.clone()).or_default().apply(event)
            }
            Event::ServerSyncFailed(e) => {
                self.servers.entry(e.server_id.clone()).or_default().apply(event)
            }
            Event::PortalAdded(e) => {
                self.portals.entry(e.portal_id.clone()).or_default().apply(event)
            }
            Event::PortalUpdated(e) => {
                self.portals.entry(e.portal_id.clone()).or_default().apply(event)
            }
            Event::PortalRemoved(e) => {
                self.portals.entry(e.portal_id.clone()).or_default().apply(event)
            }
            // Only servers and portals are decided against this read model.
            _ => {}
        }
    }
}
