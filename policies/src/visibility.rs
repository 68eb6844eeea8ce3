//! What a principal sees in a portal: `connect` on the portal, then `use_server` per server,
//! `list_tool` per tool and `get_prompt` per prompt, with default deny at every level (a tool or
//! prompt of a server the principal may not use is not visible, whatever its own policies say).
//! And a bounded cache of these views, keyed by everything the answer depends on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cedar_policy::{ActionConstraint, Context, Entities, EntityUid};

use crate::authorizer::{Combined, Decision, PolicyEngine};
use crate::entities::{
    Action, EntitiesBuilder, EntityError, PortalFacts, Principal, PromptFacts, RequestContext,
    ServerFacts, ToolFacts,
};

/// The product's message when a principal may connect to a portal but use none of its servers.
pub const NO_ALLOWED_SERVERS: &str = "No allowed servers available, check your Zero Trust Policies";

/// A portal and its catalog, as facts.
#[derive(Debug, Clone, Copy)]
pub struct PortalCatalog<'a> {
    /// The portal.
    pub portal: &'a PortalFacts,
    /// Its servers.
    pub servers: &'a [ServerFacts],
    /// The tools of those servers.
    pub tools: &'a [ToolFacts],
    /// The prompts of those servers.
    pub prompts: &'a [PromptFacts],
}

/// A portal's catalog, owned (see [`VisibilityCache::visibility_lazy`]).
#[derive(Debug, Clone, Default)]
pub struct OwnedCatalog {
    pub portal: PortalFacts,
    pub servers: Vec<ServerFacts>,
    pub tools: Vec<ToolFacts>,
    pub prompts: Vec<PromptFacts>,
}

impl OwnedCatalog {
    /// The borrowed form [`visibility`] takes.
    pub fn as_catalog(&self) -> PortalCatalog<'_> {
        PortalCatalog {
            portal: &self.portal,
            servers: &self.servers,
            tools: &self.tools,
            prompts: &self.prompts,
        }
    }
}

/// What a principal sees in a portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    /// The decision on `connect` to the portal.
    pub portal: Decision,
    /// The servers the principal may use, in catalog order, each with what it shows.
    pub servers: Vec<VisibleServer>,
    /// Why nothing is visible, when that is so.
    pub reason: Option<Hidden>,
}

/// A server the principal may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleServer {
    /// The server's id.
    pub id: String,
    /// The decision on `use_server`.
    pub decision: Decision,
    /// Its tools the principal may list, by upstream name, with their decisions.
    pub tools: Vec<(String, Decision)>,
    /// Its prompts the principal may get, by upstream name, with their decisions.
    pub prompts: Vec<(String, Decision)>,
}

/// Why a principal sees nothing in a portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hidden {
    /// No policy permits `connect` on the portal (or a forbid denies it).
    NoPortalAccess {
        /// A message for the security team.
        message: String,
    },
    /// The principal may connect but use none of the portal's servers.
    NoAllowedServers {
        /// [`NO_ALLOWED_SERVERS`], then which policies to check.
        message: String,
        /// The enabled policies whose scope covers `use_server` on this portal or one of its
        /// servers (or any resource): the ones to check.
        policies_to_check: Vec<String>,
    },
}

