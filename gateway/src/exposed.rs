//! What a portal exposes to one principal: the tools and prompts of the servers it may use,
//! namespaced `{server_id}_{name}`, with the alias and description overrides applied
//! (portal alias > server alias > upstream name; portal description > server description >
//! upstream description) and filtered by Cedar (`list_tool`, `get_prompt`) and by the
//! `enabled` overrides. Built from the synced catalog only: listing never waits on an upstream.
//!
//! A server with `default_disabled` exposes only the tools and prompts whose override says
//! `enabled: true` (allowlist), and starts toggled off in sessions.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use portico_core::domain::ids::ServerId;
use portico_policies::{Decision, Hidden, Visibility, VisibleServer};
use portico_projections::ReadModels;
use portico_projections::portal_views::{EffectiveOverride, PortalView};
use rmcp::model::{Prompt, Tool};
use serde_json::Value;

use crate::authz::PortalAccess;

/// The longest exposed name MCP allows (2025-11-25 tool-name guidance).
pub const MAX_NAME_LEN: usize = 128;

/// One exposed tool or prompt.
#[derive(Debug, Clone)]
pub struct ExposedItem<T> {
    /// The upstream's own name.
    pub upstream_name: String,
    /// The object the client sees (renamed, redescribed).
    pub item: T,
    /// The upstream object as synced (Cedar reads a tool's hints from it).
    pub raw: Value,
}

/// One server the principal may use, with what it exposes.
#[derive(Debug, Clone)]
pub struct ExposedServer {
    pub id: ServerId,
    pub name: String,
    pub url: String,
    pub default_disabled: bool,
    /// Whether the server uses OAuth and the portal maps it `on_behalf: true`: each person
    /// authorizes it themself.
    pub per_user_oauth: bool,
    pub tools: Vec<ExposedItem<Tool>>,
    pub prompts: Vec<ExposedItem<Prompt>>,
    /// Changes when an exposed tool's name, description or schemas change (computed once per
    /// exposure, so telling whether a session's list changed costs one hash per server).
    pub tools_fingerprint: u64,
    /// The same for the prompts.
    pub prompts_fingerprint: u64,
}

/// What the principal sees in the portal.
#[derive(Debug)]
pub struct Exposed {
    pub servers: Vec<ExposedServer>,
    tools: HashMap<String, (usize, usize)>,
    prompts: HashMap<String, (usize, usize)>,
    /// Why nothing is visible, when that is so.
    pub hidden: Option<Hidden>,
    /// `call_tool` decisions, reusable when no policy reads the request's context.
    pub call_decisions: Mutex<HashMap<String, Decision>>,
}

impl Exposed {
    /// The server and tool an exposed tool name resolves to.
    pub fn tool(&self, name: &str) -> Option<(&ExposedServer, &ExposedItem<Tool>)> {
        let (s, t) = *self.tools.get(name)?;
        let server = self.servers.get(s)?;
        Some((server, server.tools.get(t)?))
    }

    /// The server and prompt an exposed prompt name resolves to.
    pub fn prompt(&self, name: &str) -> Option<(&ExposedServer, &ExposedItem<Prompt>)> {
        let (s, p) = *self.prompts.get(name)?;
        let server = self.servers.get(s)?;
        Some((server, server.prompts.get(p)?))
    }

    /// The visible server `id`.
    pub fn server(&self, id: &str) -> Option<&ExposedServer> {
        self.servers.iter().find(|s| s.id.as_str() == id)
    }

    /// Builds the exposure from a principal's access and the catalog.
    pub fn build(access: &PortalAccess, models: &ReadModels, reserved: &[&str]) -> Exposed {
        Exposed::of(&access.visibility, &access.view, models, reserved)
    }

    /// Everything the portal's servers expose, as if every policy allowed it: what an admin
    /// measures (`portico portals tokens`), never what a caller is shown.
    pub fn unfiltered(view: &PortalView, models: &ReadModels, reserved: &[&str]) -> Exposed {
        let allowed = || Decision { allowed: true, policy_ids: Vec::new(), errors: Vec::new() };
        let servers = view
            .servers
            .iter()
            .filter_map(|mapping| {
                let entry = models.catalog.get(&mapping.server_id)?;
                let names = |items: &[Value]| -> Vec<(String, Decision)> {
                    items
                        .iter()
                        .filter_map(|item| item.get("name")?.as_str())
                        .map(|name| (name.to_owned(), allowed()))
                        .collect()
                };
                Some(VisibleServer {
                    id: mapping.server_id.to_string(),
                    decision: allowed(),
                    tools: names(&entry.sync.tools),
                    prompts: names(&entry.sync.prompts),
                })
            })
            .collect();
        let visibility = Visibility { portal: allowed(), servers, reason: None };
        Exposed::of(&visibility, view, models, reserved)
    }

