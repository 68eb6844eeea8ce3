//! Random admin histories: sequences of server and portal commands decided by the real domain
//! rules, so the events are ones Portico could really have recorded.

use std::collections::BTreeMap;

use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::portal::{
    self, AddPortal, PortalInput, PortalServer, RemovePortal, UpdatePortal,
};
use portico_core::domain::server::{
    self, AddServer, AuthType, RemoveServer, ServerSettings, UpdateServer,
};
use portico_core::domain::{
    PortalState, ServerCapabilities, ServerState, portal_stream, server_stream,
};
use portico_core::{Event, ExpectedVersion};
use proptest::prelude::*;

/// Raw overrides: (tool number, alias number, enabled).
pub type RawOverrides = Vec<(u8, Option<u8>, Option<bool>)>;
/// Raw portal servers: (server number, default_disabled, overrides).
pub type RawPortalServers = Vec<(u8, bool, RawOverrides)>;

/// One admin action of a generated history.
#[derive(Debug, Clone)]
pub enum Op {
    AddServer { server: u8, tools: RawOverrides },
    UpdateServer { server: u8, tools: RawOverrides, credential: bool },
    RemoveServer { server: u8 },
    AddPortal { portal: u8, servers: RawPortalServers },
    UpdatePortal { portal: u8, servers: RawPortalServers },
    RemovePortal { portal: u8 },
}

fn overrides() -> impl Strategy<Value = Vec<(u8, Option<u8>, Option<bool>)>> + Clone {
    prop::collection::vec((0u8..6, prop::option::of(0u8..6), prop::option::of(any::<bool>())), 0..4)
}

pub fn op() -> impl Strategy<Value = Op> {
    let servers = prop::collection::vec((0u8..6, any::<bool>(), overrides()), 0..5);
    prop_oneof![
        3 => (0u8..6, overrides()).prop_map(|(server, tools)| Op::AddServer { server, tools }),
        3 => (0u8..6, overrides(), any::<bool>())
            .prop_map(|(server, tools, credential)| Op::UpdateServer { server, tools, credential }),
        1 => (0u8..6).prop_map(|server| Op::RemoveServer { server }),
        2 => (0u8..4, servers.clone()).prop_map(|(portal, servers)| Op::AddPortal { portal, servers }),
        3 => (0u8..4, servers).prop_map(|(portal, servers)| Op::UpdatePortal { portal, servers }),
        1 => (0u8..4).prop_map(|portal| Op::RemovePortal { portal }),
    ]
}

fn server_id(n: u8) -> ServerId {
    ServerId::parse(format!("srv-{n}")).unwrap()
}

fn portal_id(n: u8) -> PortalId {
    PortalId::parse(format!("portal-{n}")).unwrap()
}

fn override_list(raw: &[(u8, Option<u8>, Option<bool>)], prefix: &str) -> Vec<CapabilityOverride> {
    let mut seen = std::collections::BTreeSet::new();
    raw.iter()
        .filter(|(name, _, _)| seen.insert(*name))
        .map(|(name, alias, enabled)| CapabilityOverride {
            name: format!("tool{name}"),
            alias: alias.map(|a| format!("{prefix}{a}")),
            description: alias.map(|a| format!("{prefix} description {a}")),
            enabled: *enabled,
        })
        .collect()
}

/// Decides commands against the aggregates' states and yields `(stream, events)` for each
/// accepted one; rejected commands (a rule broken) are skipped, as the API would reject them.
#[derive(Debug, Default)]
pub struct History {
    servers: BTreeMap<ServerId, ServerState>,
    portals: BTreeMap<PortalId, PortalState>,
}