/// The principal's view of a portal. Builds the entity set of the principal, the portal and its
/// servers (to decide `connect` and `use_server`). Tools and prompts are decided by the engine
/// narrowed to the principal and action ([`PolicyEngine::narrow`]): unconditional candidates
/// by scope alone, and a tool whose conditional candidates read it only through its hints by
/// one Cedar call per (candidates, hints) class, over the tool alone with the principal and
/// its server (answers with errors are not shared). Anything else is decided over the entity
/// set the reference builds, the same plus the tools and prompts of the usable servers,
/// built only when needed (building entities was most of the cost). The answers are those of
/// deciding every item over that set (`visibility_differential.rs` checks it).
pub fn visibility(
    engine: &PolicyEngine,
    principal: &Principal,
    catalog: PortalCatalog<'_>,
    context: &RequestContext,
) -> Result<Visibility, EntityError> {
    let mut builder = EntitiesBuilder::new();
    builder.principal(principal)?.portal(catalog.portal)?;
    for server in catalog.servers {
        builder.server(server)?;
    }
    let entities = builder.build()?;
    let who = principal.uid()?;
    let ask = Ask { engine, who: &who, entities: &entities };

    let connect = context.to_cedar(Action::Connect)?;
    let portal = ask.decide(Action::Connect, &catalog.portal.uid()?, &connect);
    if !portal.allowed {
        let message = format!(
            "principal `{}` may not connect to portal `{}`: no policy permits `connect` on it{}",
            principal.id(),
            catalog.portal.id,
            if portal.policy_ids.is_empty() {
                String::new()
            } else {
                format!(" (denied by {})", portal.policy_ids.join(", "))
            }
        );
        return Ok(Visibility {
            portal,
            servers: Vec::new(),
            reason: Some(Hidden::NoPortalAccess { message }),
        });
    }

    let use_server = context.to_cedar(Action::UseServer)?;
    let mut narrowed = engine.narrow(&who, Action::UseServer, &entities)?;
    let mut allowed = Vec::new();
    for server in catalog.servers {
        let decision = narrowed.is_authorized(&server.uid()?, &use_server, &entities);
        if decision.allowed {
            allowed.push((server, decision));
        }
    }

    let mut servers = Vec::new();
    if !allowed.is_empty() {
        let visible: HashMap<&str, usize> =
            allowed.iter().enumerate().map(|(i, (s, _))| (s.id.as_str(), i)).collect();
        let mut tools: Vec<Vec<&ToolFacts>> = vec![Vec::new(); allowed.len()];
        let mut prompts: Vec<Vec<&PromptFacts>> = vec![Vec::new(); allowed.len()];
        for tool in catalog.tools {
            if let Some(&i) = visible.get(tool.server_id.as_str()) {
                tools[i].push(tool);
            }
        }
        for prompt in catalog.prompts {
            if let Some(&i) = visible.get(prompt.server_id.as_str()) {
                prompts[i].push(prompt);
            }
        }
        // The entities of the visible servers' tools and prompts, as before: built only if some
        // tool or prompt needs a Cedar evaluation that may read entities other than its own.
        let mut full: Option<Entities> = None;
        let full_entities = |full: &mut Option<Entities>| -> Result<Entities, EntityError> {
            if let Some(entities) = full.take() {
                return Ok(entities);
            }
            let mut builder = EntitiesBuilder::new();
            builder.principal(principal)?.portal(catalog.portal)?;
            for (server, _) in &allowed {
                builder.server(server)?;
            }
            for tool in tools.iter().flatten() {
                builder.tool(tool)?;
            }
            for prompt in prompts.iter().flatten() {
                builder.prompt(prompt)?;
            }
            builder.build()
        };
        let list_tool = context.to_cedar(Action::ListTool)?;
        let get_prompt = context.to_cedar(Action::GetPrompt)?;
        // Narrowed with the first entity set: it holds the principal and its groups as the
        // full one does.
        let mut tool_ask = engine.narrow(&who, Action::ListTool, &entities)?;
        let mut prompt_ask = engine.narrow(&who, Action::GetPrompt, &entities)?;
        // Cedar's answers for hints-only candidates, by (candidates, hints), without errors.
        let mut memo: HashMap<(Vec<usize>, [bool; 4]), Combined> = HashMap::new();
        // A tool listed twice is one entity, with its first facts (as the builder keeps them).
        let mut first: HashMap<EntityUid, &ToolFacts> = HashMap::new();
        for (i, (server, decision)) in allowed.iter().enumerate() {
            let server_uid = server.uid()?;
            let mut ancestors = vec![&server_uid];
            if let Some(more) = entities.ancestors(&server_uid) {
                ancestors.extend(more);
            }
            let mut visible_tools = Vec::new();
            for tool in &tools[i] {
                let uid = tool.uid()?;
                let candidates = tool_ask.candidates(&uid, &ancestors);
                let decision = if candidates.conditional().is_empty() {
                    candidates.finish(None)
                } else if tool_ask.hints_only(&candidates) {
                    let tool = *first.entry(uid.clone()).or_insert(tool);
                    let hints =
                        [tool.read_only, tool.destructive, tool.idempotent, tool.open_world];
                    let key = (candidates.conditional().to_vec(), hints);
                    if let Some(answer) = memo.get(&key) {
                        candidates.finish(Some(answer))
                    } else {
                        // The tool alone with the principal, its server and portal: the
                        // conditions read nothing else (the server's first facts, as the
                        // builder keeps them, for the scope's `in`).
                        let first_server =
                            catalog.servers.iter().find(|s| s.id == server.id).unwrap_or(server);
                        let mut builder = EntitiesBuilder::new();
                        builder
                            .principal(principal)?
                            .portal(catalog.portal)?
                            .server(first_server)?
                            .tool(tool)?;
                        let own = builder.build()?;
                        match tool_ask.conditional(&candidates, &uid, &list_tool, &own) {
                            Err(decision) => decision,
                            Ok(answer) => match answer {
                                Some(answer) if !answer.has_errors() => {
                                    let decision = candidates.finish(Some(&answer));
                                    memo.insert(key, answer);
                                    decision
                                }
                                // Errors may name the tool: ask again with every entity.
                                _ => {
                                    let all = full_entities(&mut full)?;
                                    let decision =
                                        tool_ask.evaluate(candidates, &uid, &list_tool, &all);
                                    full = Some(all);
                                    decision
                                }
                            },
                        }
                    }
                } else {
                    let all = full_entities(&mut full)?;
                    let decision = tool_ask.evaluate(candidates, &uid, &list_tool, &all);
                    full = Some(all);
                    decision
                };
                if decision.allowed {
                    visible_tools.push((tool.name.clone(), decision));
                }
            }
            let mut visible_prompts = Vec::new();
            for prompt in &prompts[i] {
                let uid = prompt.uid()?;
                let candidates = prompt_ask.candidates(&uid, &ancestors);
                let decision = if candidates.conditional().is_empty() {
                    candidates.finish(None)
                } else {
                    let all = full_entities(&mut full)?;
                    let decision = prompt_ask.evaluate(candidates, &uid, &get_prompt, &all);
                    full = Some(all);
                    decision
                };
                if decision.allowed {
                    visible_prompts.push((prompt.name.clone(), decision));
                }
            }
            servers.push(VisibleServer {
                id: server.id.clone(),
                decision: decision.clone(),
                tools: visible_tools,
                prompts: visible_prompts,
            });
        }
    }

    let reason = if servers.is_empty() {
        let policies_to_check = policies_to_check(engine, catalog)?;
        let message = if policies_to_check.is_empty() {
            format!(
                "{NO_ALLOWED_SERVERS}: no policy covers `use_server` on portal `{}` or its servers; add a permit",
                catalog.portal.id
            )
        } else {
            format!(
                "{NO_ALLOWED_SERVERS}: check the policies {} (`use_server` on portal `{}` or its servers)",
                policies_to_check.join(", "),
                catalog.portal.id
            )
        };
        Some(Hidden::NoAllowedServers { message, policies_to_check })
    } else {
        None
    };
    Ok(Visibility { portal, servers, reason })
}

