//! `/accounts/{account_id}/access/identity_providers`: the ways people sign in, in the shape of
//! Cloudflare Access's identity providers (the official SDKs' `zero_trust.identity_providers`
//! work against it).
//!
//! Types `onetimepin` (config `{}`, one per account) and `oidc`. An OIDC provider's
//! `config.client_secret` is write-only: it is stored in the vault by the application layer and
//! answered as [`MASKED_SECRET`]; sent back masked in an update, it keeps the stored secret.
//! `config.groups_claim_name` is Portico's addition: the ID token claim whose values become the
//! user's groups (`groups` by default).

use actix_web::{HttpResponse, web};
use portico_core::domain::identity_provider::{
    ConfigInput, IdentityProviderConfig, IdentityProviderId, IdentityProviderInput,
    IdentityProviderType, MASKED_SECRET, OidcInput,
};
use portico_core::vault::SecretString;
use portico_projections::IdentityProviderRecord;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::{DEFAULT_PER_PAGE, JsonBody, MAX_PER_PAGE, paginate};
use super::envelope::{ResultInfo, envelope};
use super::error::{ApiError, Code};
use crate::auth::ApiCaller;
use crate::state::AppState;

/// A write-only secret in a request body; its `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct WriteOnly(String);

impl std::fmt::Debug for WriteOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteOnly(..)")
    }
}

/// `POST` and `PUT` body (a `PUT` replaces the provider's settings; the type cannot change).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderBody {
    /// Shown to people on the login page: 1 to 350 characters.
    pub name: String,
    /// `onetimepin` or `oidc`.
    #[serde(rename = "type")]
    #[schema(value_type = IdentityProviderTypeSchema)]
    pub provider_type: String,
    /// The type's configuration: `{}` for `onetimepin`.
    #[serde(default)]
    #[schema(value_type = Option<ConfigBody>)]
    pub config: Option<Value>,
    /// SCIM provisioning is not supported: only the values that ask for none are accepted.
    #[serde(default)]
    pub scim_config: Option<ScimConfigBody>,
}

/// The supported types.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = IdentityProviderType)]
#[allow(dead_code)]
pub enum IdentityProviderTypeSchema {
    #[serde(rename = "onetimepin")]
    OneTimePin,
    #[serde(rename = "oidc")]
    Oidc,
}

/// The `config` of a provider in a request: `{}` for `onetimepin`, or an OIDC configuration.
#[derive(Debug, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ConfigBody {
    Oidc(Box<OidcConfigBody>),
    OneTimePin(OneTimePinConfigBody),
}

/// An OpenID Connect provider's configuration in a request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcConfigBody {
    /// The OAuth client id Portico has at the provider.
    pub client_id: String,
    /// The OAuth client secret: required on create; omitted (or sent back as `**********`) in
    /// an update, the stored one is kept. Never answered.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only)]
    pub client_secret: Option<WriteOnly>,
    /// The provider's `authorization_endpoint` (`https`, or `http` on the loopback host).
    pub auth_url: String,
    /// The provider's `token_endpoint`.
    pub token_url: String,
    /// The provider's `jwks_uri`.
    pub certs_url: String,
    /// OAuth scopes; must include `openid`. Default `["openid", "email", "profile"]`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Extra ID token claims to keep.
    #[serde(default)]
    pub claims: Option<Vec<String>>,
    /// The claim holding the email address; `email` by default.
    #[serde(default)]
    pub email_claim_name: Option<String>,
    /// Use PKCE with the provider; `false` by default.
    #[serde(default)]
    pub pkce_enabled: Option<bool>,
    /// Portico's addition: the claim whose values become the user's groups; `groups` by
    /// default.
    #[serde(default)]
    pub groups_claim_name: Option<String>,
}

/// A one-time PIN provider's configuration: empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OneTimePinConfigBody {}

/// `scim_config` in a request: Portico does not provision users over SCIM, so `enabled`,
/// `user_deprovision` and `seat_deprovision` may only be `false`, and
/// `identity_update_behavior` only `no_action`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimConfigBody {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub user_deprovision: Option<bool>,
    #[serde(default)]
    pub seat_deprovision: Option<bool>,
    #[serde(default)]
    pub identity_update_behavior: Option<String>,
}

/// A provider as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityProviderObject {
    /// A UUID.
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    #[schema(value_type = IdentityProviderTypeSchema)]
    pub provider_type: &'static str,
    pub config: ConfigObject,
    pub scim_config: ScimConfigObject,
}

/// A provider's `config` as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ConfigObject {
    Oidc(Box<OidcConfigObject>),
    OneTimePin(OneTimePinConfigObject),
}

/// An OIDC configuration as the API shows it: the client secret masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OidcConfigObject {
    pub client_id: String,
    /// Always `**********`.
    pub client_secret: &'static str,
    pub auth_url: String,
    pub token_url: String,
    pub certs_url: String,
    pub scopes: Vec<String>,
    pub claims: Vec<String>,
    pub email_claim_name: String,
    pub pkce_enabled: bool,
    pub groups_claim_name: String,
}

