//! What a principal sees in a portal and may call there, from the read models and the policy
//! set: the one place the admin API's `visibility` answer and the data plane's `tools/list`
//! and `tools/call` get their decisions from.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use portico_core::domain::ids::{PortalId, ServerId};
use portico_policies::{
    Action, Decision, EntityError, OwnedCatalog, PolicyEngine, PolicyEngineError, PortalFacts,
    Principal, PromptFacts, Request, RequestContext, Resource, ServerFacts, ServerInPortals,
    ToolFacts, Visibility, VisibilityCache,
};
use portico_projections::{PortalView, ReadModels};
use serde_json::Value;

/// How many principal-and-portal views are kept.
const VISIBILITY_CACHE_SIZE: usize = 4096;

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("portal `{0}` does not exist")]
    NoPortal(PortalId),
    #[error(transparent)]
    Entity(#[from] EntityError),
    #[error("the stored policy set does not compile: {0}")]
    Engine(#[from] PolicyEngineError),
}

/// The compiled policy set (rebuilt when the set's version changes) and the views cache.
#[derive(Debug)]
pub struct Authz {
    engine: Mutex<Option<(u64, Arc<PolicyEngine>)>>,
    pub cache: VisibilityCache,
}

impl Default for Authz {
    fn default() -> Self {
        Authz { engine: Mutex::new(None), cache: VisibilityCache::new(VISIBILITY_CACHE_SIZE) }
    }
}

/// A principal's view of one portal, with everything it was computed from.
#[derive(Debug, Clone)]
pub struct PortalAccess {
    pub view: PortalView,
    /// Changes whenever the portal or one of its servers (settings or sync) does.
    pub view_version: u64,
    pub policy_version: u64,
    pub engine: Arc<PolicyEngine>,
    pub visibility: Arc<Visibility>,
}

impl Authz {
    /// The engine for the policy set in `models`, compiled once per version of the set.
    pub fn engine(&self, models: &ReadModels) -> Result<(u64, Arc<PolicyEngine>), AuthzError> {
        let version = models.policies.version();
        let mut slot = self.engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((v, engine)) = slot.as_ref()
            && *v == version
        {
            return Ok((version, Arc::clone(engine)));
        }
        let records: Vec<_> = models.policies.iter().cloned().collect();
        let engine = Arc::new(PolicyEngine::new(&records)?);
        *slot = Some((version, Arc::clone(&engine)));
        Ok((version, engine))
    }

    /// What `principal` sees in portal `portal_id` now (cached per view, policy set and, when
    /// a policy reads it, the request's minute and IP).
    pub fn access(
        &self,
        models: &ReadModels,
        principal: &Principal,
        portal_id: &PortalId,
        context: &RequestContext,
    ) -> Result<PortalAccess, AuthzError> {
        let view =
            models.portal(portal_id).ok_or_else(|| AuthzError::NoPortal(portal_id.clone()))?;
        let (policy_version, engine) = self.engine(models)?;
        let view_version = view_version(&view, models);
        let visibility = self.cache.visibility_lazy(
            &engine,
            policy_version,
            principal,
            portal_id.as_str(),
            view_version,
            context,
            || catalog(models, &view, principal),
        )?;
        Ok(PortalAccess { view, view_version, policy_version, engine, visibility })
    }
}

/// The portal's catalog as Cedar facts: its servers (for a service token only those used with
/// the server's own credential), with their synced tools and prompts.
fn catalog(models: &ReadModels, view: &PortalView, principal: &Principal) -> OwnedCatalog {
    let service_token = matches!(principal, Principal::ServiceToken { .. });
    let mut owned = OwnedCatalog {
        portal: PortalFacts { id: view.portal_id.to_string(), hostname: view.hostname.clone() },
        ..OwnedCatalog::default()
    };
    for s in &view.servers {
        // INVARIANT: a service token reaches only servers the portal uses with the server's
        // own credential (`on_behalf: false`); the others need a person's upstream login.
        if service_token && s.on_behalf {
            continue;
        }
        let Some(facts) = server_facts(models, &s.server_id) else { continue };
        if let Some(entry) = models.catalog.get(&s.server_id) {
            owned.tools.extend(entry.sync.tools.iter().filter_map(|t| tool_facts(&s.server_id, t)));
            owned.prompts.extend(entry.sync.prompts.iter().filter_map(|p| {
                Some(PromptFacts {
                    server_id: s.server_id.to_string(),
                    name: p.get("name")?.as_str()?.to_owned(),
                })
            }));
        }
        owned.servers.push(facts);
    }
    owned
}

/// Whether `principal` may call `tool` of server `server_id` now (no such server: denied).
pub fn decide_call(
    engine: &PolicyEngine,
    models: &ReadModels,
    principal: &Principal,
    server_id: &ServerId,
    tool: &Value,
    context: &RequestContext,
) -> Result<Decision, EntityError> {
    let Some(server) = server_in_portals(models, server_id) else {
        return Ok(Decision::default());
    };
    let Some(tool) = tool_facts(server_id, tool) else { return Ok(Decision::default()) };
    engine.decide(&Request {
        principal: principal.clone(),
        action: Action::CallTool,
        resource: Resource::Tool { server, tool },
        context: context.clone(),
    })
}

/// Server `id` with the portals it is in, as a Cedar resource (or a tool's or prompt's parent).
pub fn server_in_portals(models: &ReadModels, id: &ServerId) -> Option<ServerInPortals> {
    let server = server_facts(models, id)?;
    let portals = models
        .portals
        .portals_of(id)
        .filter_map(|p| models.portals.get(p))
        .map(portal_facts)
        .collect();
    Some(ServerInPortals { server, portals })
}

/// A portal as Cedar sees it.
pub fn portal_facts(portal: &portico_projections::PortalRecord) -> PortalFacts {
    PortalFacts { id: portal.portal_id.to_string(), hostname: portal.settings.hostname.clone() }
}

/// The facts of server `id` as Cedar sees it: its URL, auth type, and the portals it is in.
pub fn server_facts(models: &ReadModels, id: &ServerId) -> Option<ServerFacts> {
    let server = models.catalog.get(id)?;
    Some(ServerFacts {
        id: id.to_string(),
        url: server.hostname.clone(),
        auth_type: server.auth_type.as_str().to_owned(),
        portals: models.portals.portals_of(id).map(|p| p.to_string()).collect(),
    })
}

/// A synced MCP `Tool` object as Cedar sees it: its name and the four hints (MCP's defaults
/// for absent ones). `None` for an object without a string `name`.
pub fn tool_facts(server_id: &ServerId, tool: &Value) -> Option<ToolFacts> {
    let name = tool.get("name")?.as_str()?;
    let mut facts = ToolFacts::with_mcp_defaults(server_id.to_string(), name.to_owned());
    if let Some(annotations) = tool.get("annotations") {
        let hint = |key: &str, default: bool| {
            annotations.get(key).and_then(Value::as_bool).unwrap_or(default)
        };
        facts.read_only = hint("readOnlyHint", facts.read_only);
        facts.destructive = hint("destructiveHint", facts.destructive);
        facts.idempotent = hint("idempotentHint", facts.idempotent);
        facts.open_world = hint("openWorldHint", facts.open_world);
    }
    Some(facts)
}

/// A version of the portal's view that changes whenever the portal or one of its servers does
/// (a server's stream version moves with its settings and credentials, its sync position with
/// its syncs).
pub fn view_version(view: &PortalView, models: &ReadModels) -> u64 {
    let mut hasher = DefaultHasher::new();
    view.stream_version.hash(&mut hasher);
    for s in &view.servers {
        s.server_id.as_str().hash(&mut hasher);
        models
            .catalog
            .get(&s.server_id)
            .map(|c| (c.stream_version, c.sync.position))
            .hash(&mut hasher);
    }
    hasher.finish()
}
