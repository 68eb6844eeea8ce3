//! `/accounts/{account_id}/access/ai-controls/mcp/portals`: list, create, read, update, delete
//! portals and their server mappings.

use actix_web::{HttpResponse, web};
use portico_app::portals::PortalChanges;
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::portal::{self, CodeMode, PortalInput, PortalServer};
use portico_projections::{PortalView, ReadModels};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{JsonBody, ListQuery, paginate};
use super::envelope;
use super::error::ApiError;
use super::servers::ServerObject;
use super::{actor_name, parse_id, rfc3339};
use crate::auth::ApiCaller;
use crate::state::AppState;

/// One server of a portal in a request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalServerBody {
    pub server_id: String,
    #[serde(default)]
    pub default_disabled: Option<bool>,
    #[serde(default)]
    pub on_behalf: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::api::openapi::CapabilityOverride>>)]
    pub updated_tools: Option<Vec<CapabilityOverride>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::api::openapi::CapabilityOverride>>)]
    pub updated_prompts: Option<Vec<CapabilityOverride>>,
}

/// `POST` body, and `PUT` body (where every field is optional and `id` may only repeat the
/// path's). PUT replaces: an omitted field takes its default, except `name` and `hostname`,
/// which keep their values.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::api::openapi::CodeMode>)]
    pub code_mode: Option<CodeMode>,
    #[serde(default)]
    pub allow_code_mode: Option<bool>,
    #[serde(default)]
    pub secure_web_gateway: Option<bool>,
    #[serde(default)]
    pub servers: Option<Vec<PortalServerBody>>,
}