/// A one-time PIN configuration as the API shows it: empty.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OneTimePinConfigObject {}

/// `scim_config` as the API shows it: SCIM is off.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScimConfigObject {
    pub enabled: bool,
    pub user_deprovision: bool,
    pub seat_deprovision: bool,
    pub identity_update_behavior: &'static str,
}

/// The answer to a delete: the id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeletedIdentityProvider {
    pub id: String,
}

impl IdentityProviderObject {
    pub fn from_record(record: &IdentityProviderRecord) -> Self {
        let config = match &record.config {
            IdentityProviderConfig::OneTimePin => {
                ConfigObject::OneTimePin(OneTimePinConfigObject {})
            }
            IdentityProviderConfig::Oidc(oidc) => ConfigObject::Oidc(Box::new(OidcConfigObject {
                client_id: oidc.client_id.clone(),
                client_secret: MASKED_SECRET,
                auth_url: oidc.auth_url.clone(),
                token_url: oidc.token_url.clone(),
                certs_url: oidc.certs_url.clone(),
                scopes: oidc.scopes.clone(),
                claims: oidc.claims.clone(),
                email_claim_name: oidc.email_claim_name.clone(),
                pkce_enabled: oidc.pkce_enabled,
                groups_claim_name: oidc.groups_claim_name.clone(),
            })),
        };
        IdentityProviderObject {
            id: record.id.to_string(),
            name: record.name.clone(),
            provider_type: record.provider_type().as_str(),
            config,
            scim_config: ScimConfigObject {
                enabled: false,
                user_deprovision: false,
                seat_deprovision: false,
                identity_update_behavior: "no_action",
            },
        }
    }
}

/// The list's query: paging, and Cloudflare's `scim_enabled` filter.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdentityProviderListQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page: 1 to 1000, 20 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<u32>,
    /// `true`: only providers with SCIM enabled (none: Portico has no SCIM); `false`: all.
    pub scim_enabled: Option<String>,
}

impl IdentityProviderListQuery {
    fn resolve(&self) -> Result<(u32, u32, bool), ApiError> {
        let page = self.page.unwrap_or(1);
        if page == 0 {
            return Err(ApiError::new(Code::InvalidQuery, "`page` starts at 1"));
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::new(
                Code::InvalidQuery,
                format!("`per_page` must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        let scim_only = match self.scim_enabled.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::new(
                    Code::InvalidQuery,
                    format!(
                        "`scim_enabled` must be `true` or `false`, not `{}`",
                        crate::state::truncate(other)
                    ),
                ));
            }
        };
        Ok((page, per_page, scim_only))
    }
}

envelope!(
    /// The answer carrying one identity provider.
    IdentityProviderResult { result: IdentityProviderObject }
);
envelope!(
    /// The answer carrying a page of identity providers.
    IdentityProviderList { result: Vec<IdentityProviderObject>, result_info: ResultInfo }
);
envelope!(
    /// The answer to the delete of an identity provider: its id.
    DeletedIdentityProviderResult { result: DeletedIdentityProvider }
);

/// Registers the identity provider routes (on the `/client/v4` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let providers = "/accounts/{account_id}/access/identity_providers";
    cfg.service(web::resource(providers).route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource(format!("{providers}/{{id}}"))
                .route(web::get().to(read))
                .route(web::put().to(update))
                .route(web::delete().to(delete)),
        );
}

/// The provider id of a path: a malformed one is a 400 naming it.
fn parse_provider_id(id: &str) -> Result<IdentityProviderId, ApiError> {
    IdentityProviderId::parse("identity_provider_id", id).map_err(ApiError::from)
}

fn not_found(id: &IdentityProviderId) -> ApiError {
    ApiError::not_found(format!("identity provider `{id}` does not exist"))
}

fn object(state: &AppState, id: &IdentityProviderId) -> Result<IdentityProviderObject, ApiError> {
    state
        .read(|m| m.identity_providers.get(id).map(IdentityProviderObject::from_record))
        .ok_or_else(|| not_found(id))
}

/// Parses `value` (the body's `config`) as `T`, naming the offending field with its path
/// under `config`.
fn parse_config<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::field("config", "invalid `config`: expected an object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner_path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let path =
            if inner_path == "." { "config".to_owned() } else { format!("config.{inner_path}") };
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_owned());
        match missing {
            Some(field) => {
                let path = format!("{path}.{field}");
                ApiError::field(&path, format!("invalid `{path}`: is required"))
            }
            None => ApiError::field(&path, format!("invalid `{path}`: {message}")),
        }
    })
}

