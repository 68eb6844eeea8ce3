//! The security team's two daily questions: "would this principal be allowed this action on
//! this resource, and why?" (`POST /cedar/authorize`) and "what would this principal see in
//! this portal?" (`GET /portals/{id}/visibility?principal=...`). Both answer from the current
//! policy set and catalog, with the ids of the policies that decided.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_gateway::authz;
use portico_policies::{
    Action, Decision, Hidden, Principal, PromptFacts, Request, RequestContext, Resource,
    ServerInPortals, ToolFacts,
};
use portico_projections::ReadModels;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::body::JsonBody;
use super::envelope;
use super::error::{ApiError, Code};
use super::parse_id;
use crate::auth::ApiCaller;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{account_id}/cedar/authorize", web::post().to(authorize)).route(
        "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/visibility",
        web::get().to(visibility),
    );
}

/// The resource of an authorization question.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResourceBody {
    Portal {
        id: String,
    },
    Server {
        id: String,
    },
    /// A tool of a registered server; hints default to MCP's defaults.
    Tool {
        server_id: String,
        name: String,
        #[serde(default)]
        read_only: Option<bool>,
        #[serde(default)]
        destructive: Option<bool>,
        #[serde(default)]
        idempotent: Option<bool>,
        #[serde(default)]
        open_world: Option<bool>,
    },
    Prompt {
        server_id: String,
        name: String,
    },
}

/// The context of the question; the time defaults to now and the IP to `0.0.0.0`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextBody {
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub dlp_findings: Vec<String>,
}

impl ContextBody {
    fn resolve(self) -> RequestContext {
        let mut context = RequestContext::new(
            self.time.unwrap_or_else(Utc::now),
            self.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        );
        context.dlp_findings = self.dlp_findings;
        context
    }
}

/// `POST /cedar/authorize` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeBody {
    pub principal: Principal,
    pub action: Action,
    pub resource: ResourceBody,
    #[serde(default)]
    pub context: ContextBody,
}

fn decision_json(decision: &Decision) -> Value {
    let reason = if decision.allowed {
        format!("permitted by {}", list(&decision.policy_ids))
    } else if decision.policy_ids.is_empty() {
        "no policy permits this: default deny".to_owned()
    } else {
        format!("forbidden by {}", list(&decision.policy_ids))
    };
    json!({
        "decision": if decision.allowed { "allow" } else { "deny" },
        "allowed": decision.allowed,
        "policies": decision.policy_ids,
        "errors": decision.errors,
        "reason": reason,
    })
}

fn list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    format!("{} {}", if ids.len() == 1 { "policy" } else { "policies" }, quoted.join(", "))
}

fn authz_error(e: authz::AuthzError) -> ApiError {
    match e {
        authz::AuthzError::NoPortal(id) => {
            ApiError::not_found(format!("portal `{id}` does not exist"))
        }
        authz::AuthzError::Entity(e) => entity_error(e),
        // Every stored policy was validated on write, so this only fails on a bug.
        other => ApiError::internal(other),
    }
}

fn entity_error(e: portico_policies::EntityError) -> ApiError {
    match e {
        portico_policies::EntityError::Mismatch { .. } => {
            ApiError::field("action", format!("invalid request: {e}"))
        }
        e => ApiError::new(Code::InvalidField, format!("invalid request: {e}")),
    }
}

/// The envelope of an authorization answer (OpenAPI only): `result` holds `decision` (`allow`
/// or `deny`), `allowed`, `policies` (the ids that decided), `errors`, a readable `reason`,
/// `action` and `policy_set_version`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AuthorizeResult {
    success: bool,
    #[schema(value_type = Vec<Object>)]
    errors: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    messages: Vec<Value>,
    #[schema(value_type = Object)]
    result: Value,
}

/// Would this principal be allowed this action on this resource, and why?
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/cedar/authorize",
    tag = "Cedar policies",
    operation_id = "authorize_cedar_request",
    params(crate::api::openapi::AccountPath),
    request_body(content = Object, description = "`{principal: {type: user|service_token, ...}, action: connect|use_server|list_tool|call_tool|get_prompt, resource: {type: portal|server|tool|prompt, ...}, context?: {time?, ip?, dlp_findings?}}`"),
    responses((status = 200, description = "The decision and the policies that made it", body = AuthorizeResult), crate::api::openapi::ReadErrors),
)]
pub async fn authorize(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<AuthorizeBody>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let context = body.context.resolve();
    let answer = state.read(|models| -> Result<Value, ApiError> {
        let (version, engine) = state.app.authz.engine(models).map_err(authz_error)?;
        let request = Request {
            principal: body.principal,
            action: body.action,
            resource: resource_of(models, body.resource)?,
            context,
        };
        let decision = engine.decide(&request).map_err(entity_error)?;
        let mut answer = decision_json(&decision);
        answer["policy_set_version"] = json!(version);
        answer["action"] = json!(request.action);
        Ok(answer)
    })?;
    Ok(envelope::ok(answer))
}

