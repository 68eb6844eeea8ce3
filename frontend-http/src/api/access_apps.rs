//! `/accounts/{account_id}/access/apps`: the Access application of every portal, in the shape
//! of Cloudflare Access's applications of type `mcp_portal` (the official SDKs'
//! `zero_trust.access.applications` work against it).
//!
//! An application is created with its portal and deleted with it, so `POST` and `DELETE`
//! answer 400 saying so. `GET` lists and reads them; `PUT` replaces the settings (what it omits
//! takes its default). `id`, `aud`, `name`, `domain` and `type` come from the portal: they may
//! be sent back unchanged, and any other value is refused.

use actix_web::{HttpResponse, web};
use portico_core::domain::access_app::{
    APP_TYPE, AccessAppConfiguration, AccessAppInput, DynamicClientRegistrationInput, GrantInput,
    OAuthInput,
};
use portico_projections::AccessAppRecord;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::body::{DEFAULT_PER_PAGE, JsonBody, MAX_PER_PAGE, MAX_SEARCH_LEN, paginate};
use super::envelope::{ResultInfo, envelope};
use super::error::{ApiError, Code};
use super::rfc3339;
use crate::auth::ApiCaller;
use crate::state::{AppState, truncate};

/// An application as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccessAppObject {
    /// A UUID, derived from the portal's id.
    pub id: String,
    /// Always `mcp_portal`.
    #[serde(rename = "type")]
    pub app_type: &'static str,
    /// The portal's name.
    pub name: String,
    /// The portal's hostname.
    pub domain: String,
    /// The audience tag: 64 hex characters (`PortalAUD` in the portal's logs). Read-only.
    pub aud: String,
    /// The identity providers people may sign in with; empty: all of the account's.
    pub allowed_idps: Vec<String>,
    /// Skip the choice of provider (requires exactly one in `allowed_idps`).
    pub auto_redirect_to_identity: bool,
    /// How long a sign-in lasts (`24h` by default).
    pub session_duration: String,
    /// The block page's message.
    pub custom_deny_message: String,
    /// Where people failing an identity rule are redirected instead.
    pub custom_deny_url: Option<String>,
    /// Where people failing a non-identity rule are redirected instead.
    pub custom_non_identity_deny_url: Option<String>,
    pub oauth_configuration: OAuthConfigurationObject,
    pub created_at: String,
    pub updated_at: String,
}

/// The portal's OAuth authorization server.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OAuthConfigurationObject {
    pub enabled: bool,
    pub dynamic_client_registration: DynamicClientRegistrationObject,
    pub grant: GrantObject,
}

/// Dynamic client registration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DynamicClientRegistrationObject {
    pub enabled: bool,
    /// Any redirect URI on `localhost` is allowed.
    pub allow_any_on_localhost: bool,
    /// Any redirect URI on `127.0.0.1` or `[::1]` is allowed.
    pub allow_any_on_loopback: bool,
    /// Further allowed redirect URIs (`https://host/path/*` matches below the path).
    pub allowed_uris: Vec<String>,
}

/// Lifetimes of what the authorization server issues.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantObject {
    /// `15m` by default.
    pub access_token_lifetime: String,
    /// `null`: the application's `session_duration`.
    pub session_duration: Option<String>,
}