/// Turns a body into the application layer's input and the client secret it carries.
fn input(
    body: IdentityProviderBody,
) -> Result<(IdentityProviderInput, Option<SecretString>), ApiError> {
    let provider_type = IdentityProviderType::parse(&body.provider_type)?;
    check_scim(body.scim_config.as_ref())?;
    let (config, secret) = match provider_type {
        IdentityProviderType::OneTimePin => {
            if let Some(config) = body.config {
                parse_config::<OneTimePinConfigBody>(config)?;
            }
            (ConfigInput::OneTimePin, None)
        }
        IdentityProviderType::Oidc => {
            let Some(config) = body.config else {
                return Err(ApiError::field(
                    "config",
                    "invalid `config`: is required for an `oidc` provider",
                ));
            };
            let oidc: OidcConfigBody = parse_config(config)?;
            // The masked value sent back means "keep the stored secret".
            let secret = oidc
                .client_secret
                .filter(|s| s.0 != MASKED_SECRET)
                .map(|s| SecretString::from(s.0));
            let input = OidcInput {
                client_id: oidc.client_id,
                auth_url: oidc.auth_url,
                token_url: oidc.token_url,
                certs_url: oidc.certs_url,
                scopes: oidc.scopes,
                claims: oidc.claims,
                email_claim_name: oidc.email_claim_name,
                pkce_enabled: oidc.pkce_enabled,
                groups_claim_name: oidc.groups_claim_name,
            };
            (ConfigInput::Oidc(input), secret)
        }
    };
    Ok((IdentityProviderInput { name: body.name, config }, secret))
}

/// Refuses a `scim_config` that asks for SCIM provisioning.
fn check_scim(scim: Option<&ScimConfigBody>) -> Result<(), ApiError> {
    let Some(scim) = scim else { return Ok(()) };
    for (field, on) in [
        ("enabled", scim.enabled),
        ("user_deprovision", scim.user_deprovision),
        ("seat_deprovision", scim.seat_deprovision),
    ] {
        if on == Some(true) {
            let path = format!("scim_config.{field}");
            return Err(ApiError::field(
                &path,
                format!("invalid `{path}`: SCIM provisioning is not supported by Portico"),
            ));
        }
    }
    match scim.identity_update_behavior.as_deref() {
        None | Some("no_action") => Ok(()),
        Some(other) => Err(ApiError::field(
            "scim_config.identity_update_behavior",
            format!(
                "invalid `scim_config.identity_update_behavior`: `{}` needs SCIM provisioning, \
                 which Portico does not support; only `no_action` is accepted",
                crate::state::truncate(other)
            ),
        )),
    }
}

/// Lists the identity providers, oldest first.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/identity_providers",
    tag = "Identity providers",
    operation_id = "list_identity_providers",
    params(crate::api::openapi::AccountPath, IdentityProviderListQuery),
    responses((status = 200, description = "A page of identity providers", body = IdentityProviderList), crate::api::openapi::ListErrors),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    query: web::Query<IdentityProviderListQuery>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let (page, per_page, scim_only) = query.resolve()?;
    let items: Vec<IdentityProviderObject> = if scim_only {
        Vec::new()
    } else {
        state.read(|m| {
            m.identity_providers.iter().map(IdentityProviderObject::from_record).collect()
        })
    };
    let (items, info) = paginate(items, page, per_page);
    Ok(IdentityProviderList::page(items, info))
}

/// Reads an identity provider (an OIDC client secret is masked).
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/identity_providers/{id}",
    tag = "Identity providers",
    operation_id = "get_identity_provider",
    params(crate::api::openapi::IdentityProviderPath),
    responses((status = 200, description = "The identity provider", body = IdentityProviderResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id = parse_provider_id(&id)?;
    object(&state, &id).map(IdentityProviderResult::ok)
}

/// Adds an identity provider. A `onetimepin` provider always gets the same id, and an account
/// has at most one (409 when it exists).
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/identity_providers",
    tag = "Identity providers",
    operation_id = "create_identity_provider",
    params(crate::api::openapi::AccountPath),
    request_body = IdentityProviderBody,
    responses((status = 200, description = "The created identity provider", body = IdentityProviderResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<IdentityProviderBody>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let (input, secret) = input(body)?;
    let id = state.app.create_identity_provider(input, secret, &caller.actor()).await?;
    object(&state, &id).map(IdentityProviderResult::ok)
}

/// Replaces an identity provider's settings. Its type cannot change; an OIDC provider keeps
/// its client secret unless a new one is sent.
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/access/identity_providers/{id}",
    tag = "Identity providers",
    operation_id = "update_identity_provider",
    params(crate::api::openapi::IdentityProviderPath),
    request_body = IdentityProviderBody,
    responses((status = 200, description = "The updated identity provider", body = IdentityProviderResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<IdentityProviderBody>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_provider_id(&id)?;
    let (input, secret) = input(body)?;
    state.app.update_identity_provider(&id, input, secret, &caller.actor()).await?;
    object(&state, &id).map(IdentityProviderResult::ok)
}

/// Deletes an identity provider; refused (409) while an Access application lists it in
/// `allowed_idps`.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/identity_providers/{id}",
    tag = "Identity providers",
    operation_id = "delete_identity_provider",
    params(crate::api::openapi::IdentityProviderPath),
    responses((status = 200, description = "The deleted provider's id", body = DeletedIdentityProviderResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_provider_id(&id)?;
    state.app.delete_identity_provider(&id, &caller.actor()).await?;
    Ok(DeletedIdentityProviderResult::ok(DeletedIdentityProvider { id: id.to_string() }))
}
