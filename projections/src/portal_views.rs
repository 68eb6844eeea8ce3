//! Portal views: each portal with its servers and the effective tool and prompt overrides.
//!
//! [`PortalViews`] folds the portals' own events (settings, servers, portal-level overrides) and
//! indexes which portals name each server. A [`PortalView`] is composed on read with the server
//! catalog ([`crate::ReadModels::portal`]): the servers that exist, in the portal's order, with
//! the server-level overrides (which apply in every portal) merged with the portal's own, in the
//! response shape of the admin API: `{name, enabled?, portal_alias?, portal_description?,
//! server_alias?, server_description?}`. Composing on read keeps a server change O(1) to apply,
//! however many portals name the server, which is what keeps replay fast. A server that was
//! removed drops out of every view; the portal still names it, so it comes back if a server with
//! that id is added again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::portal::{CodeMode, PortalServer, PortalSettings};
use portico_core::domain::server::ServerSettings;
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
    pub code_mode: CodeMode,
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
pub struct PortalRecord {
    pub portal_id: PortalId,
    pub settings: PortalSettings,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub modified_at: DateTime<Utc>,
    pub modified_by: Actor,
    pub stream_version: u64,
}

impl PortalRecord {
    /// The view of this portal, given a look-up of the servers that exist now.
    pub fn view<'a>(&self, server: impl Fn(&ServerId) -> Option<&'a ServerSettings>) -> PortalView {
        let s = &self.settings;
        PortalView {
            portal_id: self.portal_id.clone(),
            name: s.name.clone(),
            hostname: s.hostname.clone(),
            description: s.description.clone(),
            code_mode: s.code_mode,
            secure_web_gateway: s.secure_web_gateway,
            servers: s
                .servers
                .iter()
                .filter_map(|mapping| Some(resolve(mapping, server(&mapping.server_id)?)))
                .collect(),
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            modified_at: self.modified_at,
            modified_by: self.modified_by.clone(),
            stream_version: self.stream_version,
        }
    }
}

/// Every portal's record, by id, and which portals name each server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortalViews {
    records: BTreeMap<PortalId, PortalRecord>,
    portals_of: BTreeMap<ServerId, BTreeSet<PortalId>>,
}

impl PortalViews {
    /// The record of portal `id`, if it exists.
    pub fn get(&self, id: &PortalId) -> Option<&PortalRecord> {
        self.records.get(id)
    }

    /// The portal served at `hostname` (case-insensitive), if any.
    pub fn by_hostname(&self, hostname: &str) -> Option<&PortalRecord> {
        self.records.values().find(|r| r.settings.hostname.eq_ignore_ascii_case(hostname))
    }

    /// Every portal, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &PortalRecord> {
        self.records.values()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Portals whose id, name or hostname contains `query` (case-insensitive), ordered by id.
    pub fn search<'a>(&'a self, query: &'a str) -> impl Iterator<Item = &'a PortalRecord> + 'a {
        let needle = query.to_lowercase();
        self.records.values().filter(move |r| {
            needle.is_empty()
                || r.portal_id.as_str().contains(&needle)
                || r.settings.name.to_lowercase().contains(&needle)
                || r.settings.hostname.contains(&needle)
        })
    }

    /// The ids of the portals that name server `id` (whether or not it exists now).
    pub fn portals_of(&self, id: &ServerId) -> impl Iterator<Item = &PortalId> {
        self.portals_of.get(id).into_iter().flatten()
    }

    fn set_portal(&mut self, record: PortalRecord) {
        let id = record.portal_id.clone();
        self.unlink_servers(&id);
        for s in &record.settings.servers {
            self.portals_of.entry(s.server_id.clone()).or_default().insert(id.clone());
        }
        self.records.insert(id, record);
    }

    fn remove_portal(&mut self, id: &PortalId) {
        self.unlink_servers(id);
        self.records.remove(id);
    }

    fn unlink_servers(&mut self, id: &PortalId) {
        let Some(old) = self.records.get(id) else { return };
        for s in &old.settings.servers {
            if let Some(set) = self.portals_of.get_mut(&s.server_id) {
                set.remove(id);
                if set.is_empty() {
                    self.portals_of.remove(&s.server_id);
                }
            }
        }
    }
}

fn resolve(mapping: &PortalServer, server: &ServerSettings) -> PortalServerView {
    PortalServerView {
        server_id: mapping.server_id.clone(),
        default_disabled: mapping.default_disabled,
        on_behalf: mapping.on_behalf,
        updated_tools: merge(&server.updated_tools, &mapping.updated_tools),
        updated_prompts: merge(&server.updated_prompts, &mapping.updated_prompts),
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

impl portico_core::domain::hostname::PortalHostnames for PortalViews {
    fn portal_with_hostname(&self, hostname: &str) -> Option<PortalId> {
        self.by_hostname(hostname).map(|r| r.portal_id.clone())
    }
}

impl Projection for PortalViews {
    const NAME: &'static str = "portal_views";
    const VERSION: u32 = 2;

    fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::PortalAdded(e) => self.set_portal(PortalRecord {
                portal_id: e.portal_id.clone(),
                settings: e.settings.clone(),
                created_at: recorded.recorded_at,
                created_by: recorded.actor.clone(),
                modified_at: recorded.recorded_at,
                modified_by: recorded.actor.clone(),
                stream_version: recorded.stream_version,
            }),
            Event::PortalUpdated(e) => {
                let Some(old) = self.records.get(&e.portal_id) else { return };
                let record = PortalRecord {
                    portal_id: e.portal_id.clone(),
                    settings: e.settings.clone(),
                    created_at: old.created_at,
                    created_by: old.created_by.clone(),
                    modified_at: recorded.recorded_at,
                    modified_by: recorded.actor.clone(),
                    stream_version: recorded.stream_version,
                };
                self.set_portal(record);
            }
            Event::PortalRemoved(e) => self.remove_portal(&e.portal_id),
            // Servers join the views on read, from the catalog.
            _ => {}
        }
    }
}