impl PortalBody {
    fn servers(&mut self) -> Result<Vec<PortalServer>, ApiError> {
        let servers = self.servers.take().unwrap_or_default();
        if servers.len() > portal::MAX_SERVERS_PER_PORTAL {
            return Err(ApiError::field(
                "servers",
                format!(
                    "invalid `servers`: {} servers; a portal holds at most {}",
                    servers.len(),
                    portal::MAX_SERVERS_PER_PORTAL
                ),
            ));
        }
        servers
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(PortalServer {
                    server_id: parse_id::<ServerId>(
                        &s.server_id,
                        &format!("servers[{i}].server_id"),
                    )?,
                    default_disabled: s.default_disabled.unwrap_or(false),
                    on_behalf: s.on_behalf.unwrap_or(true),
                    updated_tools: s.updated_tools.unwrap_or_default(),
                    updated_prompts: s.updated_prompts.unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// The portal object of the API; `with_servers: false` for the answer of a delete.
fn portal_object(models: &ReadModels, view: &PortalView, with_servers: bool) -> Value {
    let mut object = json!({
        "id": view.portal_id,
        "name": view.name,
        "hostname": view.hostname,
        "description": view.description,
        "code_mode": view.code_mode,
        "allow_code_mode": view.code_mode.allows_code_mode(),
        "secure_web_gateway": view.secure_web_gateway,
        "created_at": rfc3339(view.created_at),
        "created_by": actor_name(&view.created_by),
        "modified_at": rfc3339(view.modified_at),
        "modified_by": actor_name(&view.modified_by),
    });
    if with_servers {
        let servers: Vec<Value> = view
            .servers
            .iter()
            .filter_map(|mapping| {
                let server = models.catalog.get(&mapping.server_id)?;
                let mut value = serde_json::to_value(ServerObject::from_catalog(server)).ok()?;
                if let Value::Object(fields) = &mut value {
                    fields.insert("server_id".into(), json!(mapping.server_id));
                    fields.insert("default_disabled".into(), json!(mapping.default_disabled));
                    fields.insert("on_behalf".into(), json!(mapping.on_behalf));
                    fields.insert("updated_tools".into(), json!(mapping.updated_tools));
                    fields.insert("updated_prompts".into(), json!(mapping.updated_prompts));
                }
                Some(value)
            })
            .collect();
        object["servers"] = Value::Array(servers);
    }
    object
}

fn not_found(id: &PortalId) -> ApiError {
    ApiError::not_found(format!("portal `{id}` does not exist"))
}

fn read_portal(state: &AppState, id: &PortalId) -> Result<Value, ApiError> {
    state
        .read(|m| m.portal(id).map(|view| portal_object(m, &view, true)))
        .ok_or_else(|| not_found(id))
}

/// Lists portals, a page at a time, optionally filtered by `search`.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals",
    tag = "MCP portals",
    operation_id = "list_mcp_portals",
    params(crate::api::openapi::AccountPath, super::body::ListQuery),
    responses((status = 200, description = "A page of portals", body = crate::api::openapi::PortalList), crate::api::openapi::ListErrors),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let (page, per_page, search) = query.resolve()?;
    let items: Vec<Value> = state.read(|m| {
        m.portals.search(&search).map(|record| portal_object(m, &m.view(record), true)).collect()
    });
    let (items, info) = paginate(items, page, per_page);
    Ok(envelope::page(items, info))
}

/// Reads a portal.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}",
    tag = "MCP portals",
    operation_id = "get_mcp_portal",
    params(crate::api::openapi::PortalPath),
    responses((status = 200, description = "The portal", body = crate::api::openapi::PortalResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id: PortalId = parse_id(&id, "portal")?;
    read_portal(&state, &id).map(envelope::ok)
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::field(field, format!("invalid `{field}`: is required")))
}

/// Creates a portal.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals",
    tag = "MCP portals",
    operation_id = "create_mcp_portal",
    params(crate::api::openapi::AccountPath),
    request_body = PortalBody,
    responses((status = 200, description = "The created portal", body = crate::api::openapi::PortalResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(mut body): JsonBody<PortalBody>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let id: PortalId = parse_id(&required(body.id.take(), "id")?, "id")?;
    let servers = body.servers()?;
    let input = PortalInput {
        name: required(body.name, "name")?,
        hostname: required(body.hostname, "hostname")?,
        description: body.description,
        code_mode: body.code_mode,
        allow_code_mode: body.allow_code_mode,
        secure_web_gateway: body.secure_web_gateway.unwrap_or(false),
        servers,
    };
    state.app.create_portal(&id, input, &caller.actor()).await?;
    read_portal(&state, &id).map(envelope::ok)
}

/// Replaces a portal's settings (as Cloudflare's `PUT` does).
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}",
    tag = "MCP portals",
    operation_id = "update_mcp_portal",
    params(crate::api::openapi::PortalPath),
    request_body = PortalBody,
    responses((status = 200, description = "The updated portal", body = crate::api::openapi::PortalResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    JsonBody(mut body): JsonBody<PortalBody>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: PortalId = parse_id(&id, "portal")?;
    if let Some(body_id) = &body.id {
        if body_id != id.as_str() {
            return Err(ApiError::field(
                "id",
                format!(
                    "`id` is `{}` but the path names `{id}`; a portal's id cannot be changed",
                    crate::state::truncate(body_id)
                ),
            ));
        }
    }
    let changes = PortalChanges {
        servers: body.servers()?,
        name: body.name,
        hostname: body.hostname,
        description: body.description,
        code_mode: body.code_mode,
        allow_code_mode: body.allow_code_mode,
        secure_web_gateway: body.secure_web_gateway.unwrap_or(false),
    };
    state.app.update_portal(&id, changes, &caller.actor()).await?;
    read_portal(&state, &id).map(envelope::ok)
}

/// Deletes a portal and returns it.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}",
    tag = "MCP portals",
    operation_id = "delete_mcp_portal",
    params(crate::api::openapi::PortalPath),
    responses((status = 200, description = "The deleted portal (without its servers)", body = crate::api::openapi::PortalResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: PortalId = parse_id(&id, "portal")?;
    let before = state.read(|m| m.portal(&id).map(|view| portal_object(m, &view, false)));
    state.app.delete_portal(&id, &caller.actor()).await?;
    before.map(envelope::ok).ok_or_else(|| not_found(&id))
}
