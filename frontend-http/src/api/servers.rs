//! `/accounts/{account_id}/access/ai-controls/mcp/servers`: list, create, read, update, delete
//! MCP servers, with Cloudflare's field names, types and defaults.

use actix_web::{HttpResponse, web};
use portico_core::domain::ids::ServerId;
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::server::{
    self, AddServer, AuthType, CredentialKind, RemoveServer, ServerCommand, ServerSettings,
    ServerState, SyncError, UpdateServer, server_stream,
};
use portico_core::vault::{SecretRef, SecretString, server_owner};
use portico_gateway::ssrf::SsrfError;
use portico_projections::CatalogServer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::Caller;
use super::body::{JsonBody, ListQuery, paginate};
use super::envelope;
use super::error::ApiError;
use super::{actor_name, parse_id, rfc3339};
use crate::state::AppState;

/// The server object of the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerObject {
    pub id: String,
    pub name: String,
    pub hostname: String,
    #[schema(value_type = crate::api::openapi::AuthType)]
    pub auth_type: AuthType,
    pub description: Option<String>,
    pub is_shared_oauth_callback_enabled: bool,
    pub secure_web_gateway: bool,
    #[schema(value_type = Vec<crate::api::openapi::CapabilityOverride>)]
    pub updated_tools: Vec<CapabilityOverride>,
    #[schema(value_type = Vec<crate::api::openapi::CapabilityOverride>)]
    pub updated_prompts: Vec<CapabilityOverride>,
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
        let auth_config_summary = AuthConfigSummary::of(s);
        ServerObject {
            id: s.server_id.to_string(),
            name: s.settings.name.clone(),
            hostname: s.hostname.clone(),
            auth_type: s.auth_type,
            description: s.settings.description.clone(),
            is_shared_oauth_callback_enabled: s.settings.is_shared_oauth_callback_enabled,
            secure_web_gateway: s.settings.secure_web_gateway,
            updated_tools: s.settings.updated_tools.clone(),
            updated_prompts: s.settings.updated_prompts.clone(),
            tools: s.sync.tools.to_vec(),
            prompts: s.sync.prompts.to_vec(),
            status: s.sync.status.as_str(),
            // Manual OAuth has no admin flow: each user's own OAuth captures the capabilities.
            authentication_status: match (&auth_config_summary, s.auth_type) {
                (Some(summary), _) if summary.is_manual() => "manual",
                (_, AuthType::Oauth) => "required",
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
    responses((status = 200, description = "A page of servers", body = crate::api::openapi::ServerList), crate::api::openapi::ListErrors),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let (page, per_page, search) = query.resolve()?;
    let items: Vec<ServerObject> =
        state.read(|m| m.catalog.search(&search).map(ServerObject::from_catalog).collect());
    let (items, info) = paginate(items, page, per_page);
    Ok(envelope::page(items, info))
}

/// Reads an MCP server.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}",
    tag = "MCP servers",
    operation_id = "get_mcp_server",
    params(crate::api::openapi::ServerPath),
    responses((status = 200, description = "The server", body = crate::api::openapi::ServerResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id: ServerId = parse_id(&id, "server")?;
    let found = state.read(|m| m.catalog.get(&id).map(ServerObject::from_catalog));
    found.map(envelope::ok).ok_or_else(|| not_found(&id))
}

fn not_found(id: &ServerId) -> ApiError {
    ApiError::not_found(format!("server `{id}` does not exist"))
}

/// The credentials of a request, stored in the vault before the events that mention them are
/// appended; removed again if the write does not happen.
struct StagedCredentials<'a> {
    state: &'a AppState,
    stored: Vec<SecretRef>,
}

impl<'a> StagedCredentials<'a> {
    fn new(state: &'a AppState) -> Self {
        StagedCredentials { state, stored: Vec::new() }
    }

    async fn stage(
        &mut self,
        id: &ServerId,
        kind: CredentialKind,
        version: u32,
        value: Option<String>,
    ) -> Result<(), ApiError> {
        let Some(value) = value else { return Ok(()) };
        let secret = SecretString::from(value);
        let stored = self
            .state
            .vault
            .put_at(&server_owner(id), portico_core::vault::credential_kind(kind), version, &secret)
            .await
            .map_err(|e| match e {
                portico_core::vault::VaultError::VersionTaken { .. } => ApiError::new(
                    super::error::Code::Conflict,
                    "the server's credentials were changed by another request at the same time; retry",
                ),
                portico_core::vault::VaultError::TooLarge { max, .. } => {
                    ApiError::field(kind.field(), format!("`{}` is longer than {max} bytes", kind.field()))
                }
                other => ApiError::unavailable(other),
            })?;
        self.stored.push(stored);
        Ok(())
    }

    /// The write failed: nothing may refer to the staged secrets, so they go.
    async fn discard(self) {
        for secret in self.stored {
            if let Err(error) = self.state.vault.delete(&secret).await {
                tracing::warn!(owner = %secret.owner, kind = %secret.kind, %error, "could not remove an unused secret");
            }
        }
    }
}

/// The secrets a request sent, each stored under the version its command names.
struct SentCredentials {
    auth_credentials: Option<String>,
    client_secret: Option<String>,
}

impl SentCredentials {
    /// The vault version each sent secret gets: the next one of its kind.
    fn versions(&self, current: &ServerState) -> (Option<u32>, Option<u32>) {
        let next = |sent: &Option<String>, kind| {
            sent.as_ref().map(|_| current.next_credential_version(kind))
        };
        (
            next(&self.auth_credentials, CredentialKind::AuthCredentials),
            next(&self.client_secret, CredentialKind::ClientSecret),
        )
    }
}

/// Decides `command` (whose credential versions come from [`SentCredentials::versions`]),
/// stores the sent secrets under those versions, and appends the events; if anything fails
/// after the rules passed, the stored secrets are removed again.
async fn write_with_credentials(
    state: &AppState,
    caller: &Caller,
    id: &ServerId,
    current: &ServerState,
    command: ServerCommand,
    sent: SentCredentials,
) -> Result<(), ApiError> {
    // The rules are checked before anything reaches the vault.
    let events = server::decide(current, command)?;
    let next = |kind| current.next_credential_version(kind);
    let mut staged = StagedCredentials::new(state);
    let result = async {
        staged
            .stage(
                id,
                CredentialKind::AuthCredentials,
                next(CredentialKind::AuthCredentials),
                sent.auth_credentials,
            )
            .await?;
        staged
            .stage(
                id,
                CredentialKind::ClientSecret,
                next(CredentialKind::ClientSecret),
                sent.client_secret,
            )
            .await?;
        state.write(&server_stream(id), current.stream_version, events, caller.actor()).await
    }
    .await;
    if let Err(e) = result {
        staged.discard().await;
        return Err(e);
    }
    Ok(())
}

/// Creates an MCP server.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers",
    tag = "MCP servers",
    operation_id = "create_mcp_server",
    params(crate::api::openapi::AccountPath),
    request_body = CreateServer,
    responses((status = 200, description = "The created server", body = crate::api::openapi::ServerResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<CreateServer>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&body.id, "id")?;
    let current = state.read(|m| m.aggregates.server(&id));
    if current.exists() {
        return Err(portico_core::domain::DomainError::AlreadyExists {
            kind: "server",
            id: id.to_string(),
        }
        .into());
    }
    let settings = ServerSettings {
        name: body.name,
        description: body.description,
        is_shared_oauth_callback_enabled: body.is_shared_oauth_callback_enabled.unwrap_or(false),
        secure_web_gateway: body.secure_web_gateway.unwrap_or(false),
        updated_tools: body.updated_tools.unwrap_or_default(),
        updated_prompts: body.updated_prompts.unwrap_or_default(),
    };
    let sent = SentCredentials {
        auth_credentials: body.auth_credentials,
        client_secret: body.client_secret,
    };
    check_upstream(&state, &body.hostname).await?;
    let (auth_credentials, client_secret) = sent.versions(&current);
    let command = AddServer {
        server_id: id.clone(),
        hostname: body.hostname,
        auth_type: body.auth_type,
        settings,
        auth_credentials,
        client_secret,
    };
    write_with_credentials(&state, &caller, &id, &current, command.into(), sent).await?;
    // Synced in the background; `status` is `waiting` until it has run.
    state.gateway.syncer.request(id.clone());
    let created = state.read(|m| m.catalog.get(&id).map(ServerObject::from_catalog));
    created.map(envelope::ok).ok_or_else(|| not_found(&id))
}

/// Replaces an MCP server's settings (as Cloudflare's `PUT` does).
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}",
    tag = "MCP servers",
    operation_id = "update_mcp_server",
    params(crate::api::openapi::ServerPath),
    request_body = UpdateServerBody,
    responses((status = 200, description = "The updated server", body = crate::api::openapi::ServerResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
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
    let current = state.read(|m| m.aggregates.server(&id));
    let Some(existing) = current.server.clone() else { return Err(not_found(&id)) };
    let settings = ServerSettings {
        name: body.name.unwrap_or(existing.settings.name),
        description: body.description,
        is_shared_oauth_callback_enabled: body.is_shared_oauth_callback_enabled.unwrap_or(false),
        secure_web_gateway: body.secure_web_gateway.unwrap_or(false),
        updated_tools: body.updated_tools.unwrap_or_default(),
        updated_prompts: body.updated_prompts.unwrap_or_default(),
    };
    let sent = SentCredentials {
        auth_credentials: body.auth_credentials,
        client_secret: body.client_secret,
    };
    let (auth_credentials, client_secret) = sent.versions(&current);
    let command = UpdateServer {
        server_id: id.clone(),
        hostname: body.hostname,
        auth_type: body.auth_type,
        settings,
        auth_credentials,
        client_secret,
    };
    write_with_credentials(&state, &caller, &id, &current, command.into(), sent).await?;
    state.gateway.syncer.request(id.clone());
    let updated = state.read(|m| m.catalog.get(&id).map(ServerObject::from_catalog));
    updated.map(envelope::ok).ok_or_else(|| not_found(&id))
}

/// Deletes an MCP server and returns it.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/ai-controls/mcp/servers/{id}",
    tag = "MCP servers",
    operation_id = "delete_mcp_server",
    params(crate::api::openapi::ServerPath),
    responses((status = 200, description = "The deleted server", body = crate::api::openapi::ServerResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&id, "server")?;
    let (current, before) = state
        .read(|m| (m.aggregates.server(&id), m.catalog.get(&id).map(ServerObject::from_catalog)));
    let events = server::decide(&current, RemoveServer { server_id: id.clone() }.into())?;
    state.write(&server_stream(&id), current.stream_version, events, caller.actor()).await?;
    // The server is gone from the log; its secrets follow (a failure here leaves only
    // unreachable ciphertext, which the next delete or re-creation of the id clears).
    if let Err(error) = state.vault.delete_owner(&server_owner(&id)).await {
        tracing::warn!(server_id = %id, %error, "could not remove a deleted server's secrets");
    }
    before.map(envelope::ok).ok_or_else(|| not_found(&id))
}

/// Refuses an upstream URL that resolves to an address this deployment may not reach.
async fn check_upstream(state: &AppState, hostname: &str) -> Result<(), ApiError> {
    // A malformed URL is the domain's to reject, with its own message.
    let Ok(url) = url::Url::parse(hostname) else { return Ok(()) };
    match state.gateway.upstreams.config().policy.check_url(&url).await {
        Ok(()) => Ok(()),
        // A name that does not resolve yet may be registered (DNS may come later); the check
        // runs again on the resolved address at every connect.
        Err(SsrfError::Resolve { .. } | SsrfError::NoAddress { .. }) => Ok(()),
        Err(refused) => Err(ApiError::field("hostname", refused.to_string())),
    }
}

/// What `POST .../servers/{id}/sync` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncResult {
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
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: ServerId = parse_id(&id, "server")?;
    let report = state.gateway.syncer.sync(&id).await.map_err(|e| match e {
        portico_gateway::sync::SyncFailure::NoServer(_) => not_found(&id),
        other => ApiError::unavailable(other),
    })?;
    let (last_synced, last_successful_sync) = state.read(|m| {
        m.catalog
            .get(&id)
            .map(|s| (s.sync.last_synced.map(rfc3339), s.sync.last_successful_sync.map(rfc3339)))
            .unwrap_or_default()
    });
    Ok(envelope::ok(SyncResult {
        id: id.to_string(),
        status: report.status.as_str(),
        tool_count: report.tools,
        prompt_count: report.prompts,
        error_details: report.error,
        last_synced,
        last_successful_sync,
    }))
}