    fn of(
        visibility: &Visibility,
        view: &PortalView,
        models: &ReadModels,
        reserved: &[&str],
    ) -> Exposed {
        let mut exposed = Exposed {
            servers: Vec::new(),
            tools: HashMap::new(),
            prompts: HashMap::new(),
            hidden: visibility.reason.clone(),
            call_decisions: Mutex::default(),
        };
        for visible in &visibility.servers {
            let Some(mapping) = view.servers.iter().find(|s| s.server_id.as_str() == visible.id)
            else {
                continue;
            };
            let Some(entry) = models.catalog.get(&mapping.server_id) else { continue };
            let listable: HashSet<&str> = visible.tools.iter().map(|(n, _)| n.as_str()).collect();
            let promptable: HashSet<&str> =
                visible.prompts.iter().map(|(n, _)| n.as_str()).collect();
            let index = exposed.servers.len();
            let mut server = ExposedServer {
                id: mapping.server_id.clone(),
                name: entry.settings.name.clone(),
                url: entry.hostname.clone(),
                default_disabled: mapping.default_disabled,
                per_user_oauth: mapping.on_behalf
                    && entry.auth_type == portico_core::domain::server::AuthType::Oauth,
                tools: Vec::new(),
                prompts: Vec::new(),
                tools_fingerprint: 0,
                prompts_fingerprint: 0,
            };
            for raw in entry.sync.tools.iter() {
                let Some(upstream) = raw.get("name").and_then(Value::as_str) else { continue };
                if !listable.contains(upstream) {
                    continue;
                }
                let over = mapping.updated_tools.iter().find(|o| o.name == upstream);
                let Some(name) = exposed_name(&server.id, upstream, over, mapping.default_disabled)
                else {
                    continue;
                };
                if reserved.contains(&name.as_str()) || exposed.tools.contains_key(&name) {
                    continue;
                }
                let mut object = raw.clone();
                rename(&mut object, &name, over.and_then(EffectiveOverride::description));
                let Ok(tool) = serde_json::from_value::<Tool>(object) else {
                    tracing::warn!(server = %server.id, tool = upstream, "synced tool is not a valid MCP tool; skipped");
                    continue;
                };
                exposed.tools.insert(name, (index, server.tools.len()));
                server.tools.push(ExposedItem {
                    upstream_name: upstream.to_owned(),
                    item: tool,
                    raw: raw.clone(),
                });
            }
            for raw in entry.sync.prompts.iter() {
                let Some(upstream) = raw.get("name").and_then(Value::as_str) else { continue };
                if !promptable.contains(upstream) {
                    continue;
                }
                let over = mapping.updated_prompts.iter().find(|o| o.name == upstream);
                let Some(name) = exposed_name(&server.id, upstream, over, mapping.default_disabled)
                else {
                    continue;
                };
                if exposed.prompts.contains_key(&name) {
                    continue;
                }
                let mut object = raw.clone();
                rename(&mut object, &name, over.and_then(EffectiveOverride::description));
                let Ok(prompt) = serde_json::from_value::<Prompt>(object) else {
                    tracing::warn!(server = %server.id, prompt = upstream, "synced prompt is not a valid MCP prompt; skipped");
                    continue;
                };
                exposed.prompts.insert(name, (index, server.prompts.len()));
                server.prompts.push(ExposedItem {
                    upstream_name: upstream.to_owned(),
                    item: prompt,
                    raw: raw.clone(),
                });
            }
            server.tools_fingerprint = fingerprint(server.tools.iter().map(|t| &t.item));
            server.prompts_fingerprint = fingerprint(server.prompts.iter().map(|p| &p.item));
            exposed.servers.push(server);
        }
        exposed
    }
}

/// The exposed name of an upstream tool or prompt, or `None` when it is not exposed (disabled,
/// not allowlisted on a `default_disabled` server, or a name MCP does not allow).
pub fn exposed_name(
    server: &ServerId,
    upstream: &str,
    over: Option<&EffectiveOverride>,
    default_disabled: bool,
) -> Option<String> {
    let enabled = over.and_then(|o| o.enabled);
    if enabled == Some(false) || (default_disabled && enabled != Some(true)) {
        return None;
    }
    let short = over.map_or(upstream, EffectiveOverride::exposed_name);
    let name = format!("{server}_{short}");
    let valid = name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    valid.then_some(name)
}

/// A hash of what clients see of `items` (their serialised form).
fn fingerprint<'a, T: serde::Serialize + 'a>(items: impl Iterator<Item = &'a T>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for item in items {
        serde_json::to_string(item).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

fn rename(object: &mut Value, name: &str, description: Option<&str>) {
    if let Some(map) = object.as_object_mut() {
        map.insert("name".into(), Value::String(name.to_owned()));
        if let Some(description) = description {
            map.insert("description".into(), Value::String(description.to_owned()));
        }
    }
}

/// Splits an exposed name on its first `_` into server id and the rest.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    name.split_once('_')
}

/// A bounded cache of exposures, keyed by the (cached, shared) visibility they were built from
/// and the view version; holding the visibility keeps its address from being reused.
#[derive(Debug, Default)]
pub struct ExposedCache {
    inner: Mutex<HashMap<(usize, u64), CachedExposure>>,
}

