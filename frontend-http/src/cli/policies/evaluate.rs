//! Evaluates a test case with Cedar directly: builds the entities and the context of the case
//! and asks `cedar_policy::Authorizer`. This is the only place `policies test` touches Cedar, so
//! it can switch to the shared authorizer of `portico-policies` once that exists.

use anyhow::{Context as _, bail};
use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request};
use chrono::{DateTime, Datelike, Utc};
use portico_core::domain::policy::PolicyRecord;
use serde_json::{Value, json};

use super::cases::{Case, PrincipalType, ResourceType};

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

/// The enabled policies of a directory, validated.
pub fn policy_set(records: &[PolicyRecord]) -> anyhow::Result<PolicySet> {
    let mut set = PolicySet::new();
    for record in records.iter().filter(|r| r.enabled) {
        let policy = portico_policies::validate_policy(record.id.as_str(), &record.policy)
            .map_err(|e| anyhow::anyhow!("{}.cedar: {e}", record.id))?;
        set.add(policy).with_context(|| format!("{}.cedar", record.id))?;
    }
    Ok(set)
}

fn uid(kind: &str, id: &str) -> Value {
    json!({"type": format!("Portico::{kind}"), "id": id})
}

fn entity_uid(kind: &str, id: &str) -> anyhow::Result<EntityUid> {
    EntityUid::from_json(uid(kind, id)).with_context(|| format!("invalid {kind} id `{id}`"))
}

/// Decides `case` against `policies`.
pub fn evaluate(policies: &PolicySet, case: &Case) -> anyhow::Result<Evaluation> {
    let schema = portico_policies::schema().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut entities: Vec<Value> = Vec::new();
    let p = &case.principal;
    let principal = match p.kind {
        PrincipalType::User => {
            for group in &p.groups {
                entities.push(
                    json!({"uid": uid("Group", group), "attrs": {"name": group}, "parents": []}),
                );
            }
            let email = p.email.clone().unwrap_or_else(|| format!("{}@example.com", p.id));
            let parents: Vec<Value> = p.groups.iter().map(|g| uid("Group", g)).collect();
            entities.push(json!({"uid": uid("User", &p.id),
                "attrs": {"email": email, "name": p.id, "idp": "test"}, "parents": parents}));
            entity_uid("User", &p.id)?
        }
        PrincipalType::ServiceToken => {
            if !p.groups.is_empty() {
                bail!("a service token has no groups");
            }
            entities.push(json!({"uid": uid("ServiceToken", &p.id),
                "attrs": {"name": p.id, "client_id": p.id}, "parents": []}));
            entity_uid("ServiceToken", &p.id)?
        }
    };
    let r = &case.resource;
    for portal in &r.portals {
        entities.push(json!({"uid": uid("Portal", portal),
            "attrs": {"hostname": format!("{portal}.example.com")}, "parents": []}));
    }
    let server_entity = |id: &str| {
        let parents: Vec<Value> = r.portals.iter().map(|p| uid("Portal", p)).collect();
        json!({"uid": uid("Server", id), "attrs": {"url": format!("https://{id}.example.com/mcp"),
            "host": format!("{id}.example.com"), "auth_type": "unauthenticated"}, "parents": parents})
    };
    let resource = match r.kind {
        ResourceType::Portal => {
            if !r.portals.iter().any(|p| p == &r.id) {
                entities.push(json!({"uid": uid("Portal", &r.id),
                    "attrs": {"hostname": format!("{}.example.com", r.id)}, "parents": []}));
            }
            entity_uid("Portal", &r.id)?
        }
        ResourceType::Server => {
            entities.push(server_entity(&r.id));
            entity_uid("Server", &r.id)?
        }
        ResourceType::Tool | ResourceType::Prompt => {
            let Some(server) = &r.server else { bail!("a tool or prompt needs its `server`") };
            entities.push(server_entity(server));
            let id = format!("{server}/{}", r.id);
            let (kind, attrs) = if r.kind == ResourceType::Tool {
                let h = &r.hints;
                (
                    "Tool",
                    json!({"name": r.id,
                    "readOnlyHint": h.read_only_hint.unwrap_or(false),
                    "destructiveHint": h.destructive_hint.unwrap_or(true),
                    "idempotentHint": h.idempotent_hint.unwrap_or(false),
                    "openWorldHint": h.open_world_hint.unwrap_or(true)}),
                )
            } else {
                ("Prompt", json!({"name": r.id}))
            };
            entities.push(
                json!({"uid": uid(kind, &id), "attrs": attrs, "parents": [uid("Server", server)]}),
            );
            entity_uid(kind, &id)?
        }
    };
    let entities = Entities::from_json_value(Value::Array(entities), Some(schema))
        .context("the case's entities do not fit the schema")?;
    let action = entity_uid("Action", &case.action)?;
    let time = case.context.time.as_deref().unwrap_or(DEFAULT_TIME);
    let time: DateTime<Utc> = DateTime::parse_from_rfc3339(time)
        .with_context(|| format!("invalid context time `{time}` (RFC 3339)"))?
        .with_timezone(&Utc);
    let ip = case.context.ip.as_deref().unwrap_or(DEFAULT_IP);
    let mut context = json!({
        "time": {"__extn": {"fn": "datetime", "arg": time.format("%Y-%m-%dT%H:%M:%SZ").to_string()}},
        "weekday": time.weekday().number_from_monday(),
        "ip": {"__extn": {"fn": "ip", "arg": ip}},
    });
    if case.action == "call_tool" {
        context["dlp"] = json!({"findings": []});
    }
    let context = Context::from_json_value(context, Some((schema, &action)))
        .with_context(|| format!("the context does not fit action `{}`", case.action))?;
    let request = Request::new(principal, action, resource, context, Some(schema))
        .context("the request does not fit the schema (is the action right for the resource?)")?;
    let response = Authorizer::new().is_authorized(&request, policies, &entities);
    let mut reasons: Vec<String> =
        response.diagnostics().reason().map(ToString::to_string).collect();
    reasons.sort();
    Ok(Evaluation {
        allowed: response.decision() == Decision::Allow,
        reasons,
        errors: response.diagnostics().errors().map(ToString::to_string).collect(),
    })
}
