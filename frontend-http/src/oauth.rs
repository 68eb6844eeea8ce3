//! Portico as the OAuth 2.1 authorization server of each portal (MCP authorization,
//! 2025-11-25): protected-resource metadata (RFC 9728), authorization-server metadata (RFC 8414
//! and OpenID discovery paths), dynamic client registration (RFC 7591), the authorization
//! endpoint (code flow, PKCE `S256` only, `resource` required and bound to the portal), the
//! token endpoint (`authorization_code` and `refresh_token`) and revocation (RFC 7009).
//!
//! A portal is addressed two ways, and each has its own issuer:
//! - by its hostname: resource `https://<host>/mcp`, issuer `https://<host>`;
//! - by path on any host: resource `<origin>/portals/<id>/mcp`, issuer `<origin>/portals/<id>`.
//!
//! Errors have OAuth's shape (`{"error", "error_description"}`); the authorization endpoint
//! sends them back to the client's redirect URI once the client and redirect URI are known to
//! be genuine, and shows a page otherwise (RFC 6749 §4.1.2.1: never redirect to an unverified
//! URI).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use portico_app::sign_in::{
    AuthorizationRequest, ClientRegistration, IssuedTokens, SignInError, SignInSettings,
};
use portico_core::domain::grant::is_s256_challenge;
use portico_core::domain::ids::PortalId;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::pages::{self, MessagePage};
use crate::state::AppState;

/// The largest registration or token request body read.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The portal a request is for, and the URLs that name it.
#[derive(Debug, Clone)]
pub struct PortalSite {
    pub portal_id: PortalId,
    pub name: String,
    pub hostname: String,
    /// `https://host` (scheme and authority the request came to).
    pub origin: String,
    /// `` for the portal's own host, `/portals/<id>` by path.
    pub prefix: String,
}

impl PortalSite {
    /// Finds the portal of a request: by the `{portal_id}` in the path, else by `Host`.
    pub fn of(req: &HttpRequest, state: &AppState) -> Option<PortalSite> {
        let info = req.connection_info();
        let origin = crate::pages::public_origin(req);
        let by_path = req.match_info().get("portal_id");
        state.read(|m| {
            let record = match by_path {
                Some(id) => m.portals.get(&PortalId::try_from(id.to_owned()).ok()?)?,
                None => {
                    let host = info.host();
                    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
                        if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }
                    });
                    m.portals.by_hostname(name)?
                }
            };
            Some(PortalSite {
                portal_id: record.portal_id.clone(),
                name: record.settings.name.clone(),
                hostname: record.settings.hostname.clone(),
                origin: origin.clone(),
                prefix: by_path.map(|id| format!("/portals/{id}")).unwrap_or_default(),
            })
        })
    }

    /// The issuer: `<origin><prefix>`.
    pub fn issuer(&self) -> String {
        format!("{}{}", self.origin, self.prefix)
    }

    /// The MCP endpoint, the resource tokens are for.
    pub fn resource(&self) -> String {
        format!("{}{}/mcp", self.origin, self.prefix)
    }

    /// Where the protected-resource metadata is (RFC 9728 §3.1, path inserted).
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource{}/mcp", self.origin, self.prefix)
    }

    /// A path under the portal's pages.
    pub fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Whether `resource` names this portal's MCP endpoint (trailing slash and case of scheme
    /// and host aside).
    pub fn is_resource(&self, resource: &str) -> bool {
        let canonical = |s: &str| {
            url::Url::parse(s).ok().map(|u| {
                let mut text = u.as_str().trim_end_matches('/').to_owned();
                if u.query().is_none() && u.fragment().is_none() {
                    text = text.trim_end_matches('/').to_owned();
                }
                text
            })
        };
        canonical(resource).is_some_and(|r| Some(r) == canonical(&self.resource()))
    }

    /// How the portal signs people in now (its Access application's settings).
    pub fn settings(&self, state: &AppState) -> SignInSettings {
        state.app.sign_in_settings(&self.portal_id)
    }
}