impl AccessAppObject {
    pub fn from_record(record: &AccessAppRecord) -> Self {
        let AccessAppConfiguration {
            allowed_idps,
            auto_redirect_to_identity,
            session_duration,
            custom_deny_message,
            custom_deny_url,
            custom_non_identity_deny_url,
            oauth_configuration: oauth,
        } = &record.configuration;
        let dcr = &oauth.dynamic_client_registration;
        AccessAppObject {
            id: record.id.to_string(),
            app_type: APP_TYPE,
            name: record.name.clone(),
            domain: record.domain.clone(),
            aud: record.aud.clone(),
            allowed_idps: allowed_idps.iter().map(ToString::to_string).collect(),
            auto_redirect_to_identity: *auto_redirect_to_identity,
            session_duration: session_duration.to_string(),
            custom_deny_message: custom_deny_message.clone(),
            custom_deny_url: custom_deny_url.clone(),
            custom_non_identity_deny_url: custom_non_identity_deny_url.clone(),
            oauth_configuration: OAuthConfigurationObject {
                enabled: oauth.enabled,
                dynamic_client_registration: DynamicClientRegistrationObject {
                    enabled: dcr.enabled,
                    allow_any_on_localhost: dcr.allow_any_on_localhost,
                    allow_any_on_loopback: dcr.allow_any_on_loopback,
                    allowed_uris: dcr.allowed_uris.clone(),
                },
                grant: GrantObject {
                    access_token_lifetime: oauth.grant.access_token_lifetime.to_string(),
                    session_duration: oauth
                        .grant
                        .session_duration
                        .as_ref()
                        .map(ToString::to_string),
                },
            },
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

/// `PUT` body. Everything but `type` is optional; an omitted setting takes its default.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessAppBody {
    /// Must be `mcp_portal`.
    #[serde(rename = "type")]
    pub app_type: String,
    /// Read-only: may repeat the application's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Read-only: may repeat the application's `aud`.
    #[serde(default)]
    pub aud: Option<String>,
    /// The portal's name: may be sent back unchanged (rename the portal to change it).
    #[serde(default)]
    pub name: Option<String>,
    /// The portal's hostname: may be sent back unchanged.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub allowed_idps: Option<Vec<String>>,
    #[serde(default)]
    pub auto_redirect_to_identity: Option<bool>,
    /// A Go duration (`300ms`, `2h45m`; units `ns`, `us`, `ms`, `s`, `m`, `h`), 1m to 8760h.
    #[serde(default)]
    pub session_duration: Option<String>,
    #[serde(default)]
    pub custom_deny_message: Option<String>,
    /// `https` URL; `""` for none.
    #[serde(default)]
    pub custom_deny_url: Option<String>,
    /// `https` URL; `""` for none.
    #[serde(default)]
    pub custom_non_identity_deny_url: Option<String>,
    #[serde(default)]
    pub oauth_configuration: Option<OAuthConfigurationBody>,
}

/// `oauth_configuration` in a request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfigurationBody {
    /// `true` by default.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub dynamic_client_registration: Option<DynamicClientRegistrationBody>,
    #[serde(default)]
    pub grant: Option<GrantBody>,
}

/// `oauth_configuration.dynamic_client_registration` in a request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DynamicClientRegistrationBody {
    /// `true` by default.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `true` by default.
    #[serde(default)]
    pub allow_any_on_localhost: Option<bool>,
    /// `true` by default.
    #[serde(default)]
    pub allow_any_on_loopback: Option<bool>,
    #[serde(default)]
    pub allowed_uris: Option<Vec<String>>,
}

/// `oauth_configuration.grant` in a request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// A Go duration, 1m to 24h; `15m` by default.
    #[serde(default)]
    pub access_token_lifetime: Option<String>,
    /// A Go duration, 1m to 8760h; the application's `session_duration` by default.
    #[serde(default)]
    pub session_duration: Option<String>,
}

/// The body a create may carry: anything (it is refused whatever it holds).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AnyBody {}

/// The list's query: paging and Cloudflare's filters.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccessAppListQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page: 1 to 1000, 20 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<u32>,
    /// Applications whose name or domain contains this text (case-insensitive).
    #[param(max_length = 200)]
    pub search: Option<String>,
    /// Applications whose name contains this text (is it, with `exact=true`).
    #[param(max_length = 200)]
    pub name: Option<String>,
    /// Applications whose domain contains this text (is it, with `exact=true`).
    #[param(max_length = 200)]
    pub domain: Option<String>,
    /// Applications whose `aud` contains this text (is it, with `exact=true`).
    #[param(max_length = 200)]
    pub aud: Option<String>,
    /// Match `name`, `domain` and `aud` exactly.
    pub exact: Option<bool>,
}

