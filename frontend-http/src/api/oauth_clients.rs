//! The OAuth clients registered at a portal (`/portals/{id}/oauth_clients`, Portico's own API):
//! list them (registered dynamically or by an admin), pre-register one with any valid redirect
//! URIs, and remove one, which revokes every grant it holds.

use actix_web::{HttpResponse, web};
use portico_core::domain::ids::PortalId;
use portico_core::domain::sign_in::OAuthClientRegistered;
use serde::{Deserialize, Serialize};

use super::body::JsonBody;
use super::envelope::envelope;
use super::error::ApiError;
use super::parse_id;
use crate::auth::ApiCaller;
use crate::state::AppState;

/// The collection, under a portal.
const COLLECTION: &str = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/oauth_clients";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(COLLECTION, web::get().to(list))
        .route(COLLECTION, web::post().to(create))
        .route(&format!("{COLLECTION}/{{client_id}}"), web::delete().to(delete));
}

/// A public OAuth client (PKCE, no secret) of a portal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthClientObject {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    /// `true` when an admin registered it, `false` when it registered itself (RFC 7591).
    pub pre_registered: bool,
}

impl OAuthClientObject {
    fn from_client(c: &OAuthClientRegistered) -> Self {
        OAuthClientObject {
            client_id: c.client_id.clone(),
            client_name: c.client_name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            pre_registered: c.pre_registered,
        }
    }
}

/// The id of a removed client.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RemovedOAuthClient {
    pub client_id: String,
}

envelope!(
    /// The answer carrying one OAuth client.
    OAuthClientResult { result: OAuthClientObject }
);
envelope!(
    /// The answer carrying a portal's OAuth clients.
    OAuthClientList { result: Vec<OAuthClientObject> }
);
envelope!(
    /// The answer to the removal of an OAuth client.
    RemovedOAuthClientResult { result: RemovedOAuthClient }
);

/// `POST` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOAuthClientBody {
    /// Shown on the consent page; 1 to 200 characters.
    pub client_name: String,
    /// 1 to 10 redirect URIs: `https`, `http` on loopback, or a private-use scheme.
    pub redirect_uris: Vec<String>,
}

fn portal_of(state: &AppState, account: &str, id: &str) -> Result<PortalId, ApiError> {
    state.check_account(account)?;
    let portal: PortalId = parse_id(id, "portal")?;
    if state.read(|m| m.portals.get(&portal).is_none()) {
        return Err(ApiError::not_found(format!("portal `{portal}` does not exist")));
    }
    Ok(portal)
}

/// Lists the OAuth clients registered at a portal.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/oauth_clients",
    tag = "MCP portals",
    operation_id = "list_mcp_portal_oauth_clients",
    params(crate::api::openapi::PortalPath),
    responses((status = 200, description = "The portal's clients", body = OAuthClientList), crate::api::openapi::ReadErrors),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    let portal = portal_of(&state, &account, &id)?;
    let clients = state.read(|m| {
        m.sign_ins.clients_of(&portal).map(OAuthClientObject::from_client).collect::<Vec<_>>()
    });
    Ok(OAuthClientList::ok(clients))
}

/// Pre-registers a public client at a portal, with any valid redirect URIs (the portal's rules
/// for dynamic registration do not apply to admins).
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/oauth_clients",
    tag = "MCP portals",
    operation_id = "create_mcp_portal_oauth_client",
    params(crate::api::openapi::PortalPath),
    request_body = CreateOAuthClientBody,
    responses((status = 200, description = "The registered client", body = OAuthClientResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<CreateOAuthClientBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require_edit()?;
    let (account, id) = path.into_inner();
    let portal = portal_of(&state, &account, &id)?;
    if body.client_name.trim().is_empty() {
        return Err(ApiError::field("client_name", "a name of 1 to 200 characters is required"));
    }
    let client = state
        .app
        .pre_register_client(&portal, body.client_name, body.redirect_uris, &caller.actor())
        .await?;
    Ok(OAuthClientResult::ok(OAuthClientObject::from_client(&client)))
}

/// Removes a client of a portal; every grant it holds is revoked.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/oauth_clients/{client_id}",
    tag = "MCP portals",
    operation_id = "delete_mcp_portal_oauth_client",
    params(
        crate::api::openapi::PortalPath,
        ("client_id" = String, Path, description = "The client's id"),
    ),
    responses((status = 200, description = "The removed client's id", body = RemovedOAuthClientResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require_edit()?;
    let (account, id, client_id) = path.into_inner();
    let portal = portal_of(&state, &account, &id)?;
    state.app.remove_client(&portal, &client_id, &caller.actor()).await?;
    Ok(RemovedOAuthClientResult::ok(RemovedOAuthClient { client_id }))
}
