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

use super::body::JsonBody;
use super::envelope::envelope;
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

/// A decision and the policies that made it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionObject {
    /// `allow` or `deny`.
    #[schema(value_type = String)]
    pub decision: &'static str,
    pub allowed: bool,
    /// The ids of the policies that decided: the permits that allowed, or the forbids that
    /// denied; none for a default deny.
    pub policies: Vec<String>,
    /// Errors met while evaluating policies (those policies were skipped, as Cedar does).
    pub errors: Vec<String>,
    /// The decision in words.
    pub reason: String,
}

impl From<&Decision> for DecisionObject {
    fn from(decision: &Decision) -> Self {
        let reason = if decision.allowed {
            format!("permitted by {}", list(&decision.policy_ids))
        } else if decision.policy_ids.is_empty() {
            "no policy permits this: default deny".to_owned()
        } else {
            format!("forbidden by {}", list(&decision.policy_ids))
        };
        DecisionObject {
            decision: if decision.allowed { "allow" } else { "deny" },
            allowed: decision.allowed,
            policies: decision.policy_ids.clone(),
            errors: decision.errors.clone(),
            reason,
        }
    }
}

/// The answer to an authorization question.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthorizeObject {
    #[serde(flatten)]
    pub decision: DecisionObject,
    /// The action asked about.
    #[schema(value_type = String)]
    pub action: Action,
    /// The version of the policy set that decided.
    pub policy_set_version: u64,
}

envelope!(
    /// The answer of `POST /cedar/authorize`.
    AuthorizeResult { result: AuthorizeObject }
);

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
    let answer = state.read(|models| -> Result<AuthorizeObject, ApiError> {
        let (version, engine) = state.app.authz.engine(models).map_err(authz_error)?;
        let request = Request {
            principal: body.principal,
            action: body.action,
            resource: resource_of(models, body.resource)?,
            context,
        };
        let decision = engine.decide(&request).map_err(entity_error)?;
        Ok(AuthorizeObject {
            decision: DecisionObject::from(&decision),
            action: request.action,
            policy_set_version: version,
        })
    })?;
    Ok(AuthorizeResult::ok(answer))
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
            claims: Default::default(),
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

/// What a principal would see in a portal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisibilityObject {
    pub portal_id: String,
    /// The principal, as the question described it.
    #[schema(value_type = Object)]
    pub principal: Principal,
    /// The decision on `connect` to the portal.
    pub connect: DecisionObject,
    /// The servers the principal may use, each with its visible tools and prompts.
    pub servers: Vec<VisibleServerObject>,
    /// Why nothing is visible; `null` when something is.
    pub reason: Option<HiddenReason>,
    /// The version of the policy set that decided.
    pub policy_set_version: u64,
}

/// A server the principal may use.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisibleServerObject {
    pub id: String,
    /// The policies that allowed `use_server`.
    pub policies: Vec<String>,
    pub tools: Vec<VisibleItem>,
    pub prompts: Vec<VisibleItem>,
}

/// A tool or prompt the principal may see, by upstream name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisibleItem {
    pub name: String,
    /// The policies that allowed it.
    pub policies: Vec<String>,
}

/// Why a principal sees nothing in a portal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HiddenReason {
    /// No policy permits `connect` on the portal (or a forbid denies it).
    NoPortalAccess { message: String },
    /// The principal may connect but use none of the portal's servers.
    NoAllowedServers {
        message: String,
        /// The enabled policies to check: those whose scope covers `use_server` here.
        policies_to_check: Vec<String>,
    },
}

impl From<&Hidden> for HiddenReason {
    fn from(hidden: &Hidden) -> Self {
        match hidden {
            Hidden::NoPortalAccess { message } => {
                HiddenReason::NoPortalAccess { message: message.clone() }
            }
            Hidden::NoAllowedServers { message, policies_to_check } => {
                HiddenReason::NoAllowedServers {
                    message: message.clone(),
                    policies_to_check: policies_to_check.clone(),
                }
            }
        }
    }
}

envelope!(
    /// The answer of `GET .../portals/{id}/visibility`.
    VisibilityResult { result: VisibilityObject }
);

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
    responses((status = 200, description = "What the principal sees", body = VisibilityResult), crate::api::openapi::ReadErrors),
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
    let answer = state.read(|models| -> Result<VisibilityObject, ApiError> {
        let principal = principal_of(models, &query)?;
        let access = state
            .app
            .authz
            .access(models, &principal, &portal_id, &context)
            .map_err(authz_error)?;
        let seen = access.visibility;
        let items = |list: &[(String, Decision)]| -> Vec<VisibleItem> {
            list.iter()
                .map(|(name, d)| VisibleItem { name: name.clone(), policies: d.policy_ids.clone() })
                .collect()
        };
        let servers = seen
            .servers
            .iter()
            .map(|s| VisibleServerObject {
                id: s.id.clone(),
                policies: s.decision.policy_ids.clone(),
                tools: items(&s.tools),
                prompts: items(&s.prompts),
            })
            .collect();
        Ok(VisibilityObject {
            portal_id: portal_id.to_string(),
            principal,
            connect: DecisionObject::from(&seen.portal),
            servers,
            reason: seen.reason.as_ref().map(HiddenReason::from),
            policy_set_version: access.policy_version,
        })
    })?;
    Ok(VisibilityResult::ok(answer))
}
