//! The pages people see: sign-in (the providers a portal offers: a one-time PIN form, a
//! button per OpenID Connect provider, [`oidc`]; or straight to the only one), consent, the block page, and the portal's
//! home page (who is signed in, their servers, the MCP URL, sign-out). Server-rendered HTML
//! (askama templates in `templates/`), no JavaScript.
//!
//! Every form carries a CSRF token that must equal the `portico_csrf` cookie (double submit;
//! the cookie is `SameSite=Strict`). The session cookie is `HttpOnly`, `SameSite=Lax` (the
//! client's redirect to the authorization endpoint is a top-level navigation) and `Secure` on
//! https. Redirects after sign-in only go to paths of the same portal (no open redirect).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use portico_app::sign_in::{self, SignInError};
use portico_core::domain::grant::GrantUser;
use portico_core::domain::identity_provider::IdentityProviderType;
use portico_core::domain::sign_in::{SignInFailure, UserSignedIn};
use serde::Deserialize;

use crate::oauth::{self, AuthorizeParams, PortalSite, Verified};
use crate::state::AppState;

mod oidc;
mod upstream;

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "portico_session";
/// The CSRF cookie.
pub const CSRF_COOKIE: &str = "portico_csrf";
/// The longest form field read.
const MAX_FIELD: usize = 4096;

/// Mounts the pages, by path and by portal host.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for prefix in ["/portals/{portal_id}", ""] {
        cfg.route(&format!("{prefix}/"), web::get().to(home))
            .route(&format!("{prefix}/login"), web::get().to(login))
            .route(&format!("{prefix}/login"), web::post().to(send_pin))
            .route(&format!("{prefix}/login/pin"), web::post().to(check_pin))
            .route(&format!("{prefix}/login/oidc"), web::get().to(oidc::start))
            .route(&format!("{prefix}/login/oidc/callback"), web::get().to(oidc::callback))
            .route(&format!("{prefix}/consent"), web::post().to(consent))
            .route(&format!("{prefix}/logout"), web::post().to(logout))
            .route(&format!("{prefix}/authorize"), web::get().to(upstream::page))
            .route(&format!("{prefix}/authorize"), web::post().to(upstream::save))
            .route(&format!("{prefix}/authorize/start"), web::get().to(upstream::start))
            .route(&format!("{prefix}/servers-callback"), web::get().to(upstream::callback));
    }
    cfg.route(
        portico_gateway::upstream_grants::CLIENT_METADATA_PATH,
        web::get().to(upstream::client_metadata),
    );
}

#[derive(Debug, Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    portal_name: String,
    heading: String,
    message: String,
    link: Option<String>,
    link_text: String,
}

impl MessagePage {
    /// A page that explains why a request cannot go on.
    pub fn error(site: &PortalSite, message: &str) -> Self {
        MessagePage {
            portal_name: site.name.clone(),
            heading: "Sign-in stopped".to_owned(),
            message: message.to_owned(),
            link: None,
            link_text: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    portal_name: &'a str,
    /// Whether the one-time-PIN form is shown.
    pin: bool,
    /// The OpenID Connect providers: name and the link that starts signing in with it.
    providers: Vec<(String, String)>,
    action: String,
    csrf: &'a str,
    next: &'a str,
    message: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "pin.html")]
struct PinPage<'a> {
    portal_name: &'a str,
    action: String,
    csrf: &'a str,
    next: &'a str,
    challenge: &'a str,
    email: &'a str,
    message: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    portal_name: &'a str,
    client_name: &'a str,
    redirect_host: String,
    email: &'a str,
    action: String,
    csrf: &'a str,
    params: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    portal_name: &'a str,
    email: &'a str,
    servers: Vec<(String, String)>,
    mcp_url: String,
    remote_config: String,
    http_config: String,
    logout_action: String,
    csrf: &'a str,
}

/// Renders `page` with `status`, never cached or framed.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    render_returning_to(status, page, &[])
}

