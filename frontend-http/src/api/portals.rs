//! `/accounts/{account_id}/access/ai-controls/mcp/portals`: list, create, read, update, delete
//! portals and their server mappings.

use actix_web::{HttpResponse, web};
use portico_app::portals::PortalChanges;
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::portal::{self, CodeMode, PortalInput, PortalServer};
use portico_projections::{EffectiveOverride, PortalView, ReadModels};
use serde::{Deserialize, Serialize};

use super::body::{JsonBody, ListQuery, paginate};
use super::envelope::{ResultInfo, envelope};
use super::error::ApiError;
use super::servers::ServerFields;
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

/// A portal as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PortalObject {
    pub id: String,
    pub name: String,
    /// The host name the portal is served at.
    pub hostname: String,
    pub description: Option<String>,
    #[schema(value_type = crate::api::openapi::CodeMode)]
    pub code_mode: CodeMode,
    /// Whether `code_mode` is anything but `off`.
    pub allow_code_mode: bool,
    pub secure_web_gateway: bool,
    pub created_at: String,
    pub created_by: String,
    pub modified_at: String,
    pub modified_by: String,
    /// The portal's servers; absent in the answer of a delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub servers: Option<Vec<PortalServerObject>>,
}

/// A server of a portal: the server's fields, with `updated_tools` and `updated_prompts` being
/// the overrides in effect in the portal (the portal's merged over the server's).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PortalServerObject {
    #[serde(flatten)]
    pub server: ServerFields,
    pub updated_tools: Vec<EffectiveOverrideObject>,
    pub updated_prompts: Vec<EffectiveOverrideObject>,
    pub server_id: String,
    /// Whether the server starts disabled for the portal's users.
    pub default_disabled: bool,
    /// Whether calls use each user's own upstream credentials.
    pub on_behalf: bool,
}

/// A tool or prompt override in effect in a portal, by upstream name: the portal's alias and
/// description beat the server's; `enabled` is the portal's choice if it made one, else the
/// server's.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EffectiveOverrideObject {
    /// The upstream tool or prompt name.
    pub name: String,
    /// Absent keeps the default of its level.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub portal_alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub portal_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub server_alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub server_description: Option<String>,
}

impl From<&EffectiveOverride> for EffectiveOverrideObject {
    fn from(o: &EffectiveOverride) -> Self {
        EffectiveOverrideObject {
            name: o.name.clone(),
            enabled: o.enabled,
            portal_alias: o.portal_alias.clone(),
            portal_description: o.portal_description.clone(),
            server_alias: o.server_alias.clone(),
            server_description: o.server_description.clone(),
        }
    }
}

envelope!(
    /// The answer carrying one portal.
    PortalResult { result: PortalObject }
);
envelope!(
    /// The answer carrying a page of portals.
    PortalList { result: Vec<PortalObject>, result_info: ResultInfo }
);

impl PortalObject {
    /// The portal `view`; `with_servers: false` for the answer of a delete.
    fn of(models: &ReadModels, view: &PortalView, with_servers: bool) -> Self {
        let servers = with_servers.then(|| {
            view.servers
                .iter()
                .filter_map(|mapping| {
                    let server = models.catalog.get(&mapping.server_id)?;
                    let effective =
                        |list: &[EffectiveOverride]| list.iter().map(Into::into).collect();
                    Some(PortalServerObject {
                        server: ServerFields::from_catalog(server),
                        updated_tools: effective(&mapping.updated_tools),
                        updated_prompts: effective(&mapping.updated_prompts),
                        server_id: mapping.server_id.to_string(),
                        default_disabled: mapping.default_disabled,
                        on_behalf: mapping.on_behalf,
                    })
                })
                .collect()
        });
        PortalObject {
            id: view.portal_id.to_string(),
            name: view.name.clone(),
            hostname: view.hostname.clone(),
            description: view.description.clone(),
            code_mode: view.code_mode,
            allow_code_mode: view.code_mode.allows_code_mode(),
            secure_web_gateway: view.secure_web_gateway,
            created_at: rfc3339(view.created_at),
            created_by: actor_name(&view.created_by),
            modified_at: rfc3339(view.modified_at),
            modified_by: actor_name(&view.modified_by),
            servers,
        }
    }
}

fn not_found(id: &PortalId) -> ApiError {
    ApiError::not_found(format!("portal `{id}` does not exist"))
}

fn read_portal(state: &AppState, id: &PortalId) -> Result<PortalObject, ApiError> {
    state
        .read(|m| m.portal(id).map(|view| PortalObject::of(m, &view, true)))
        .ok_or_else(|| not_found(id))
}

/// Lists portals, a page at a time, optionally filtered by `search`.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals",
    tag = "MCP portals",
    operation_id = "list_mcp_portals",
    params(crate::api::openapi::AccountPath, super::body::ListQuery),
    responses((status = 200, description = "A page of portals", body = PortalList), crate::api::openapi::ListErrors),
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
    let items: Vec<PortalObject> = state.read(|m| {
        m.portals.search(&search).map(|record| PortalObject::of(m, &m.view(record), true)).collect()
    });
    let (items, info) = paginate(items, page, per_page);
    Ok(PortalList::page(items, info))
}

/// Reads a portal.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}",
    tag = "MCP portals",
    operation_id = "get_mcp_portal",
    params(crate::api::openapi::PortalPath),
    responses((status = 200, description = "The portal", body = PortalResult), crate::api::openapi::ReadErrors),
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
    read_portal(&state, &id).map(PortalResult::ok)
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
    responses((status = 200, description = "The created portal", body = PortalResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
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
    read_portal(&state, &id).map(PortalResult::ok)
}

/// Replaces a portal's settings (as Cloudflare's `PUT` does).
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}",
    tag = "MCP portals",
    operation_id = "update_mcp_portal",
    params(crate::api::openapi::PortalPath),
    request_body = PortalBody,
    responses((status = 200, description = "The updated portal", body = PortalResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
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
    read_portal(&state, &id).map(PortalResult::ok)
}

/// Deletes a portal and returns it.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}",
    tag = "MCP portals",
    operation_id = "delete_mcp_portal",
    params(crate::api::openapi::PortalPath),
    responses((status = 200, description = "The deleted portal (without its servers)", body = PortalResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
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
    let before = state.read(|m| m.portal(&id).map(|view| PortalObject::of(m, &view, false)));
    state.app.delete_portal(&id, &caller.actor()).await?;
    before.map(PortalResult::ok).ok_or_else(|| not_found(&id))
}