impl History {
    pub fn decide(&mut self, op: &Op) -> Option<Decided> {
        let (stream, events) = match op {
            Op::AddServer { server, tools } => {
                let id = server_id(*server);
                let state = self.servers.get(&id).cloned().unwrap_or_default();
                let cmd = AddServer {
                    server_id: id.clone(),
                    hostname: format!("https://upstream{server}.example.com/mcp"),
                    auth_type: AuthType::Bearer,
                    settings: ServerSettings {
                        name: format!("Server {server}"),
                        updated_tools: override_list(tools, "s"),
                        ..ServerSettings::default()
                    },
                    auth_credentials: Some(
                        state.next_credential_version(server::CredentialKind::AuthCredentials),
                    ),
                    client_secret: None,
                };
                (server_stream(&id), server::decide(&state, cmd.into()).ok()?)
            }
            Op::UpdateServer { server, tools, credential } => {
                let id = server_id(*server);
                let state = self.servers.get(&id).cloned().unwrap_or_default();
                let cmd = UpdateServer {
                    server_id: id.clone(),
                    hostname: None,
                    auth_type: None,
                    settings: ServerSettings {
                        name: format!("Server {server} renamed"),
                        description: Some("updated".into()),
                        updated_tools: override_list(tools, "t"),
                        ..ServerSettings::default()
                    },
                    auth_credentials: credential.then(|| {
                        state.next_credential_version(server::CredentialKind::AuthCredentials)
                    }),
                    client_secret: None,
                };
                (server_stream(&id), server::decide(&state, cmd.into()).ok()?)
            }
            Op::RemoveServer { server } => {
                let id = server_id(*server);
                let state = self.servers.get(&id).cloned().unwrap_or_default();
                (
                    server_stream(&id),
                    server::decide(&state, RemoveServer { server_id: id.clone() }.into()).ok()?,
                )
            }
            Op::AddPortal { portal, servers } | Op::UpdatePortal { portal, servers } => {
                let id = portal_id(*portal);
                let state = self.portals.get(&id).cloned().unwrap_or_default();
                let mut seen = std::collections::BTreeSet::new();
                let input = PortalInput {
                    name: format!("Portal {portal}"),
                    hostname: format!("p{portal}.example.com"),
                    servers: servers
                        .iter()
                        .filter(|(s, _, _)| seen.insert(*s))
                        .map(|(s, default_disabled, tools)| PortalServer {
                            server_id: server_id(*s),
                            default_disabled: *default_disabled,
                            on_behalf: !default_disabled,
                            updated_tools: override_list(tools, "p"),
                            updated_prompts: Vec::new(),
                        })
                        .collect(),
                    ..PortalInput::default()
                };
                let directory: BTreeMap<ServerId, ServerCapabilities> = self
                    .servers
                    .iter()
                    .filter_map(|(id, s)| {
                        Some((id.clone(), ServerCapabilities::from_server(s.server.as_ref()?)))
                    })
                    .collect();
                let cmd = if matches!(op, Op::AddPortal { .. }) {
                    AddPortal { portal_id: id.clone(), input }.into()
                } else {
                    UpdatePortal { portal_id: id.clone(), input }.into()
                };
                (portal_stream(&id), portal::decide(&state, cmd, &directory).ok()?)
            }
            Op::RemovePortal { portal } => {
                let id = portal_id(*portal);
                let state = self.portals.get(&id).cloned().unwrap_or_default();
                let cmd = RemovePortal { portal_id: id.clone() }.into();
                (portal_stream(&id), portal::decide(&state, cmd, &BTreeMap::new()).ok()?)
            }
        };
        let version = self.version_of(&events[0]);
        let expected =
            if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
        for event in &events {
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
                Event::PortalAdded(e) => {
                    self.portals.entry(e.portal_id.clone()).or_default().apply(event)
                }
                Event::PortalUpdated(e) => {
                    self.portals.entry(e.portal_id.clone()).or_default().apply(event)
                }
                Event::PortalRemoved(e) => {
                    self.portals.entry(e.portal_id.clone()).or_default().apply(event)
                }
                other => panic!("not generated: {other:?}"),
            }
        }
        Some(Decided { stream, expected, events })
    }

    fn version_of(&self, event: &Event) -> u64 {
        let server = |id: &ServerId| self.servers.get(id).map_or(0, |s| s.stream_version);
        let portal = |id: &PortalId| self.portals.get(id).map_or(0, |s| s.stream_version);
        match event {
            Event::ServerAdded(e) => server(&e.server_id),
            Event::ServerUpdated(e) => server(&e.server_id),
            Event::ServerRemoved(e) => server(&e.server_id),
            Event::ServerCredentialSet(e) => server(&e.server_id),
            Event::PortalAdded(e) => portal(&e.portal_id),
            Event::PortalUpdated(e) => portal(&e.portal_id),
            Event::PortalRemoved(e) => portal(&e.portal_id),
            other => panic!("not generated: {other:?}"),
        }
    }
}

/// The events of one accepted command, and where they go.
#[derive(Debug)]
pub struct Decided {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<Event>,
}