/// Renders `page`, whose form may end at one of `targets`: the client's `redirect_uri`, the
/// portal's deny URL (see [`content_security_policy`]).
fn render_returning_to(status: StatusCode, page: &impl Template, targets: &[&str]) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header(("Content-Security-Policy", content_security_policy(targets)))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The pages' `Content-Security-Policy`. Their forms post to the portal only, but browsers check
/// `form-action` on every redirect that follows a form submission too, and the forms of an
/// authorization (the PIN page, the consent page) end in a redirect to the client's
/// `redirect_uri`, and a refused sign-in in a redirect to the portal's `custom_deny_url`: the
/// origin of each (its scheme, for an application's own scheme) is allowed as well, or the
/// browser would stop the flow at its last step.
fn content_security_policy(targets: &[&str]) -> String {
    let sources: String =
        targets.iter().filter_map(|t| form_source(t)).map(|s| format!(" {s}")).collect();
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'{sources}; frame-ancestors 'none'"
    )
}

/// The CSP source naming `redirect_uri`: its origin for http(s), else its scheme. CSP's source
/// grammar has no IPv6 literal (`http://[::1]:8080` is ignored as invalid, which would block
/// the redirect), so a client on an IPv6 address is allowed by its scheme.
fn form_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.scheme() {
        scheme @ ("http" | "https") => match url.host()? {
            url::Host::Ipv6(_) => Some(format!("{scheme}:")),
            _ => Some(url.origin().ascii_serialization()),
        },
        // INVARIANT: a parsed scheme is `[a-z][a-z0-9+.-]*`, which cannot break the header.
        scheme => Some(format!("{scheme}:")),
    }
}

/// The redirect URI of the authorization request that `next` (a path of the portal) goes back
/// to, once its client and redirect URI are verified; `None` for any other `next`.
async fn client_redirect_of(site: &PortalSite, state: &AppState, next: &str) -> Option<String> {
    let query = next.strip_prefix(&site.path("/oauth/authorize?"))?;
    let params: AuthorizeParams = serde_urlencoded::from_str(query).ok()?;
    oauth::verify(site, state, &params).await.ok().map(|v| v.request.redirect_uri)
}

fn cookie_path(site: &PortalSite) -> String {
    format!("{}/", site.prefix)
}

fn cookie<'a>(site: &PortalSite, req: &HttpRequest, name: &'a str, value: String) -> Cookie<'a> {
    let mut c = Cookie::new(name, value);
    c.set_path(cookie_path(site));
    c.set_http_only(true);
    c.set_secure(req.connection_info().scheme() == "https");
    c
}

/// The CSRF token of this browser, and the cookie to set if it is new.
fn csrf_token(req: &HttpRequest, site: &PortalSite) -> (String, Option<Cookie<'static>>) {
    if let Some(c) = req.cookie(CSRF_COOKIE).filter(|c| c.value().len() == 64) {
        return (c.value().to_owned(), None);
    }
    let mut bytes = [0u8; 32];
    if getrandom::getrandom(&mut bytes).is_err() {
        return (String::new(), None);
    }
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut c = cookie(site, req, CSRF_COOKIE, token.clone());
    c.set_same_site(SameSite::Strict);
    (token, Some(c))
}

/// Whether the form's CSRF token is this browser's.
fn csrf_ok(req: &HttpRequest, presented: &str) -> bool {
    req.cookie(CSRF_COOKIE).is_some_and(|c| {
        c.value().len() == 64 && portico_app::api_tokens::hashes_match(c.value(), presented)
    })
}

fn with_csrf(mut response: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    if let Some(cookie) = cookie {
        let _ = response.add_cookie(&cookie);
    }
    response
}

/// `scheme://host` as the request reached Portico.
pub fn public_origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The signed-in person of this request at `site`, if any.
pub fn session(req: &HttpRequest, state: &AppState, site: &PortalSite) -> Option<UserSignedIn> {
    let cookie = req.cookie(SESSION_COOKIE)?;
    state.app.signed_in(&site.portal_id, cookie.value())
}

/// Where to go after signing in: a path of this portal, or its home page.
fn safe_next(site: &PortalSite, next: &str) -> String {
    let home = site.path("/");
    let ok = next.starts_with(&home)
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= MAX_FIELD;
    if ok { next.to_owned() } else { home }
}