/// The described resource with the facts the read models hold about it.
fn resource_of(models: &ReadModels, body: ResourceBody) -> Result<Resource, ApiError> {
    let server = |id: &str, field: &str| -> Result<ServerInPortals, ApiError> {
        let server_id: ServerId = parse_id(id, field)?;
        authz::server_in_portals(models, &server_id)
            .ok_or_else(|| ApiError::field(field, format!("server `{server_id}` does not exist")))
    };
    Ok(match body {
        ResourceBody::Portal { id } => {
            let id: PortalId = parse_id(&id, "resource.id")?;
            let record = models.portals.get(&id).ok_or_else(|| {
                ApiError::field("resource.id", format!("portal `{id}` does not exist"))
            })?;
            Resource::Portal(authz::portal_facts(record))
        }
        ResourceBody::Server { id } => Resource::Server(server(&id, "resource.id")?),
        ResourceBody::Tool { server_id, name, read_only, destructive, idempotent, open_world } => {
            let server = server(&server_id, "resource.server_id")?;
            let mut tool = ToolFacts::with_mcp_defaults(server_id, name);
            tool.read_only = read_only.unwrap_or(tool.read_only);
            tool.destructive = destructive.unwrap_or(tool.destructive);
            tool.idempotent = idempotent.unwrap_or(tool.idempotent);
            tool.open_world = open_world.unwrap_or(tool.open_world);
            Resource::Tool { server, tool }
        }
        ResourceBody::Prompt { server_id, name } => Resource::Prompt {
            server: server(&server_id, "resource.server_id")?,
            prompt: PromptFacts { server_id, name },
        },
    })
}

/// `?principal=user:<email>&groups=a,b` or `?principal=service_token:<id or client id>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilityQuery {
    pub principal: String,
    #[serde(default)]
    pub groups: Option<String>,
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ip: Option<IpAddr>,
}

fn principal_of(models: &ReadModels, query: &VisibilityQuery) -> Result<Principal, ApiError> {
    let bad = |message: String| ApiError::new(Code::InvalidQuery, message);
    match query.principal.split_once(':') {
        Some(("user", email)) if !email.is_empty() => Ok(Principal::User {
            id: email.to_owned(),
            email: email.to_owned(),
            name: email.to_owned(),
            idp: "portico".to_owned(),
            groups: query
                .groups
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
        }),
        Some(("service_token", id)) => {
            let record = models
                .service_tokens
                .get(id)
                .or_else(|| models.service_tokens.by_client_id(id))
                .filter(|r| r.is_live())
                .ok_or_else(|| bad(format!("`principal`: service token `{}` does not exist", crate::state::truncate(id))))?;
            Ok(Principal::ServiceToken {
                id: record.token.token_id.clone(),
                name: record.token.name.clone(),
                client_id: record.token.client_id.clone(),
            })
        }
        _ => Err(bad(
            "`principal` must be `user:<email>` (with `groups=a,b`) or `service_token:<id or client id>`"
                .to_owned(),
        )),
    }
}

#[derive(Serialize)]
struct VisibleItem {
    name: String,
    policies: Vec<String>,
}

/// What a principal would see in a portal: `result` holds `connect` (a decision), `servers`
/// (each with the policies that allowed it and its visible tools and prompts), and `reason`
/// when nothing is visible (`no_portal_access`, or `no_allowed_servers` with the policies to
/// check).
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/visibility",
    tag = "Cedar policies",
    operation_id = "get_mcp_portal_visibility",
    params(
        crate::api::openapi::PortalPath,
        ("principal" = String, Query, description = "`user:<email>` or `service_token:<id or client id>`"),
        ("groups" = Option<String>, Query, description = "The user's groups, comma-separated"),
        ("time" = Option<String>, Query, description = "RFC 3339; default now"),
        ("ip" = Option<String>, Query, description = "The client's IP; default 0.0.0.0"),
    ),
    responses((status = 200, description = "What the principal sees", body = AuthorizeResult), crate::api::openapi::ReadErrors),
)]
pub async fn visibility(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    query: web::Query<VisibilityQuery>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let portal_id: PortalId = parse_id(&id, "portal")?;
    let query = query.into_inner();
    let context = RequestContext::new(
        query.time.unwrap_or_else(Utc::now),
        query.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    );
    let answer = state.read(|models| -> Result<Value, ApiError> {
        let principal = principal_of(models, &query)?;
        let access = state.app.authz.access(models, &principal, &portal_id, &context).map_err(authz_error)?;
        let version = access.policy_version;
        let seen = access.visibility;
        let servers: Vec<Value> = seen
            .servers
            .iter()
            .map(|s| {
                let items = |list: &[(String, Decision)]| -> Vec<VisibleItem> {
                    list.iter().map(|(name, d)| VisibleItem { name: name.clone(), policies: d.policy_ids.clone() }).collect()
                };
                json!({
                    "id": s.id,
                    "policies": s.decision.policy_ids,
                    "tools": items(&s.tools),
                    "prompts": items(&s.prompts),
                })
            })
            .collect();
        let reason = seen.reason.as_ref().map(|r| match r {
            Hidden::NoPortalAccess { message } => json!({"kind": "no_portal_access", "message": message}),
            Hidden::NoAllowedServers { message, policies_to_check } => json!({
                "kind": "no_allowed_servers", "message": message, "policies_to_check": policies_to_check
            }),
        });
        Ok(json!({
            "portal_id": portal_id,
            "principal": principal,
            "connect": decision_json(&seen.portal),
            "servers": servers,
            "reason": reason,
            "policy_set_version": version,
        }))
    })?;
    Ok(envelope::ok(answer))
}
