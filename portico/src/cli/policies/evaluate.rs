//! Evaluates a test case with the same authorizer the API and the data plane use
//! (`portico_policies::PolicyEngine`): the case's principal, resource and context become Portico's
//! facts, and the engine decides them as it decides every other question
//! ([`PolicyEngine::decide`]).

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use portico_core::domain::policy::PolicyRecord;
use portico_policies::{
    Action, PolicyEngine, PortalFacts, Principal, PromptFacts, Request, RequestContext, Resource,
    ResourceKind, ServerFacts, ServerInPortals, ToolFacts,
};

use super::cases::{Case, PrincipalKind};

/// The default request time: a Monday, at noon UTC.
pub const DEFAULT_TIME: &str = "2026-01-05T12:00:00Z";
/// The default client IP (TEST-NET-1).
pub const DEFAULT_IP: &str = "192.0.2.1";

/// The answer for one case.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub allowed: bool,
    /// Ids of the policies that decided.
    pub reasons: Vec<String>,
    pub errors: Vec<String>,
}

/// The engine over the enabled policies of a directory, each validated first so that an
/// invalid file is reported with its name and position.
pub fn engine(records: &[PolicyRecord]) -> anyhow::Result<PolicyEngine> {
    for record in records.iter().filter(|r| r.enabled) {
        portico_policies::validate_policy(record.id.as_str(), &record.policy)
            .map_err(|e| anyhow::anyhow!("{}.cedar: {e}", record.id))?;
    }
    PolicyEngine::new(records).context("the policies do not form a policy set")
}

fn action_of(name: &str) -> anyhow::Result<Action> {
    Action::ALL
        .iter()
        .copied()
        .find(|a| a.name() == name)
        .with_context(|| format!("unknown action `{name}`: expected one of connect, use_server, list_tool, call_tool, get_prompt"))
}

/// Decides `case` with `engine`.
pub fn evaluate(engine: &PolicyEngine, case: &Case) -> anyhow::Result<Evaluation> {
    let p = &case.principal;
    let principal = match p.kind {
        PrincipalKind::User => Principal::User {
            id: p.id.clone(),
            email: p.email.clone().unwrap_or_else(|| format!("{}@example.com", p.id)),
            name: p.id.clone(),
            idp: "test".to_owned(),
            groups: p.groups.clone(),
            claims: Default::default(),
        },
        PrincipalKind::ServiceToken => {
            if !p.groups.is_empty() {
                bail!("a service token has no groups");
            }
            Principal::ServiceToken {
                id: p.id.clone(),
                name: p.id.clone(),
                client_id: p.id.clone(),
            }
        }
    };
    let r = &case.resource;
    let portal =
        |id: &str| PortalFacts { id: id.to_owned(), hostname: format!("{id}.example.com") };
    let server = |id: &str| ServerInPortals {
        server: ServerFacts {
            id: id.to_owned(),
            url: format!("https://{id}.example.com/mcp"),
            auth_type: "unauthenticated".to_owned(),
            portals: r.portals.clone(),
        },
        portals: r.portals.iter().map(|p| portal(p)).collect(),
    };
    let parent = || match &r.server {
        Some(id) => Ok(server(id)),
        None => Err(anyhow::anyhow!("a tool or prompt needs its `server`")),
    };
    let resource = match r.kind {
        ResourceKind::Portal => Resource::Portal(portal(&r.id)),
        ResourceKind::Server => Resource::Server(server(&r.id)),
        ResourceKind::Tool => {
            let server = parent()?;
            let mut tool = ToolFacts::with_mcp_defaults(server.server.id.clone(), r.id.clone());
            let h = &r.hints;
            tool.read_only = h.read_only_hint.unwrap_or(tool.read_only);
            tool.destructive = h.destructive_hint.unwrap_or(tool.destructive);
            tool.idempotent = h.idempotent_hint.unwrap_or(tool.idempotent);
            tool.open_world = h.open_world_hint.unwrap_or(tool.open_world);
            Resource::Tool { server, tool }
        }
        ResourceKind::Prompt => {
            let server = parent()?;
            let prompt = PromptFacts { server_id: server.server.id.clone(), name: r.id.clone() };
            Resource::Prompt { server, prompt }
        }
    };
    let action = action_of(&case.action)?;
    let time = case.context.time.as_deref().unwrap_or(DEFAULT_TIME);
    let time: DateTime<Utc> = DateTime::parse_from_rfc3339(time)
        .with_context(|| format!("invalid context time `{time}` (RFC 3339)"))?
        .with_timezone(&Utc);
    let ip = case.context.ip.as_deref().unwrap_or(DEFAULT_IP);
    let ip = ip.parse().with_context(|| format!("invalid context ip `{ip}`"))?;
    let request = Request { principal, action, resource, context: RequestContext::new(time, ip) };
    let decision = engine.decide(&request)?;
    Ok(Evaluation {
        allowed: decision.allowed,
        reasons: decision.policy_ids,
        errors: decision.errors,
    })
}