impl AccessAppListQuery {
    fn resolve(&self) -> Result<(u32, u32), ApiError> {
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
        for (field, value) in [
            ("search", &self.search),
            ("name", &self.name),
            ("domain", &self.domain),
            ("aud", &self.aud),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > MAX_SEARCH_LEN) {
                return Err(ApiError::new(
                    Code::InvalidQuery,
                    format!("`{field}` is longer than {MAX_SEARCH_LEN} characters"),
                ));
            }
        }
        Ok((page, per_page))
    }

    fn matches(&self, app: &AccessAppRecord) -> bool {
        let exact = self.exact.unwrap_or(false);
        let field = |filter: &Option<String>, value: &str| match filter {
            None => true,
            Some(f) if exact => value == f,
            Some(f) => value.to_lowercase().contains(&f.to_lowercase()),
        };
        let search = self.search.as_deref().unwrap_or_default().to_lowercase();
        (search.is_empty()
            || app.name.to_lowercase().contains(&search)
            || app.domain.contains(&search))
            && field(&self.name, &app.name)
            && field(&self.domain, &app.domain)
            && field(&self.aud, &app.aud)
    }
}

envelope!(
    /// The answer carrying one Access application.
    AccessAppResult { result: AccessAppObject }
);
envelope!(
    /// The answer carrying a page of Access applications.
    AccessAppList { result: Vec<AccessAppObject>, result_info: ResultInfo }
);

/// Registers the application routes (on the `/client/v4` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let apps = "/accounts/{account_id}/access/apps";
    cfg.service(web::resource(apps).route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource(format!("{apps}/{{id}}"))
                .route(web::get().to(read))
                .route(web::put().to(update))
                .route(web::delete().to(delete)),
        );
}

/// The application id of a path: a malformed one is a 400 naming it.
fn parse_app_id(id: &str) -> Result<Uuid, ApiError> {
    match Uuid::parse_str(id) {
        Ok(uuid) if uuid.hyphenated().to_string() == id => Ok(uuid),
        _ => Err(ApiError::field(
            "app_id",
            format!("invalid `app_id`: `{}` is not a lowercase UUID", truncate(id)),
        )),
    }
}

fn not_found(id: &Uuid) -> ApiError {
    ApiError::not_found(format!("access application `{id}` does not exist"))
}

fn record(state: &AppState, id: &Uuid) -> Result<AccessAppRecord, ApiError> {
    state.read(|m| m.access_apps.get(id).cloned()).ok_or_else(|| not_found(id))
}