struct Ask<'a> {
    engine: &'a PolicyEngine,
    who: &'a EntityUid,
    entities: &'a Entities,
}

impl Ask<'_> {
    fn decide(&self, action: Action, resource: &EntityUid, context: &Context) -> Decision {
        self.engine.is_authorized(self.who, action, resource, context, self.entities)
    }
}

/// The enabled policies whose scope covers `use_server` (any action, `use_server` itself, or a
/// set containing it) on the portal, one of its servers, or any resource.
fn policies_to_check(
    engine: &PolicyEngine,
    catalog: PortalCatalog<'_>,
) -> Result<Vec<String>, EntityError> {
    let use_server = Action::UseServer.uid()?;
    let mut resources = vec![catalog.portal.uid()?];
    for server in catalog.servers {
        resources.push(server.uid()?);
    }
    let mut ids: Vec<String> = engine
        .scopes()
        .iter()
        .filter(|scope| match &scope.actions {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => *a == use_server,
            ActionConstraint::In(actions) => actions.contains(&use_server),
        })
        .filter(|scope| scope.resource.as_ref().is_none_or(|r| resources.contains(r)))
        .map(|scope| scope.id.clone())
        .collect();
    ids.sort();
    Ok(ids)
}

/// `context` with its time truncated to the minute.
fn to_the_minute(context: &RequestContext) -> RequestContext {
    let seconds = context.time.timestamp();
    let mut minute = context.clone();
    if let Some(time) = chrono::DateTime::from_timestamp(seconds - seconds.rem_euclid(60), 0) {
        minute.time = time;
    }
    minute
}

