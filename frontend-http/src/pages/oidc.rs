//! Signing in with an OpenID Connect provider: `<portal>/login/oidc?idp=<id>&next=<path>` sends
//! the browser to the provider (the login page's button, or instant auth), and the provider
//! sends it back to `<portal>/login/oidc/callback`. The login is bound to the browser that
//! started it by the `portico_oidc` cookie (`HttpOnly`, `SameSite=Lax`: the provider's redirect
//! back is a top-level navigation; it lives as long as a pending login).

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use portico_app::sign_in::SignInError;
use portico_app::sign_in::oidc::{CALLBACK_PATH, LOGIN_LIFETIME, OidcCallback};
use portico_core::domain::identity_provider::IdentityProviderId;
use serde::Deserialize;

use super::{MessagePage, cookie, login_page, not_found, render, safe_next, signed_in};
use crate::oauth::PortalSite;
use crate::state::AppState;

/// The cookie binding a pending login to this browser.
pub const BINDING_COOKIE: &str = "portico_oidc";
/// The longest `state`, `code` or `error` read from the provider's answer.
const MAX_PARAM: usize = 4096;

/// The link that starts signing in with `provider` and comes back to `next`.
pub fn start_link(site: &PortalSite, provider: &IdentityProviderId, next: &str) -> String {
    let query =
        serde_urlencoded::to_string([("idp", provider.to_string().as_str()), ("next", next)])
            .unwrap_or_default();
    format!("{}?{query}", site.path("/login/oidc"))
}

/// Starts a login with `provider` and sends the browser to it.
pub fn redirect_to_provider(
    req: &HttpRequest,
    state: &AppState,
    site: &PortalSite,
    provider: &IdentityProviderId,
    next: &str,
) -> HttpResponse {
    let redirect_uri = format!("{}{CALLBACK_PATH}", site.issuer());
    match state.app.start_oidc_login(&site.portal_id, provider, &redirect_uri, next) {
        Ok(start) => {
            let mut binding = cookie(site, req, BINDING_COOKIE, start.browser_binding.0);
            binding.set_same_site(SameSite::Lax);
            binding.set_max_age(actix_web::cookie::time::Duration::seconds(
                i64::try_from(LOGIN_LIFETIME.as_secs()).unwrap_or(600),
            ));
            HttpResponse::Found()
                .insert_header((header::LOCATION, start.authorize_url))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(binding)
                .finish()
        }
        Err(SignInError::App(e)) => {
            tracing::error!(error = %e, "an OpenID Connect sign-in could not start");
            render(
                StatusCode::SERVICE_UNAVAILABLE,
                &MessagePage::error(site, "The sign-in could not start; try again shortly."),
            )
        }
        Err(e) => login_page(req, site, next, Some(&e.to_string())),
    }
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    idp: String,
    #[serde(default)]
    next: String,
}

/// `GET <portal>/login/oidc?idp=<id>&next=<path>`.
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<StartQuery>,
) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return not_found() };
    let next = safe_next(&site, &query.next);
    match IdentityProviderId::parse("idp", &query.idp) {
        Ok(provider) => redirect_to_provider(&req, &state, &site, &provider, &next),
        Err(_) => login_page(&req, &site, &next, Some("Choose one of the sign-in methods below.")),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET <portal>/login/oidc/callback?state=...&code=...`: the provider's answer.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return not_found() };
    let bounded = [Some(&query.state), query.code.as_ref(), query.error.as_ref()]
        .into_iter()
        .flatten()
        .all(|v| v.len() <= MAX_PARAM);
    let binding = req.cookie(BINDING_COOKIE);
    let answer = OidcCallback {
        state: if bounded { &query.state } else { "" },
        code: query.code.as_deref(),
        error: query.error.as_deref(),
        browser_binding: binding.as_ref().map(|c| c.value()),
    };
    let ip = req.peer_addr().map(|a| a.ip());
    // The binding cookie is left to expire: removing it on a refused callback would let anyone
    // who makes the browser open a forged callback URL end the person's real login.
    match state.app.finish_oidc_login(&site.portal_id, answer, ip).await {
        Ok(signed) => signed_in(&req, &state, &site, signed.user, &signed.next).await,
        Err(SignInError::App(e)) => {
            tracing::error!(error = %e, "an OpenID Connect sign-in could not finish");
            render(
                StatusCode::SERVICE_UNAVAILABLE,
                &MessagePage::error(
                    &site,
                    "The sign-in could not be completed; try again shortly.",
                ),
            )
        }
        Err(e) => render(
            StatusCode::BAD_REQUEST,
            &MessagePage {
                portal_name: site.name.clone(),
                heading: "Sign-in stopped".to_owned(),
                message: format!("The sign-in did not complete: {e}."),
                link: Some(site.path("/login")),
                link_text: "Sign in again".to_owned(),
            },
        ),
    }
}