/// A read-only field may only repeat its value.
fn unchanged(field: &str, sent: Option<&str>, current: &str, hint: &str) -> Result<(), ApiError> {
    match sent {
        Some(sent) if sent != current => Err(ApiError::field(
            field,
            format!(
                "invalid `{field}`: `{}` differs from the application's, `{}`: {hint}",
                truncate(sent),
                truncate(current)
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks the fixed fields of a body against the application, and turns the rest into the
/// application layer's input.
fn input(body: AccessAppBody, app: &AccessAppRecord) -> Result<AccessAppInput, ApiError> {
    if body.app_type != APP_TYPE {
        return Err(ApiError::field(
            "type",
            format!(
                "invalid `type`: `{}` is not supported; Portico's applications are the \
                 applications of its portals, of type `{APP_TYPE}`",
                truncate(&body.app_type)
            ),
        ));
    }
    let portal_hint = format!(
        "it is the portal's; change it on the portal \
         (`PUT .../access/ai-controls/mcp/portals/{}`)",
        app.portal_id
    );
    unchanged("id", body.id.as_deref(), &app.id.to_string(), "an application's id is fixed")?;
    unchanged("aud", body.aud.as_deref(), &app.aud, "`aud` is read-only")?;
    unchanged("name", body.name.as_deref(), &app.name, &portal_hint)?;
    unchanged("domain", body.domain.as_deref(), &app.domain, &portal_hint)?;
    let oauth = body.oauth_configuration.unwrap_or(OAuthConfigurationBody {
        enabled: None,
        dynamic_client_registration: None,
        grant: None,
    });
    let dcr = oauth.dynamic_client_registration;
    let grant = oauth.grant;
    Ok(AccessAppInput {
        allowed_idps: body.allowed_idps.unwrap_or_default(),
        auto_redirect_to_identity: body.auto_redirect_to_identity.unwrap_or(false),
        session_duration: body.session_duration,
        custom_deny_message: body.custom_deny_message,
        custom_deny_url: body.custom_deny_url,
        custom_non_identity_deny_url: body.custom_non_identity_deny_url,
        oauth_configuration: OAuthInput {
            enabled: oauth.enabled,
            dynamic_client_registration: match dcr {
                None => DynamicClientRegistrationInput::default(),
                Some(d) => DynamicClientRegistrationInput {
                    enabled: d.enabled,
                    allow_any_on_localhost: d.allow_any_on_localhost,
                    allow_any_on_loopback: d.allow_any_on_loopback,
                    allowed_uris: d.allowed_uris.unwrap_or_default(),
                },
            },
            grant: match grant {
                None => GrantInput::default(),
                Some(g) => GrantInput {
                    access_token_lifetime: g.access_token_lifetime,
                    session_duration: g.session_duration,
                },
            },
        },
    })
}

/// Lists the portals' Access applications, ordered by portal id.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/apps",
    tag = "Access applications",
    operation_id = "list_access_applications",
    params(crate::api::openapi::AccountPath, AccessAppListQuery),
    responses((status = 200, description = "A page of applications", body = AccessAppList), crate::api::openapi::ListErrors),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    query: web::Query<AccessAppListQuery>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let (page, per_page) = query.resolve()?;
    let items: Vec<AccessAppObject> = state.read(|m| {
        m.access_apps
            .iter()
            .filter(|a| query.matches(a))
            .map(AccessAppObject::from_record)
            .collect()
    });
    let (items, info) = paginate(items, page, per_page);
    Ok(AccessAppList::page(items, info))
}

/// Reads a portal's Access application.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/apps/{id}",
    tag = "Access applications",
    operation_id = "get_access_application",
    params(crate::api::openapi::AccessAppPath),
    responses((status = 200, description = "The application", body = AccessAppResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id = parse_app_id(&id)?;
    record(&state, &id).map(|r| AccessAppResult::ok(AccessAppObject::from_record(&r)))
}

/// Replaces a portal application's settings; what the body omits takes its default.
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/access/apps/{id}",
    tag = "Access applications",
    operation_id = "update_access_application",
    params(crate::api::openapi::AccessAppPath),
    request_body = AccessAppBody,
    responses((status = 200, description = "The updated application", body = AccessAppResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<AccessAppBody>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_app_id(&id)?;
    let app = record(&state, &id)?;
    let input = input(body, &app)?;
    state.app.update_access_app(&app.portal_id, input, &caller.actor()).await?;
    record(&state, &id).map(|r| AccessAppResult::ok(AccessAppObject::from_record(&r)))
}

/// Refused: a portal's application is created with the portal.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/apps",
    tag = "Access applications",
    operation_id = "create_access_application",
    params(crate::api::openapi::AccountPath),
    request_body(content = Option<AnyBody>, description = "Ignored: the request is refused"),
    responses(crate::api::openapi::RefusedErrors),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    Err(ApiError::field(
        "type",
        "Portico's Access applications are those of its portals (type `mcp_portal`), and a \
         portal's application is created with the portal: create the portal with `POST \
         /accounts/{account_id}/access/ai-controls/mcp/portals`, then change its application's \
         settings with `PUT /accounts/{account_id}/access/apps/{app_id}`",
    ))
}

/// Refused: a portal's application is deleted with the portal.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/access/apps/{id}",
    tag = "Access applications",
    operation_id = "delete_access_application",
    params(crate::api::openapi::AccessAppPath),
    responses(crate::api::openapi::RefusedErrors)
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_app_id(&id)?;
    let app = record(&state, &id)?;
    Err(ApiError::new(
        Code::InvalidField,
        format!(
            "a portal's Access application is deleted with the portal: delete portal `{}` with \
             `DELETE /accounts/{{account_id}}/access/ai-controls/mcp/portals/{}`",
            app.portal_id, app.portal_id
        ),
    ))
}