/// Mounts the discovery documents and the endpoints, by path and by portal host.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let prm = "/.well-known/oauth-protected-resource";
    let asm = "/.well-known/oauth-authorization-server";
    let oidc = "/.well-known/openid-configuration";
    cfg.route(&format!("{prm}/portals/{{portal_id}}/mcp"), web::get().to(resource_metadata))
        .route(&format!("{prm}/mcp"), web::get().to(resource_metadata))
        .route(prm, web::get().to(resource_metadata))
        .route(&format!("{asm}/portals/{{portal_id}}"), web::get().to(server_metadata))
        .route(&format!("{oidc}/portals/{{portal_id}}"), web::get().to(server_metadata))
        .route(&format!("/portals/{{portal_id}}{oidc}"), web::get().to(server_metadata))
        .route(asm, web::get().to(server_metadata))
        .route(oidc, web::get().to(server_metadata));
    for prefix in ["/portals/{portal_id}", ""] {
        cfg.route(&format!("{prefix}/oauth/authorize"), web::get().to(authorize))
            .route(&format!("{prefix}/oauth/token"), web::post().to(token))
            .route(&format!("{prefix}/oauth/register"), web::post().to(register))
            .route(&format!("{prefix}/oauth/revoke"), web::post().to(revoke));
    }
}

/// Why a portal whose Access application turned OAuth off refuses MCP clients.
const OAUTH_OFF: &str =
    "MCP clients cannot sign in to this portal: its OAuth authorization server is turned off.";

fn oauth_off() -> HttpResponse {
    oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", OAUTH_OFF)
}

/// An OAuth error answer.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

fn no_portal() -> HttpResponse {
    oauth_error(StatusCode::NOT_FOUND, "not_found", "no portal is served here")
}

async fn resource_metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return no_portal() };
    HttpResponse::Ok().json(json!({
        "resource": site.resource(),
        "authorization_servers": [site.issuer()],
        "bearer_methods_supported": ["header"],
        "resource_name": site.name,
    }))
}

async fn server_metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return no_portal() };
    let issuer = site.issuer();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "registration_endpoint": format!("{issuer}/oauth/register"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    }))
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthorizeParams {
    #[serde(default)]
    pub response_type: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub code_challenge: Option<String>,
    #[serde(default)]
    pub code_challenge_method: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// An authorization request whose client and redirect URI were verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub client_name: String,
    pub request: AuthorizationRequest,
    pub state: Option<String>,
}

/// What is wrong with an authorization request: a page (client or redirect URI not
/// verified), or an error sent back to the redirect URI.
#[derive(Debug)]
pub enum Refusal {
    Page(HttpResponse),
    Redirect(HttpResponse),
}

impl Refusal {
    pub fn into_response(self) -> HttpResponse {
        match self {
            Refusal::Page(r) | Refusal::Redirect(r) => r,
        }
    }
}

/// Checks an authorization request against the registered client and the portal.
pub async fn verify(
    site: &PortalSite,
    state: &AppState,
    params: &AuthorizeParams,
) -> Result<Verified, Refusal> {
    let page = |message: &str| {
        Refusal::Page(pages::render(StatusCode::BAD_REQUEST, &MessagePage::error(site, message)))
    };
    let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Err(page("The sign-in request has no `client_id`."));
    };
    let client = match state.app.oauth_client(client_id, &site.portal_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(page(
                "The application asking to sign you in is not registered with this portal.",
            ));
        }
        Err(e) => {
            tracing::info!(error = %e, "an authorization request's client was refused");
            return Err(page(&format!(
                "The application asking to sign you in cannot be trusted: {e}."
            )));
        }
    };
    let Some(redirect_uri) = params.redirect_uri.as_deref() else {
        return Err(page("The sign-in request has no `redirect_uri`."));
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(page(
            "The application's redirect URI is not one it registered; the sign-in was stopped.",
        ));
    }
    let redirect = |error: &str, description: &str| {
        Refusal::Redirect(redirect_to_client(
            redirect_uri,
            &[("error", error), ("error_description", description)],
            params.state.as_deref(),
            site,
        ))
    };
    if params.response_type.as_deref() != Some("code") {
        return Err(redirect(
            "unsupported_response_type",
            "only `response_type=code` is supported",
        ));
    }
    match (params.code_challenge.as_deref(), params.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if is_s256_challenge(c) => {}
        (None, _) => {
            return Err(redirect(
                "invalid_request",
                "PKCE is required: send `code_challenge` with `code_challenge_method=S256`",
            ));
        }
        (Some(_), Some("S256")) => {
            return Err(redirect("invalid_request", "`code_challenge` is not an S256 challenge"));
        }
        _ => {
            return Err(redirect(
                "invalid_request",
                "only the `S256` code challenge method is supported",
            ));
        }
    }
    let Some(resource) = params.resource.as_deref() else {
        return Err(redirect("invalid_target", "`resource` is required: this portal's MCP URL"));
    };
    if !site.is_resource(resource) {
        return Err(redirect("invalid_target", "`resource` is not this portal's MCP URL"));
    }
    Ok(Verified {
        client_name: client.client_name,
        request: AuthorizationRequest {
            portal_id: site.portal_id.clone(),
            client_id: client.client_id,
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: params.code_challenge.clone().unwrap_or_default(),
            resource: site.resource(),
            scope: params.scope.clone(),
        },
        state: params.state.clone(),
    })
}

