//! `/accounts/{account_id}/access/service_tokens`: Cloudflare Access service tokens, the
//! credentials of machine clients (`CF-Access-Client-Id` + `CF-Access-Client-Secret`).
//!
//! The client secret is generated here from the OS random source, returned once (in the answer
//! to the create and to each rotate), and stored only as its SHA-256.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use portico_core::domain::service_token::{
    self, CreateServiceToken, DEFAULT_DURATION, DeleteServiceToken, RefreshServiceToken,
    RotateServiceToken, ServiceTokenCommand, ServiceTokenState, TokenLifetime, UpdateServiceToken,
    service_token_stream,
};
use portico_projections::ServiceTokenRecord;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::body::{JsonBody, ListQuery, paginate};
use super::envelope;
use super::error::ApiError;
use super::rfc3339;
use crate::state::AppState;
use crate::token;

/// A service token as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceTokenObject {
    /// The token's id (a UUID).
    pub id: String,
    /// The value of the `CF-Access-Client-Id` header: 32 hex characters and `.access`.
    pub client_id: String,
    pub name: String,
    /// How long the token lives after creation or refresh: `8760h`, `30m`, or `forever`.
    pub duration: String,
    /// When the token stops working; `null` for a `forever` token.
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// When a client last authenticated with the token (filled by the data plane).
    pub last_seen_at: Option<String>,
}

impl ServiceTokenObject {
    pub fn from_record(r: &ServiceTokenRecord) -> Self {
        ServiceTokenObject {
            id: r.token.token_id.clone(),
            client_id: r.token.client_id.clone(),
            name: r.token.name.clone(),
            duration: r.token.duration.clone(),
            expires_at: r.token.expires_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            last_seen_at: None,
        }
    }
}

/// A service token with its client secret: the answer to a create or a rotate, the only
/// times the secret is shown.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceTokenWithSecret {
    #[serde(flatten)]
    pub token: ServiceTokenObject,
    /// The value of the `CF-Access-Client-Secret` header. Shown once: store it now.
    pub client_secret: String,
}

impl std::fmt::Debug for ServiceTokenWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ServiceTokenWithSecret").field("token", &self.token).finish_non_exhaustive()
    }
}

/// `POST` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceTokenBody {
    /// 1 to 255 characters.
    pub name: String,
    /// `forever`, or a duration with the units `h`, `m`, `s` from `1m` to `876600h`
    /// (`8760h`, one year, by default).
    #[serde(default)]
    pub duration: Option<String>,
}

/// `PUT` body: an omitted field keeps its value. A new `duration` starts counting now.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceTokenBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub duration: Option<String>,
}

/// The body a rotate or refresh may carry: none, or an empty object.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// A fresh secret, its hash, and a client id.
struct NewCredentials {
    client_id: String,
    secret: String,
    hash: String,
}

fn random_hex<const N: usize>() -> Result<String, ApiError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(ApiError::internal)?;
    Ok(hex::encode(bytes))
}

/// 256 random bits as 64 lowercase hex characters (the shape of Cloudflare's secrets).
fn new_secret() -> Result<(String, String), ApiError> {
    let secret = random_hex::<32>()?;
    let hash = token::hash(&secret);
    Ok((secret, hash))
}

fn new_credentials() -> Result<NewCredentials, ApiError> {
    let client_id = format!("{}.access", random_hex::<16>()?);
    let (secret, hash) = new_secret()?;
    Ok(NewCredentials { client_id, secret, hash })
}

fn new_token_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(ApiError::internal)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string())
}

/// The token id of a path: a malformed one is a 400 naming it.
fn parse_token_id(id: &str) -> Result<String, ApiError> {
    service_token::check_token_id(id).map_err(|e| match e {
        portico_core::domain::DomainError::InvalidField { message, .. } => {
            ApiError::field("service_token", format!("invalid `service_token`: {message}"))
        }
        other => other.into(),
    })?;
    Ok(id.to_owned())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("service token `{id}` does not exist"))
}

/// The live token `id` as the API shows it.
fn object(state: &AppState, id: &str) -> Result<ServiceTokenObject, ApiError> {
    state
        .read(|m| {
            m.service_tokens.get(id).filter(|r| r.is_live()).map(ServiceTokenObject::from_record)
        })
        .ok_or_else(|| not_found(id))
}

/// Decides `command` against `current` and appends its events as `caller`.
async fn execute(
    state: &AppState,
    caller: &Caller,
    id: &str,
    current: &ServiceTokenState,
    command: ServiceTokenCommand,
) -> Result<(), ApiError> {
    let events = service_token::decide(current, command)?;
    state.write(&service_token_stream(id), current.stream_version, events, caller.actor()).await?;
    Ok(())
}

/// An optional empty JSON object (rotate, refresh): anything else is a 400.
fn no_fields(body: &web::Bytes) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    super::body::parse::<NoFields>(body).map(|_| ())
}

/// Registers the service token routes (on the `/client/v4` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let tokens = "/accounts/{account_id}/access/service_tokens";
    cfg.service(web::resource(tokens).route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource(format!("{tokens}/{{id}}"))
                .route(web::get().to(read))
                .route(web::put().to(update))
                .route(web::delete().to(delete)),
        )
        .route(&format!("{tokens}/{{id}}/rotate"), web::post().to(rotate))
        .route(&format!("{tokens}/{{id}}/refresh"), web::post().to(refresh));
}