/// The sign-in page, which comes back to `next`: the providers the portal offers, or (instant
/// auth, and no `message` to show) straight to its only OpenID Connect provider.
pub fn login_page(
    req: &HttpRequest,
    site: &PortalSite,
    next: &str,
    message: Option<&str>,
) -> HttpResponse {
    let settings = req.app_data::<web::Data<AppState>>().map(|state| site.settings(state));
    let providers = settings.as_ref().map(|s| s.providers.clone()).unwrap_or_default();
    let pin = settings.as_ref().is_none_or(|s| s.one_time_pin);
    let oidc: Vec<_> = providers.iter().filter(|p| p.kind == IdentityProviderType::Oidc).collect();
    if !pin && oidc.is_empty() {
        return no_method(site);
    }
    let next = safe_next(site, next);
    if let (Some(state), Some(settings), [only], None) =
        (req.app_data::<web::Data<AppState>>(), &settings, oidc.as_slice(), message)
        && settings.auto_redirect
        && !pin
    {
        return oidc::redirect_to_provider(req, state, site, &only.id, &next);
    }
    let (csrf, new) = csrf_token(req, site);
    let page = LoginPage {
        portal_name: &site.name,
        pin,
        providers: oidc
            .iter()
            .map(|p| (p.name.clone(), oidc::start_link(site, &p.id, &next)))
            .collect(),
        action: site.path("/login"),
        csrf: &csrf,
        next: &next,
        message,
    };
    let status = if message.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    with_csrf(render(status, &page), new)
}

/// The block page with the portal's message, or a redirect to its `custom_deny_url`.
fn blocked(state: &AppState, site: &PortalSite) -> HttpResponse {
    let settings = site.settings(state);
    if let Some(url) = settings.deny_url {
        return HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
    }
    render(
        StatusCode::FORBIDDEN,
        &MessagePage {
            portal_name: site.name.clone(),
            heading: "Access denied".to_owned(),
            message: settings.deny_message,
            link: None,
            link_text: String::new(),
        },
    )
}

/// The page shown when the portal offers no sign-in method Portico can run.
fn no_method(site: &PortalSite) -> HttpResponse {
    render(
        StatusCode::FORBIDDEN,
        &MessagePage::error(
            site,
            "No sign-in method is available for this portal: its Access application allows no identity provider that exists.",
        ),
    )
}