/// A cached exposure and the visibility whose address keys it.
type CachedExposure = (Arc<portico_policies::Visibility>, Arc<Exposed>);

/// How many exposures are kept.
const EXPOSED_CACHE_SIZE: usize = 512;

impl ExposedCache {
    /// The exposure for `access`, built on a miss.
    pub fn get(
        &self,
        access: &PortalAccess,
        models: &ReadModels,
        reserved: &[&str],
    ) -> Arc<Exposed> {
        let key = (Arc::as_ptr(&access.visibility) as usize, access.view_version);
        {
            let cache = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, exposed)) = cache.get(&key) {
                return Arc::clone(exposed);
            }
        }
        let exposed = Arc::new(Exposed::build(access, models, reserved));
        let mut cache = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= EXPOSED_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(key, (Arc::clone(&access.visibility), Arc::clone(&exposed)));
        exposed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn server() -> ServerId {
        ServerId::parse("docs").unwrap()
    }

    fn over(name: &str) -> EffectiveOverride {
        EffectiveOverride {
            name: name.to_owned(),
            enabled: None,
            portal_alias: None,
            portal_description: None,
            server_alias: None,
            server_description: None,
        }
    }

    fn name(
        upstream: &str,
        over: Option<&EffectiveOverride>,
        default_disabled: bool,
    ) -> Option<String> {
        exposed_name(&server(), upstream, over, default_disabled)
    }

    #[test]
    fn the_portal_alias_beats_the_server_alias_which_beats_the_upstream_name() {
        assert_eq!(name("search", None, false).as_deref(), Some("docs_search"));
        assert_eq!(name("search", Some(&over("search")), false).as_deref(), Some("docs_search"));
        let server_alias =
            EffectiveOverride { server_alias: Some("find".into()), ..over("search") };
        assert_eq!(name("search", Some(&server_alias), false).as_deref(), Some("docs_find"));
        let both = EffectiveOverride { portal_alias: Some("lookup".into()), ..server_alias };
        assert_eq!(name("search", Some(&both), false).as_deref(), Some("docs_lookup"));
        let portal_only =
            EffectiveOverride { portal_alias: Some("lookup".into()), ..over("search") };
        assert_eq!(name("search", Some(&portal_only), false).as_deref(), Some("docs_lookup"));
    }

    #[test]
    fn a_disabled_tool_is_not_exposed() {
        let off = EffectiveOverride { enabled: Some(false), ..over("search") };
        assert_eq!(name("search", Some(&off), false), None);
        // Even with an alias.
        let aliased = EffectiveOverride { portal_alias: Some("find".into()), ..off };
        assert_eq!(name("search", Some(&aliased), false), None);
        let on = EffectiveOverride { enabled: Some(true), ..over("search") };
        assert_eq!(name("search", Some(&on), false).as_deref(), Some("docs_search"));
    }

    #[test]
    fn a_default_disabled_server_exposes_only_what_an_override_enables() {
        assert_eq!(name("search", None, true), None);
        assert_eq!(name("search", Some(&over("search")), true), None);
        let off = EffectiveOverride { enabled: Some(false), ..over("search") };
        assert_eq!(name("search", Some(&off), true), None);
        let on = EffectiveOverride {
            enabled: Some(true),
            server_alias: Some("find".into()),
            ..over("search")
        };
        assert_eq!(name("search", Some(&on), true).as_deref(), Some("docs_find"));
    }

    #[test]
    fn names_mcp_does_not_allow_are_skipped() {
        assert_eq!(name("with space", None, false), None);
        assert_eq!(name("slash/name", None, false), None);
        assert_eq!(name("ünïcode", None, false), None);
        assert_eq!(
            name("dots.and-dashes_ok", None, false).as_deref(),
            Some("docs_dots.and-dashes_ok")
        );
        // `docs_` is 5 bytes: 123 more make exactly the longest allowed name.
        let longest = "a".repeat(MAX_NAME_LEN - 5);
        assert_eq!(name(&longest, None, false).map(|n| n.len()), Some(MAX_NAME_LEN));
        assert_eq!(name(&format!("{longest}a"), None, false), None);
        // An alias is checked the same way.
        let bad_alias = EffectiveOverride { portal_alias: Some("a b".into()), ..over("search") };
        assert_eq!(name("search", Some(&bad_alias), false), None);
    }

    #[test]
    fn split_name_cuts_at_the_first_underscore() {
        assert_eq!(split_name("docs_search"), Some(("docs", "search")));
        // Server ids have no `_`, so the rest keeps the tool's own underscores.
        assert_eq!(split_name("docs_search_all"), Some(("docs", "search_all")));
        assert_eq!(split_name("docs_"), Some(("docs", "")));
        assert_eq!(split_name("_search"), Some(("", "search")));
        assert_eq!(split_name("nounderscore"), None);
    }
}