/// Lists service tokens, a page at a time, optionally filtered by `search` (id, client id or
/// name).
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/service_tokens",
    tag = "Service tokens",
    operation_id = "list_service_tokens",
    params(crate::api::openapi::AccountPath, super::body::ListQuery),
    responses((status = 200, description = "A page of service tokens", body = crate::api::openapi::ServiceTokenList), crate::api::openapi::ListErrors),
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
    let search = search.to_lowercase();
    let items: Vec<ServiceTokenObject> = state.read(|m| {
        m.service_tokens
            .live()
            .filter(|r| {
                search.is_empty()
                    || r.token.token_id.contains(&search)
                    || r.token.client_id.contains(&search)
                    || r.token.name.to_lowercase().contains(&search)
            })
            .map(ServiceTokenObject::from_record)
            .collect()
    });
    let (items, info) = paginate(items, page, per_page);
    Ok(envelope::page(items, info))
}

/// Reads a service token (never its secret).
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/service_tokens/{id}",
    tag = "Service tokens",
    operation_id = "get_service_token",
    params(crate::api::openapi::ServiceTokenPath),
    responses((status = 200, description = "The service token", body = crate::api::openapi::ServiceTokenResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id = parse_token_id(&id)?;
    object(&state, &id).map(envelope::ok)
}

/// Creates a service token; the answer carries its client secret, shown only this once.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/service_tokens",
    tag = "Service tokens",
    operation_id = "create_service_token",
    params(crate::api::openapi::AccountPath),
    request_body = CreateServiceTokenBody,
    responses((status = 200, description = "The created token and its client secret", body = crate::api::openapi::ServiceTokenSecretResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<CreateServiceTokenBody>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let duration = body.duration.unwrap_or_else(|| DEFAULT_DURATION.to_owned());
    let expires_at = TokenLifetime::parse(&duration)?.expires_at(Utc::now());
    let id = new_token_id()?;
    let credentials = new_credentials()?;
    let current = state.read(|m| m.service_tokens.state(&id));
    let command = CreateServiceToken {
        token_id: id.clone(),
        client_id: credentials.client_id,
        name: body.name,
        secret_hash: credentials.hash,
        duration,
        expires_at,
    };
    execute(&state, &caller, &id, &current, command.into()).await?;
    let token = object(&state, &id)?;
    Ok(envelope::ok(ServiceTokenWithSecret { token, client_secret: credentials.secret }))
}

/// Changes a service token's name or duration (a new duration counts from now).
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/access/service_tokens/{id}",
    tag = "Service tokens",
    operation_id = "update_service_token",
    params(crate::api::openapi::ServiceTokenPath),
    request_body = UpdateServiceTokenBody,
    responses((status = 200, description = "The updated token", body = crate::api::openapi::ServiceTokenResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateServiceTokenBody>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_token_id(&id)?;
    let current = state.read(|m| m.service_tokens.state(&id));
    let Some(token) = current.token.clone() else { return Err(not_found(&id)) };
    let (duration, expires_at) = match body.duration {
        Some(duration) if duration != token.duration => {
            let expires_at = TokenLifetime::parse(&duration)?.expires_at(Utc::now());
            (duration, expires_at)
        }
        _ => (token.duration, token.expires_at),
    };
    let command = UpdateServiceToken {
        token_id: id.clone(),
        name: body.name.unwrap_or(token.name),
        duration,
        expires_at,
    };
    execute(&state, &caller, &id, &current, command.into()).await?;
    object(&state, &id).map(envelope::ok)
}

/// Deletes a service token and returns it; it stops authenticating at once.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/service_tokens/{id}",
    tag = "Service tokens",
    operation_id = "delete_service_token",
    params(crate::api::openapi::ServiceTokenPath),
    responses((status = 200, description = "The deleted token", body = crate::api::openapi::ServiceTokenResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_token_id(&id)?;
    let current = state.read(|m| m.service_tokens.state(&id));
    let before = object(&state, &id)?;
    execute(&state, &caller, &id, &current, DeleteServiceToken { token_id: id.clone() }.into())
        .await?;
    Ok(envelope::ok(before))
}

/// Gives a service token a new client secret, returned once; the old one stops working.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/service_tokens/{id}/rotate",
    tag = "Service tokens",
    operation_id = "rotate_service_token",
    params(crate::api::openapi::ServiceTokenPath),
    request_body(content = Option<NoFields>, description = "Optional: no body or `{}`"),
    responses((status = 200, description = "The token and its new client secret", body = crate::api::openapi::ServiceTokenSecretResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn rotate(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_token_id(&id)?;
    no_fields(&body)?;
    let current = state.read(|m| m.service_tokens.state(&id));
    let (secret, hash) = new_secret()?;
    let command = RotateServiceToken { token_id: id.clone(), secret_hash: hash };
    execute(&state, &caller, &id, &current, command.into()).await?;
    let token = object(&state, &id)?;
    Ok(envelope::ok(ServiceTokenWithSecret { token, client_secret: secret }))
}

/// Extends a service token's life: it now expires one `duration` from now.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/service_tokens/{id}/refresh",
    tag = "Service tokens",
    operation_id = "refresh_service_token",
    params(crate::api::openapi::ServiceTokenPath),
    request_body(content = Option<NoFields>, description = "Optional: no body or `{}`"),
    responses((status = 200, description = "The refreshed token", body = crate::api::openapi::ServiceTokenResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn refresh(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_token_id(&id)?;
    no_fields(&body)?;
    let current = state.read(|m| m.service_tokens.state(&id));
    let Some(token) = &current.token else { return Err(not_found(&id)) };
    let expires_at = refreshed_expiry(&token.duration, Utc::now())?;
    let command = RefreshServiceToken { token_id: id.clone(), expires_at };
    execute(&state, &caller, &id, &current, command.into()).await?;
    object(&state, &id).map(envelope::ok)
}

fn refreshed_expiry(duration: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(TokenLifetime::parse(duration)?.expires_at(now))
}