/// With a signed-in person: the block page if no policy lets them connect, the code at once if
/// they already consented to this client, else the consent page.
pub async fn continue_authorization(
    req: &HttpRequest,
    state: &AppState,
    site: &PortalSite,
    verified: &Verified,
    user: &GrantUser,
    _next: &str,
) -> HttpResponse {
    let ip = req.peer_addr().map(|a| a.ip());
    match state.app.may_connect(user, &site.portal_id, ip) {
        Ok(true) => {}
        Ok(false) => return blocked(state, site),
        Err(e) => {
            tracing::error!(error = %e, "access could not be decided");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    if state.app.has_consent(user, &verified.request.client_id, &site.portal_id) {
        return issue_code(req, state, site, verified, user).await;
    }
    let (csrf, new) = csrf_token(req, site);
    let redirect_host = url::Url::parse(&verified.request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| verified.request.redirect_uri.clone());
    let r = &verified.request;
    let mut params = vec![
        ("response_type", "code".to_owned()),
        ("client_id", r.client_id.clone()),
        ("redirect_uri", r.redirect_uri.clone()),
        ("code_challenge", r.code_challenge.clone()),
        ("code_challenge_method", "S256".to_owned()),
        ("resource", r.resource.clone()),
    ];
    if let Some(state) = &verified.state {
        params.push(("state", state.clone()));
    }
    if let Some(scope) = &r.scope {
        params.push(("scope", scope.clone()));
    }
    let page = ConsentPage {
        portal_name: &site.name,
        client_name: &verified.client_name,
        redirect_host,
        email: &user.email,
        action: site.path("/consent"),
        csrf: &csrf,
        params,
    };
    let deny_url = site.settings(state).deny_url;
    let targets: Vec<&str> = std::iter::once(verified.request.redirect_uri.as_str())
        .chain(deny_url.as_deref())
        .collect();
    with_csrf(render_returning_to(StatusCode::OK, &page, &targets), new)
}

async fn issue_code(
    req: &HttpRequest,
    state: &AppState,
    site: &PortalSite,
    verified: &Verified,
    user: &GrantUser,
) -> HttpResponse {
    let ip = req.peer_addr().map(|a| a.ip());
    let r = &verified.request;
    match state.app.authorize_grant(r.clone(), user.clone(), &site.settings(state), ip).await {
        Ok(code) => oauth::redirect_to_client(
            &r.redirect_uri,
            &[("code", &code.0)],
            verified.state.as_deref(),
            site,
        ),
        Err(SignInError::AccessDenied(_)) => blocked(state, site),
        Err(e) => {
            tracing::error!(error = %e, "an authorization code could not be issued");
            render(
                StatusCode::SERVICE_UNAVAILABLE,
                &MessagePage::error(site, "The sign-in could not be completed; try again shortly."),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return not_found() };
    login_page(&req, &site, query.next.as_deref().unwrap_or_default(), None)
}

fn not_found() -> HttpResponse {
    oauth::oauth_error(StatusCode::NOT_FOUND, "not_found", "no portal is served here")
}

/// The page where the PIN sent to `email` is entered (`400` with `message` after a wrong one).
async fn pin_page(
    req: &HttpRequest,
    state: &AppState,
    site: &PortalSite,
    next: &str,
    challenge: &str,
    email: &str,
    message: Option<&str>,
) -> HttpResponse {
    let (csrf, new) = csrf_token(req, site);
    let next = safe_next(site, next);
    let page = PinPage {
        portal_name: &site.name,
        action: site.path("/login/pin"),
        csrf: &csrf,
        next: &next,
        challenge,
        email,
        message,
    };
    let status = if message.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    // After the PIN of an authorization, the browser goes on to the client's redirect URI; a
    // person no policy lets in goes to the portal's deny URL, if it has one.
    let client = client_redirect_of(site, state, &next).await;
    let deny_url = site.settings(state).deny_url;
    let targets: Vec<&str> = client.as_deref().into_iter().chain(deny_url.as_deref()).collect();
    with_csrf(render_returning_to(status, &page, &targets), new)
}

/// The portal a form was posted to, once its CSRF token checked out and its fields are within
/// their bounds (`bounded`); the refusal otherwise.
fn form_site(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
    bounded: bool,
) -> Result<PortalSite, HttpResponse> {
    let site = PortalSite::of(req, state).ok_or_else(not_found)?;
    if !csrf_ok(req, csrf) || !bounded {
        return Err(bad_form(&site));
    }
    Ok(site)
}

fn bad_form(site: &PortalSite) -> HttpResponse {
    render(
        StatusCode::BAD_REQUEST,
        &MessagePage::error(
            site,
            "The form was not sent from this page (its security token is missing or stale). Go back, reload the page and try again.",
        ),
    )
}

#[derive(Debug, Deserialize)]
struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    email: String,
}

async fn send_pin(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<EmailForm>,
) -> HttpResponse {
    let site = match form_site(&req, &state, &form.csrf, form.email.len() <= MAX_FIELD) {
        Ok(site) => site,
        Err(refusal) => return refusal,
    };
    if !site.settings(&state).one_time_pin {
        return no_method(&site);
    }
    let ip = req.peer_addr().map(|a| a.ip());
    match state.app.send_one_time_pin(&site.portal_id, &site.name, &form.email, ip).await {
        Ok(challenge) => {
            let email = sign_in::normalize_email(&form.email).unwrap_or_default();
            pin_page(&req, &state, &site, &form.next, &challenge, &email, None).await
        }
        Err(SignInError::App(e)) => {
            tracing::error!(error = %e, "a one-time PIN could not be sent");
            login_page(
                &req,
                &site,
                &form.next,
                Some("The code could not be sent; try again shortly."),
            )
        }
        Err(e) => login_page(&req, &site, &form.next, Some(&e.to_string())),
    }
}

#[derive(Debug, Deserialize)]
struct PinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    code: String,
}

async fn check_pin(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<PinForm>,
) -> HttpResponse {
    let bounded = form.code.len() <= 16 && form.challenge.len() <= 64;
    let site = match form_site(&req, &state, &form.csrf, bounded) {
        Ok(site) => site,
        Err(refusal) => return refusal,
    };
    let ip = req.peer_addr().map(|a| a.ip());
    let email =
        match state.app.verify_one_time_pin(&site.portal_id, &form.challenge, &form.code, ip).await
        {
            Ok(email) => email,
            Err(SignInError::Pin { reason: SignInFailure::WrongCode, message }) => {
                let (challenge, email) = (&form.challenge, &form.email);
                return pin_page(&req, &state, &site, &form.next, challenge, email, Some(&message))
                    .await;
            }
            Err(e) => return login_page(&req, &site, &form.next, Some(&e.to_string())),
        };
    let user = GrantUser {
        id: sign_in::pin_user_id(&email),
        email: email.clone(),
        name: email.clone(),
        idp: sign_in::ONE_TIME_PIN_IDP.to_owned(),
        groups: Vec::new(),
        claims: Default::default(),
    };
    signed_in(&req, &state, &site, user, &form.next).await
}

/// A person proved who they are: the block page if no policy lets them connect to the portal
/// (recorded as a failed sign-in), else a browser session and on to `next`.
async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
    site: &PortalSite,
    user: GrantUser,
    next: &str,
) -> HttpResponse {
    let ip = req.peer_addr().map(|a| a.ip());
    match state.app.may_connect(&user, &site.portal_id, ip) {
        Ok(true) => {}
        Ok(false) => {
            state
                .app
                .record_failure(&site.portal_id, Some(&user.email), SignInFailure::AccessDenied, ip)
                .await;
            return blocked(state, site);
        }
        Err(e) => {
            tracing::error!(error = %e, "access could not be decided");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    let settings = site.settings(state);
    match state.app.sign_in(&site.portal_id, user, ip, settings.browser_session_duration).await {
        Ok(cookie_value) => {
            let mut session = cookie(site, req, SESSION_COOKIE, cookie_value.0);
            session.set_same_site(SameSite::Lax);
            session.set_max_age(actix_web::cookie::time::Duration::seconds(
                settings.session_duration.num_seconds(),
            ));
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, safe_next(site, next)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(session)
                .finish()
        }
        Err(e) => {
            tracing::error!(error = %e, "a session could not be started");
            login_page(
                req,
                site,
                next,
                Some("The sign-in could not be completed; try again shortly."),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConsentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(flatten)]
    params: AuthorizeParams,
}

async fn consent(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ConsentForm>,
) -> HttpResponse {
    let site = match form_site(&req, &state, &form.csrf, true) {
        Ok(site) => site,
        Err(refusal) => return refusal,
    };
    let verified = match oauth::verify(&site, &state, &form.params).await {
        Ok(v) => v,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(session) = session(&req, &state, &site) else {
        let next = site.path("/");
        return login_page(&req, &site, &next, Some("Your session ended; sign in again."));
    };
    match form.decision.as_str() {
        "allow" => {
            if let Err(e) = state
                .app
                .give_consent(&session.user, &verified.request.client_id, &site.portal_id)
                .await
            {
                tracing::error!(error = %e, "consent could not be recorded");
                return render(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &MessagePage::error(
                        &site,
                        "The sign-in could not be completed; try again shortly.",
                    ),
                );
            }
            continue_authorization(&req, &state, &site, &verified, &session.user, "").await
        }
        _ => oauth::redirect_to_client(
            &verified.request.redirect_uri,
            &[("error", "access_denied"), ("error_description", "the person denied the request")],
            verified.state.as_deref(),
            &site,
        ),
    }
}

async fn home(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return not_found() };
    let Some(session) = session(&req, &state, &site) else {
        return login_page(&req, &site, &site.path("/"), None);
    };
    let ip = req.peer_addr().map(|a| a.ip());
    let context = portico_policies::RequestContext::new(
        state.app.clock.now(),
        ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
    );
    let principal = sign_in::principal_of(&session.user);
    let servers = state.read(|m| {
        let access = state.app.authz.access(m, &principal, &site.portal_id, &context).ok()?;
        if !access.visibility.portal.allowed {
            return None;
        }
        Some(
            access
                .visibility
                .servers
                .iter()
                .map(|s| {
                    let name = portico_core::domain::ids::ServerId::try_from(s.id.clone())
                        .ok()
                        .and_then(|id| m.catalog.get(&id).map(|c| c.settings.name.clone()))
                        .unwrap_or_else(|| s.id.clone());
                    (s.id.clone(), name)
                })
                .collect::<Vec<_>>(),
        )
    });
    let Some(servers) = servers else { return blocked(&state, &site) };
    let mcp_url = site.resource();
    let key = site.portal_id.to_string();
    let remote_config = serde_json::to_string_pretty(&serde_json::json!({
        "mcpServers": {key.clone(): {"command": "npx", "args": ["mcp-remote", mcp_url]}}
    }))
    .unwrap_or_default();
    let http_config = serde_json::to_string_pretty(&serde_json::json!({
        "servers": {key: {"type": "http", "url": mcp_url}}
    }))
    .unwrap_or_default();
    let (csrf, new) = csrf_token(&req, &site);
    let page = HomePage {
        portal_name: &site.name,
        email: &session.user.email,
        servers,
        mcp_url,
        remote_config,
        http_config,
        logout_action: site.path("/logout"),
        csrf: &csrf,
    };
    with_csrf(render(StatusCode::OK, &page), new)
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let site = match form_site(&req, &state, &form.csrf, true) {
        Ok(site) => site,
        Err(refusal) => return refusal,
    };
    if let Some(cookie_value) = req.cookie(SESSION_COOKIE) {
        if let Err(e) = state.app.sign_out(&site.portal_id, cookie_value.value()).await {
            tracing::error!(error = %e, "sign-out failed");
            return render(
                StatusCode::SERVICE_UNAVAILABLE,
                &MessagePage::error(&site, "Signing out failed; try again shortly."),
            );
        }
    }
    let mut gone = cookie(&site, &req, SESSION_COOKIE, String::new());
    gone.make_removal();
    let mut response = render(StatusCode::OK, &MessagePage {
        portal_name: site.name.clone(),
        heading: "Signed out".to_owned(),
        message: "You are signed out, and the MCP clients you allowed on this portal no longer have access.".to_owned(),
        link: Some(site.path("/")),
        link_text: "Sign in again".to_owned(),
    });
    let _ = response.add_cookie(&gone);
    response
}

#[cfg(test)]
mod tests {
    use super::{content_security_policy, form_source};

    #[test]
    fn forms_may_end_at_the_client_and_at_the_deny_url() {
        let csp = content_security_policy(&[
            "http://127.0.0.1:4000/cb",
            "https://help.example.com/denied",
        ]);
        assert!(
            csp.contains("form-action 'self' http://127.0.0.1:4000 https://help.example.com;"),
            "{csp}"
        );
        let alone = content_security_policy(&[]);
        assert!(alone.contains("form-action 'self';"), "{alone}");
    }

    #[test]
    fn a_redirect_uri_is_allowed_by_its_origin_or_its_scheme() {
        let cases = [
            ("http://127.0.0.1:33418/callback", Some("http://127.0.0.1:33418")),
            ("https://app.example/cb?x=1", Some("https://app.example")),
            ("http://localhost:8080/oauth/callback", Some("http://localhost:8080")),
            ("http://[::1]:33418/callback", Some("http:")),
            ("cursor://anysphere.cursor-retrieval/oauth/callback", Some("cursor:")),
            ("not a url", None),
        ];
        for (uri, source) in cases {
            assert_eq!(form_source(uri).as_deref(), source, "{uri}");
        }
    }
}
