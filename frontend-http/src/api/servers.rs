//! `/accounts/{account_id}/access/ai-controls/mcp/servers`: list, create, read, update, delete
//! MCP servers, with Cloudflare's field names, types and defaults.

use actix_web::{HttpResponse, web};
use portico_app::servers::{Credentials, NewServer, ServerChanges};
use portico_core::domain::ids::ServerId;
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::server::{AuthType, CredentialKind, ServerSettings, SyncError};
use portico_core::vault::SecretString;
use portico_projections::CatalogServer;
use portico_projections::catalog::AdminAuthorization;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::{JsonBody, ListQuery, paginate};
use super::envelope::{ResultInfo, envelope};
use super::error::ApiError;
use super::{actor_name, parse_id, rfc3339};
use crate::auth::ApiCaller;
use crate::state::AppState;

/// The server object of the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerObject {
    #[serde(flatten)]
    pub fields: ServerFields,
    #[schema(value_type = Vec<crate::api::openapi::CapabilityOverride>)]
    pub updated_tools: Vec<CapabilityOverride>,
    #[schema(value_type = Vec<crate::api::openapi::CapabilityOverride>)]
    pub updated_prompts: Vec<CapabilityOverride>,
}

/// The fields of a server: all but its overrides, which a portal shows merged with its own.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerFields {
    pub id: String,
    pub name: String,
    pub hostname: String,
    #[schema(value_type = crate::api::openapi::AuthType)]
    pub auth_type: AuthType,
    pub description: Option<String>,
    pub is_shared_oauth_callback_enabled: bool,
    pub secure_web_gateway: bool,
    /// Synced upstream tools (filled by sync, which the data plane brings).
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub prompts: Vec<Value>,
    pub status: &'static str,
    pub authentication_status: &'static str,
    /// OAuth servers only: how the portal authenticates upstream, never the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_config_summary: Option<AuthConfigSummary>,
    pub error: Option<String>,
    /// Why the last sync failed: `{cause, is_upstream, mcp_code?, retryable, status_code?}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error_details: Option<SyncError>,
    pub last_synced: Option<String>,
    pub last_successful_sync: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub modified_at: String,
    pub modified_by: String,
}

/// The safe summary of an OAuth server's configuration (`auth_config_summary`).
///
/// For `oauth`, `auth_credentials` is only ever the manual configuration, so a server that has
/// one is in `manual` mode and one without uses dynamic client registration (`dcr`). The
/// endpoints and client id of a manual configuration are not summarised yet: they stay in the
/// vault with the rest of `auth_credentials`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuthConfigSummary {
    /// `dcr` or `manual`.
    #[schema(value_type = String)]
    pub auth_mode: &'static str,
    pub has_client_secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_version: Option<u32>,
}

impl AuthConfigSummary {
    fn of(s: &CatalogServer) -> Option<Self> {
        if s.auth_type != AuthType::Oauth {
            return None;
        }
        let manual = s.credentials.contains_key(&CredentialKind::AuthCredentials);
        let client_secret_version = s.credentials.get(&CredentialKind::ClientSecret).copied();
        Some(AuthConfigSummary {
            auth_mode: if manual { "manual" } else { "dcr" },
            has_client_secret: client_secret_version.is_some(),
            client_secret_version,
        })
    }

    fn is_manual(&self) -> bool {
        self.auth_mode == "manual"
    }
}

impl ServerObject {
    pub fn from_catalog(s: &CatalogServer) -> Self {
        ServerObject {
            fields: ServerFields::from_catalog(s),
            updated_tools: s.settings.updated_tools.clone(),
            updated_prompts: s.settings.updated_prompts.clone(),
        }
    }
}

impl ServerFields {
    pub fn from_catalog(s: &CatalogServer) -> Self {
        let auth_config_summary = AuthConfigSummary::of(s);
        ServerFields {
            id: s.server_id.to_string(),
            name: s.settings.name.clone(),
            hostname: s.hostname.clone(),
            auth_type: s.auth_type,
            description: s.settings.description.clone(),
            is_shared_oauth_callback_enabled: s.settings.is_shared_oauth_callback_enabled,
            secure_web_gateway: s.settings.secure_web_gateway,
            tools: s.sync.tools.to_vec(),
            prompts: s.sync.prompts.to_vec(),
            status: s.sync.status.as_str(),
            // Manual OAuth has no admin flow: each user's own OAuth captures the capabilities.
            authentication_status: match (&auth_config_summary, s.auth_type) {
                (Some(summary), _) if summary.is_manual() => "manual",
                (_, AuthType::Oauth) => match s.admin_authorization {
                    AdminAuthorization::Required => "required",
                    AdminAuthorization::Connected { .. } => "connected",
                    AdminAuthorization::Stale { .. } => "stale",
                },
                (_, AuthType::Bearer | AuthType::Unauthenticated) => "not_required",
            },
            auth_config_summary,
            error: s.sync.error.as_ref().map(|e| e.cause.clone()),
            error_details: s.sync.error.clone(),
            last_synced: s.sync.last_synced.map(rfc3339),
            last_successful_sync: s.sync.last_successful_sync.map(rfc3339),
            created_at: rfc3339(s.created_at),
            created_by: actor_name(&s.created_by),
            modified_at: rfc3339(s.modified_at),
            modified_by: actor_name(&s.modified_by),
        }
    }
}