/// A `302` to the client's redirect URI with `pairs`, `state` and `iss` (RFC 9207).
pub fn redirect_to_client(
    redirect_uri: &str,
    pairs: &[(&str, &str)],
    state: Option<&str>,
    site: &PortalSite,
) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return pages::render(
            StatusCode::BAD_REQUEST,
            &MessagePage::error(site, "invalid redirect URI"),
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &site.issuer());
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `GET /oauth/authorize`: verifies the request, then signs the person in, asks consent, and
/// sends the code.
async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<AuthorizeParams>,
) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return no_portal() };
    if !site.settings(&state).oauth_enabled {
        return pages::render(StatusCode::FORBIDDEN, &MessagePage::error(&site, OAUTH_OFF));
    }
    let verified = match verify(&site, &state, &params).await {
        Ok(v) => v,
        Err(refusal) => return refusal.into_response(),
    };
    let next = format!("{}?{}", site.path("/oauth/authorize"), req.query_string());
    let Some(session) = pages::session(&req, &state, &site) else {
        return pages::login_page(&req, &site, &next, None);
    };
    pages::continue_authorization(&req, &state, &site, &verified, &session.user, &next).await
}

/// The token request (RFC 6749 §4.1.3 and §6).
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
}

fn sign_in_error(e: SignInError) -> HttpResponse {
    let (status, error) = match &e {
        SignInError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        SignInError::InvalidClient(_) => (StatusCode::UNAUTHORIZED, "invalid_client"),
        SignInError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
        SignInError::AccessDenied(_) => (StatusCode::FORBIDDEN, "access_denied"),
        SignInError::InvalidRedirectUri(_) => (StatusCode::BAD_REQUEST, "invalid_redirect_uri"),
        SignInError::InvalidClientMetadata(_) => {
            (StatusCode::BAD_REQUEST, "invalid_client_metadata")
        }
        SignInError::Pin { .. } | SignInError::IdentityProvider(_) => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        SignInError::RateLimited(_) => {
            let mut response = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                &e.to_string(),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return response;
        }
        SignInError::App(app) => {
            tracing::error!(error = %app, "an OAuth request failed");
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the request could not be completed; retry shortly",
            );
        }
    };
    oauth_error(status, error, &e.to_string())
}

