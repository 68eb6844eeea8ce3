//! Portal views: each portal with its servers and the effective tool and prompt overrides.
//!
//! The effective overrides merge the server-level list (which applies in every portal) with the
//! portal's own list for that server, in the response shape of the admin API:
//! `{name, enabled?, portal_alias?, portal_description?, server_alias?, server_description?}`.
//! A server that was removed drops out of every view; the portal's own settings still name it,
//! so it comes back if a server with that id is added again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::portal::{PortalServer, PortalSettings};
use portico_core::{Actor, Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// One tool or prompt override, merged from the server and the portal levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveOverride {
    /// The upstream name.
    pub name: String,
    /// The portal's choice if it made one, else the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_description: Option<String>,
}

impl EffectiveOverride {
    /// The name the portal exposes without its `{server_id}_` prefix: portal alias, else
    /// server alias, else the upstream name.
    pub fn exposed_name(&self) -> &str {
        self.portal_alias.as_deref().or(self.server_alias.as_deref()).unwrap_or(&self.name)
    }

    /// The description that replaces the upstream one, if any: the portal's beats the server's.
    pub fn description(&self) -> Option<&str> {
        self.portal_description.as_deref().or(self.server_description.as_deref())
    }
}

/// One server inside a portal view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalServerView {
    pub server_id: ServerId,
    pub default_disabled: bool,
    pub on_behalf: bool,
    pub updated_tools: Vec<EffectiveOverride>,
    pub updated_prompts: Vec<EffectiveOverride>,
}

/// A portal as clients and the admin API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalView {
    pub portal_id: PortalId,
    pub name: String,
    pub hostname: String,
    pub description: Option<String>,
    pub code_mode: portico_core::domain::portal::CodeMode,
    pub secure_web_gateway: bool,
    /// The portal's servers that exist, in the portal's order.
    pub servers: Vec<PortalServerView>,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub modified_at: DateTime<Utc>,
    pub modified_by: Actor,
    /// The version of the portal's stream this view reflects.
    pub stream_version: u64,
}

/// What a portal's stream recorded, before the servers are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PortalRecord {
    settings: PortalSettings,
    created_at: DateTime<Utc>,
    created_by: Actor,
    modified_at: DateTime<Utc>,
    modified_by: Actor,
    stream_version: u64,
}

/// The server-level overrides of one existing server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
struct ServerOverrides {
    tools: Vec<CapabilityOverride>,
    prompts: Vec<CapabilityOverride>,
}

/// Every portal, by id, with its resolved servers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortalViews {
    records: BTreeMap<PortalId, PortalRecord>,
    servers: BTreeMap<ServerId, ServerOverrides>,
    /// Which portals name each server, so a server change refreshes only those views.
    portals_of: BTreeMap<ServerId, BTreeSet<PortalId>>,
    views: BTreeMap<PortalId, PortalView>,
}

impl PortalViews {
    /// The portal `id`, if it exists.
    pub fn get(&self, id: &PortalId) -> Option<&PortalView> {
        self.views.get(id)
    }

    /// The portal served at `hostname` (case-insensitive), if any.
    pub fn by_hostname(&self, hostname: &str) -> Option<&PortalView> {
        self.views.values().find(|v| v.hostname.eq_ignore_ascii_case(hostname))
    }

    /// Every portal, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &PortalView> {
        self.views.values()
    }

    pub fn len(&self) -> usize {
        self.views.len()
    }

    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Portals whose id, name or hostname contains `query` (case-insensitive), ordered by id.
    pub fn search<'a>(&'a self, query: &'a str) -> impl Iterator<Item = &'a PortalView> + 'a {
        let needle = query.to_lowercase();
        self.views.values().filter(move |v| {
            needle.is_empty()
                || v.portal_id.as_str().contains(&needle)
                || v.name.to_lowercase().contains(&needle)
                || v.hostname.contains(&needle)
        })
    }

    /// The ids of the portals that include server `id`.
    pub fn portals_of(&self, id: &ServerId) -> impl Iterator<Item = &PortalId> {
        self.portals_of.get(id).into_iter().flatten()
    }

    fn set_portal(&mut self, id: &PortalId, record: PortalRecord) {
        if let Some(old) = self.records.get(id) {
            for s in &old.settings.servers {
                unlink(&mut self.portals_of, &s.server_id, id);
            }
        }
        for s in &record.settings.servers {
            self.portals_of.entry(s.server_id.clone()).or_default().insert(id.clone());
        }
        self.records.insert(id.clone(), record);
        self.rebuild(id);
    }

    fn remove_portal(&mut self, id: &PortalId) {
        if let Some(old) = self.records.remove(id) {
            for s in &old.settings.servers {
                unlink(&mut self.portals_of, &s.server_id, id);
            }
        }
        self.views.remove(id);
    }

    fn set_server(&mut self, id: &ServerId, overrides: Option<ServerOverrides>) {
        match overrides {
            Some(o) => {
                self.servers.insert(id.clone(), o);
            }
            None => {
                self.servers.remove(id);
            }
        }
        let affected: Vec<PortalId> = self.portals_of(id).cloned().collect();
        for portal in &affected {
            self.rebuild(portal);
        }
    }

    /// Recomputes the view of one portal from its record and the servers' overrides.
    fn rebuild(&mut self, id: &PortalId) {
        let Some(record) = self.records.get(id) else { return };
        let servers = record
            .settings
            .servers
            .iter()
            .filter_map(|mapping| {
                let server = self.servers.get(&mapping.server_id)?;
                Some(resolve(mapping, server))
            })
            .collect();
        let s = &record.settings;
        self.views.insert(
            id.clone(),
            PortalView {
                portal_id: id.clone(),
                name: s.name.clone(),
                hostname: s.hostname.clone(),
                description: s.description.clone(),
                code_mode: s.code_mode,
                secure_web_gateway: s.secure_web_gateway,
                servers,
                created_at: record.created_at,
                created_by: record.created_by.clone(),
                modified_at: record.modified_at,
                modified_by: record.modified_by.clone(),
                stream_version: record.stream_version,
            },
        );
    }
}