envelope!(
    /// The answer carrying one MCP server.
    ServerResult { result: ServerObject }
);
envelope!(
    /// The answer carrying a page of MCP servers.
    ServerList { result: Vec<ServerObject>, result_info: ResultInfo }
);

/// `POST` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServer {
    pub id: String,
    pub name: String,
    pub hostname: String,
    #[schema(value_type = crate::api::openapi::AuthType)]
    pub auth_type: AuthType,
    #[serde(default)]
    #[schema(write_only)]
    pub auth_credentials: Option<String>,
    #[serde(default)]
    #[schema(write_only)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_shared_oauth_callback_enabled: Option<bool>,
    #[serde(default)]
    pub secure_web_gateway: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::api::openapi::CapabilityOverride>>)]
    pub updated_tools: Option<Vec<CapabilityOverride>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::api::openapi::CapabilityOverride>>)]
    pub updated_prompts: Option<Vec<CapabilityOverride>>,
}

/// `PUT` body: replaces every mutable field (an omitted field takes its default, except `name`,
/// which keeps its value). `id`, `hostname` and `auth_type` are fixed at creation: they may be
/// sent back unchanged, and any other value is rejected.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServerBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::api::openapi::AuthType>)]
    pub auth_type: Option<AuthType>,
    #[serde(default)]
    #[schema(write_only)]
    pub auth_credentials: Option<String>,
    #[serde(default)]
    #[schema(write_only)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_shared_oauth_callback_enabled: Option<bool>,
    #[serde(default)]
    pub secure_web_gateway: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::api::openapi::CapabilityOverride>>)]
    pub updated_tools: Option<Vec<CapabilityOverride>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::api::openapi::CapabilityOverride>>)]
    pub updated_prompts: Option<Vec<CapabilityOverride>>,
}

/// Lists MCP servers, a page at a time, optionally filtered by `search`.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers",
    tag = "MCP servers",
    operation_id = "list_mcp_servers",
    params(crate::api::openapi::AccountPath, super::body::ListQuery),
    responses((status = 200, description = "A page of servers", body = ServerList), crate::api::openapi::ListErrors),
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
    let items: Vec<ServerObject> =
        state.read(|m| m.catalog.search(&search).map(ServerObject::from_catalog).collect());
    let (items, info) = paginate(items, page, per_page);
    Ok(ServerList::page(items, info))
}

/// Reads an MCP server.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}",
    tag = "MCP servers",
    operation_id = "get_mcp_server",
    params(crate::api::openapi::ServerPath),
    responses((status = 200, description = "The server", body = ServerResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id: ServerId = parse_id(&id, "server")?;
    answer(&state, &id)
}

fn not_found(id: &ServerId) -> ApiError {
    ApiError::not_found(format!("server `{id}` does not exist"))
}

/// Creates an MCP server.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers",
    tag = "MCP servers",
    operation_id = "create_mcp_server",
    params(crate::api::openapi::AccountPath),
    request_body = CreateServer,
    responses((status = 200, description = "The created server", body = ServerResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<CreateServer>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&body.id, "id")?;
    let server = NewServer {
        id: id.clone(),
        hostname: body.hostname,
        auth_type: body.auth_type,
        settings: ServerSettings {
            name: body.name,
            description: body.description,
            is_shared_oauth_callback_enabled: body
                .is_shared_oauth_callback_enabled
                .unwrap_or(false),
            secure_web_gateway: body.secure_web_gateway.unwrap_or(false),
            updated_tools: body.updated_tools.unwrap_or_default(),
            updated_prompts: body.updated_prompts.unwrap_or_default(),
        },
        credentials: credentials(body.auth_credentials, body.client_secret),
    };
    state.app.create_server(server, &caller.actor()).await?;
    answer(&state, &id)
}

/// The write-only secrets of a body.
fn credentials(auth_credentials: Option<String>, client_secret: Option<String>) -> Credentials {
    Credentials {
        auth_credentials: auth_credentials.map(SecretString::from),
        client_secret: client_secret.map(SecretString::from),
    }
}

/// The server as it is now.
fn answer(state: &AppState, id: &ServerId) -> Result<HttpResponse, ApiError> {
    let found = state.read(|m| m.catalog.get(id).map(ServerObject::from_catalog));
    found.map(ServerResult::ok).ok_or_else(|| not_found(id))
}

/// Replaces an MCP server's settings (as Cloudflare's `PUT` does).
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}",
    tag = "MCP servers",
    operation_id = "update_mcp_server",
    params(crate::api::openapi::ServerPath),
    request_body = UpdateServerBody,
    responses((status = 200, description = "The updated server", body = ServerResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateServerBody>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&id, "server")?;
    if let Some(body_id) = &body.id {
        if body_id != id.as_str() {
            return Err(ApiError::field(
                "id",
                format!(
                    "`id` is `{}` but the path names `{id}`; a server's id cannot be changed",
                    crate::state::truncate(body_id)
                ),
            ));
        }
    }
    let changes = ServerChanges {
        hostname: body.hostname,
        auth_type: body.auth_type,
        name: body.name,
        description: body.description,
        is_shared_oauth_callback_enabled: body.is_shared_oauth_callback_enabled,
        secure_web_gateway: body.secure_web_gateway,
        updated_tools: body.updated_tools,
        updated_prompts: body.updated_prompts,
        credentials: credentials(body.auth_credentials, body.client_secret),
    };
    state.app.update_server(&id, changes, &caller.actor()).await?;
    answer(&state, &id)
}