fn tokens_response(tokens: IssuedTokens) -> HttpResponse {
    let mut body = json!({
        "access_token": tokens.access_token.0,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token.0,
    });
    if let Some(scope) = tokens.scope {
        body["scope"] = json!(scope);
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

async fn token(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return no_portal() };
    if !site.settings(&state).oauth_enabled {
        return oauth_off();
    }
    let form = match read_form::<TokenForm>(&req, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let missing = |field: &str| {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("`{field}` is required"))
    };
    let Some(client_id) = form.client_id.as_deref() else { return missing("client_id") };
    match state.app.oauth_client(client_id, &site.portal_id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
        }
        Err(e) => return sign_in_error(e),
    }
    let presented = form.code.as_deref().or(form.refresh_token.as_deref());
    if let (Some(resource), Some(presented)) = (form.resource.as_deref(), presented) {
        let bound = state.app.resource_of(presented);
        if !site.is_resource(resource) || bound.is_some_and(|b| !site.is_resource(&b)) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "`resource` is not the MCP URL this grant is for",
            );
        }
    }
    let settings = site.settings(&state);
    let ip = req.peer_addr().map(|a| a.ip());
    let result = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let Some(code) = form.code.as_deref() else { return missing("code") };
            let Some(redirect_uri) = form.redirect_uri.as_deref() else {
                return missing("redirect_uri");
            };
            let Some(verifier) = form.code_verifier.as_deref() else {
                return missing("code_verifier");
            };
            state
                .app
                .redeem_code(&site.portal_id, code, client_id, redirect_uri, verifier, &settings)
                .await
        }
        Some("refresh_token") => {
            let Some(refresh) = form.refresh_token.as_deref() else {
                return missing("refresh_token");
            };
            state.app.refresh_grant(&site.portal_id, refresh, client_id, &settings, ip).await
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant type `{}` is not supported", crate::state::truncate(other)),
            );
        }
        None => return missing("grant_type"),
    };
    match result {
        Ok(tokens) => tokens_response(tokens),
        Err(e) => sign_in_error(e),
    }
}

/// RFC 7591 client metadata (the fields Portico reads; others are ignored).
#[derive(Debug, Deserialize)]
struct RegistrationBody {
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    client_uri: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
}

async fn register(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return no_portal() };
    if !site.settings(&state).oauth_enabled {
        return oauth_off();
    }
    if body.len() > MAX_FORM_BYTES {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            &format!("the registration is larger than {MAX_FORM_BYTES} bytes"),
        );
    }
    let parsed: RegistrationBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                &format!("the body is not client metadata in JSON: {e}"),
            );
        }
    };
    let registration = ClientRegistration {
        client_name: parsed.client_name,
        redirect_uris: parsed.redirect_uris.unwrap_or_default(),
        client_uri: parsed.client_uri,
        grant_types: parsed.grant_types.unwrap_or_default(),
        response_types: parsed.response_types.unwrap_or_default(),
    };
    let settings = site.settings(&state);
    match state
        .app
        .register_client(
            &site.portal_id,
            registration,
            &settings.dynamic_client_registration,
            req.peer_addr().map(|a| a.ip()),
        )
        .await
    {
        Ok(client) => {
            HttpResponse::Created().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({
                "client_id": client.client_id,
                "client_id_issued_at": chrono::Utc::now().timestamp(),
                "client_name": client.client_name,
                "redirect_uris": client.redirect_uris,
                "client_uri": client.client_uri,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }))
        }
        Err(e) => sign_in_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    token: Option<String>,
}

async fn revoke(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    if PortalSite::of(&req, &state).is_none() {
        return no_portal();
    }
    let form = match read_form::<RevokeForm>(&req, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let Some(token) = form.token else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "`token` is required");
    };
    match state.app.revoke_token(&token).await {
        Ok(()) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish(),
        Err(e) => sign_in_error(SignInError::App(e)),
    }
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`].
fn read_form<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, HttpResponse> {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be `application/x-www-form-urlencoded`",
        ));
    }
    if body.len() > MAX_FORM_BYTES {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the body is larger than {MAX_FORM_BYTES} bytes"),
        ));
    }
    serde_urlencoded::from_bytes(body).map_err(|e| {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("invalid form: {e}"))
    })
}

/// The `WWW-Authenticate` value of the MCP endpoint's `401`.
pub fn challenge_value(site: &PortalSite, error: Option<&str>) -> HeaderValue {
    let mut value = format!("Bearer resource_metadata=\"{}\"", site.resource_metadata_url());
    if let Some(error) = error {
        value.push_str(&format!(", error=\"invalid_token\", error_description=\"{error}\""));
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}