/// What a cached view depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The principal, with its attributes and groups.
    pub principal: Principal,
    /// The portal's id.
    pub portal_id: String,
    /// The version of the portal's view (bumped by any catalog change that touches it).
    pub portal_version: u64,
    /// The version of the policy set (bumped by any policy change).
    pub policy_version: u64,
    /// The request's context, only when some policy reads `context` (else `None`, so that one
    /// view serves every request).
    pub context: Option<RequestContext>,
}

/// A bounded cache of views. A new policy or catalog version is a new key, hence a miss; the
/// least recently used entry goes when the cache is full.
#[derive(Debug)]
pub struct VisibilityCache {
    capacity: usize,
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    entries: HashMap<CacheKey, (u64, Arc<Visibility>)>,
}

impl VisibilityCache {
    /// A cache of at most `capacity` views (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new(Lru::default()) }
    }

    /// The view for `key`, computed by `compute` on a miss.
    pub fn get_or_compute(
        &self,
        key: CacheKey,
        compute: impl FnOnce() -> Result<Visibility, EntityError>,
    ) -> Result<Arc<Visibility>, EntityError> {
        if let Some(hit) = self.with(|lru| {
            lru.tick += 1;
            let tick = lru.tick;
            lru.entries.get_mut(&key).map(|(used, view)| {
                *used = tick;
                Arc::clone(view)
            })
        }) {
            return Ok(hit);
        }
        // Computed outside the lock: two concurrent misses both compute, and the last one wins.
        let view = Arc::new(compute()?);
        let capacity = self.capacity;
        self.with(|lru| {
            if lru.entries.len() >= capacity && !lru.entries.contains_key(&key) {
                let oldest =
                    lru.entries.iter().min_by_key(|(_, (used, _))| *used).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    lru.entries.remove(&oldest);
                }
            }
            lru.tick += 1;
            let tick = lru.tick;
            lru.entries.insert(key, (tick, Arc::clone(&view)));
        });
        Ok(view)
    }

    /// The view of `principal` in `catalog`, from the cache when `portal_version` and
    /// `policy_version` are unchanged. When some policy reads the context, the view is computed
    /// for the request's time truncated to the minute (and its IP), so that views of one minute
    /// are shared; a policy on the time of day sees the minute, not the second.
    pub fn visibility(
        &self,
        engine: &PolicyEngine,
        policy_version: u64,
        principal: &Principal,
        catalog: PortalCatalog<'_>,
        portal_version: u64,
        context: &RequestContext,
    ) -> Result<Arc<Visibility>, EntityError> {
        let reads = engine.reads_context();
        let minute = to_the_minute(context);
        let key = CacheKey {
            principal: principal.clone(),
            portal_id: catalog.portal.id.clone(),
            portal_version,
            policy_version,
            context: reads.then(|| minute.clone()),
        };
        let evaluated = if reads { &minute } else { context };
        self.get_or_compute(key, || visibility(engine, principal, catalog, evaluated))
    }

    /// [`VisibilityCache::visibility`] for a catalog built only on a miss: the catalog of a large
    /// portal (thousands of tools) costs more to assemble than a cached answer.
    #[allow(clippy::too_many_arguments)]
    pub fn visibility_lazy<F>(
        &self,
        engine: &PolicyEngine,
        policy_version: u64,
        principal: &Principal,
        portal_id: &str,
        portal_version: u64,
        context: &RequestContext,
        catalog: F,
    ) -> Result<Arc<Visibility>, EntityError>
    where
        F: FnOnce() -> OwnedCatalog,
    {
        let reads = engine.reads_context();
        let minute = to_the_minute(context);
        let key = CacheKey {
            principal: principal.clone(),
            portal_id: portal_id.to_owned(),
            portal_version,
            policy_version,
            context: reads.then(|| minute.clone()),
        };
        let evaluated = if reads { &minute } else { context };
        self.get_or_compute(key, || {
            let owned = catalog();
            visibility(engine, principal, owned.as_catalog(), evaluated)
        })
    }

    /// How many views are cached.
    pub fn len(&self) -> usize {
        self.with(|lru| lru.entries.len())
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every view.
    pub fn clear(&self) {
        self.with(|lru| lru.entries.clear());
    }

    fn with<T>(&self, f: impl FnOnce(&mut Lru) -> T) -> T {
        // A panic while holding the lock cannot leave the map inconsistent: recover it.
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

#[cfg(test)]
#[path = "visibility_differential.rs"]
mod differential;