fn unlink(
    index: &mut BTreeMap<ServerId, BTreeSet<PortalId>>,
    server: &ServerId,
    portal: &PortalId,
) {
    if let Some(set) = index.get_mut(server) {
        set.remove(portal);
        if set.is_empty() {
            index.remove(server);
        }
    }
}

fn resolve(mapping: &PortalServer, server: &ServerOverrides) -> PortalServerView {
    PortalServerView {
        server_id: mapping.server_id.clone(),
        default_disabled: mapping.default_disabled,
        on_behalf: mapping.on_behalf,
        updated_tools: merge(&server.tools, &mapping.updated_tools),
        updated_prompts: merge(&server.prompts, &mapping.updated_prompts),
    }
}

/// Merges server-level and portal-level overrides by upstream name, ordered by name.
fn merge(server: &[CapabilityOverride], portal: &[CapabilityOverride]) -> Vec<EffectiveOverride> {
    let mut merged: BTreeMap<&str, EffectiveOverride> = BTreeMap::new();
    let blank = |name: &str| EffectiveOverride {
        name: name.to_owned(),
        enabled: None,
        portal_alias: None,
        portal_description: None,
        server_alias: None,
        server_description: None,
    };
    for o in server {
        let e = merged.entry(&o.name).or_insert_with(|| blank(&o.name));
        e.server_alias = o.alias.clone();
        e.server_description = o.description.clone();
        e.enabled = o.enabled;
    }
    for o in portal {
        let e = merged.entry(&o.name).or_insert_with(|| blank(&o.name));
        e.portal_alias = o.alias.clone();
        e.portal_description = o.description.clone();
        if o.enabled.is_some() {
            e.enabled = o.enabled;
        }
    }
    merged.into_values().collect()
}

impl Projection for PortalViews {
    const NAME: &'static str = "portal_views";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::PortalAdded(e) => {
                let record = PortalRecord {
                    settings: e.settings.clone(),
                    created_at: recorded.recorded_at,
                    created_by: recorded.actor.clone(),
                    modified_at: recorded.recorded_at,
                    modified_by: recorded.actor.clone(),
                    stream_version: recorded.stream_version,
                };
                self.set_portal(&e.portal_id, record);
            }
            Event::PortalUpdated(e) => {
                let Some(old) = self.records.get(&e.portal_id) else { return };
                let record = PortalRecord {
                    settings: e.settings.clone(),
                    created_at: old.created_at,
                    created_by: old.created_by.clone(),
                    modified_at: recorded.recorded_at,
                    modified_by: recorded.actor.clone(),
                    stream_version: recorded.stream_version,
                };
                self.set_portal(&e.portal_id, record);
            }
            Event::PortalRemoved(e) => self.remove_portal(&e.portal_id),
            Event::ServerAdded(e) => {
                let overrides = ServerOverrides {
                    tools: e.settings.updated_tools.clone(),
                    prompts: e.settings.updated_prompts.clone(),
                };
                self.set_server(&e.server_id, Some(overrides));
            }
            Event::ServerUpdated(e) => {
                if self.servers.contains_key(&e.server_id) {
                    let overrides = ServerOverrides {
                        tools: e.settings.updated_tools.clone(),
                        prompts: e.settings.updated_prompts.clone(),
                    };
                    self.set_server(&e.server_id, Some(overrides));
                }
            }
            Event::ServerRemoved(e) => self.set_server(&e.server_id, None),
            Event::ServerCredentialSet(_) => {}
        }
    }
}