/// Deletes an MCP server and returns it.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}",
    tag = "MCP servers",
    operation_id = "delete_mcp_server",
    params(crate::api::openapi::ServerPath),
    responses((status = 200, description = "The deleted server", body = ServerResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&id, "server")?;
    let before = state.read(|m| m.catalog.get(&id).map(ServerObject::from_catalog));
    state.app.delete_server(&id, &caller.actor()).await?;
    before.map(ServerResult::ok).ok_or_else(|| not_found(&id))
}

/// The outcome of `POST .../servers/{id}/sync`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    pub id: String,
    /// `ready` or `error`.
    pub status: &'static str,
    pub tool_count: usize,
    pub prompt_count: usize,
    #[schema(value_type = Option<Object>)]
    pub error_details: Option<SyncError>,
    pub last_synced: Option<String>,
    pub last_successful_sync: Option<String>,
}

envelope!(
    /// What `POST .../servers/{id}/sync` answers.
    SyncResult { result: SyncReport }
);

/// Syncs a server's tools and prompts from its upstream now and reports the outcome.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}/sync",
    tag = "MCP servers",
    operation_id = "sync_mcp_server",
    params(crate::api::openapi::ServerPath),
    responses((status = 200, description = "The sync's outcome (a failed sync is reported, not an HTTP error)", body = SyncResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn sync(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&id, "server")?;
    let report = state.app.sync_server(&id).await?;
    let (last_synced, last_successful_sync) = state.read(|m| {
        m.catalog
            .get(&id)
            .map(|s| (s.sync.last_synced.map(rfc3339), s.sync.last_successful_sync.map(rfc3339)))
            .unwrap_or_default()
    });
    Ok(SyncResult::ok(SyncReport {
        id: id.to_string(),
        status: report.status.as_str(),
        tool_count: report.tools,
        prompt_count: report.prompts,
        error_details: report.error,
        last_synced,
        last_successful_sync,
    }))
}

/// The outcome of `POST .../servers/{id}/authorize`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthorizeStart {
    pub id: String,
    /// Where the admin signs in at the upstream's authorization server and consents. It works
    /// once, for 15 minutes; the authorization server sends the admin back to Portico's
    /// `/servers-callback`, which stores the credential and syncs the server.
    pub url: String,
}

envelope!(
    /// What `POST .../servers/{id}/authorize` answers.
    AuthorizeResult { result: AuthorizeStart }
);

/// Starts an admin's OAuth authorization of a server's own credential (used wherever a portal
/// maps the server with `on_behalf: false`, and by sync): discovery, client registration
/// where needed, and the authorization request. Open the returned URL in a browser.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}/authorize",
    tag = "MCP servers",
    operation_id = "authorize_mcp_server",
    params(crate::api::openapi::ServerPath),
    responses((status = 200, description = "The URL to open", body = AuthorizeResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn authorize(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&id, "server")?;
    let callback = format!(
        "{}{}",
        crate::pages::public_origin(&req),
        portico_gateway::upstream_grants::CALLBACK_PATH
    );
    let url = state.app.authorize_server(&id, caller.actor(), &callback).await?;
    Ok(AuthorizeResult::ok(AuthorizeStart { id: id.to_string(), url }))
}
