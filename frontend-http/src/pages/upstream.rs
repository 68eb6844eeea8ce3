//! The server-selection page (`/authorize?elicitationId=…`) and the callback of upstream
//! authorizations (`/servers-callback`).
//!
//! The selection page is where `portal_toggle_servers` (and a call to a server the person has
//! not authorized) sends them. It shows the servers Cedar lets them use in the portal, with
//! this session's toggles, and the servers that need their own OAuth authorization. Saving
//! changes the session's toggles; each enabled server that needs an authorization gets an
//! "Authorize" link, and coming back from one upstream goes straight on to the next, so one
//! visit authorizes them all. The page is for the person the link was made for only: it asks
//! them to sign in, and refuses anyone else (MCP elicitation's phishing rule).
//!
//! Forms carry the CSRF token like every page's. The links that start an authorization are
//! plain navigations (a form that redirects to an upstream's authorization server would need
//! that server's origin in the page's `form-action`).

use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use portico_app::sign_in;
use portico_core::domain::ids::ServerId;
use portico_core::domain::upstream_auth::UpstreamGrantOwner;
use portico_gateway::context::ContextMode;
use portico_gateway::selection::Selection;
use portico_gateway::session::PortalCaller;
use portico_gateway::upstream_grants::CALLBACK_PATH;
use serde::Deserialize;

use super::{
    MAX_FIELD, MessagePage, csrf_ok, csrf_token, login_page, not_found, render, session, with_csrf,
};
use crate::oauth::PortalSite;
use crate::state::AppState;

/// The largest selection form read.
const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Template)]
#[template(path = "select.html")]
struct SelectPage<'a> {
    portal_name: &'a str,
    email: &'a str,
    servers: Vec<ServerRow>,
    action: String,
    csrf: &'a str,
    elicitation_id: &'a str,
    notice: Option<String>,
    done: bool,
}

struct ServerRow {
    id: String,
    name: String,
    enabled: bool,
    /// The server is one each person authorizes themself.
    own_oauth: bool,
    authorized: bool,
    authorize_link: String,
}

#[derive(Debug, Deserialize)]
pub struct SelectionQuery {
    #[serde(default, rename = "elicitationId")]
    elicitation_id: String,
    #[serde(default)]
    saved: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    #[serde(default, rename = "elicitationId")]
    elicitation_id: String,
    #[serde(default)]
    server: String,
}

/// What the person may see on the page: their selection, their servers.
struct Visit {
    site: PortalSite,
    selection: Selection,
    user_id: String,
    email: String,
    /// The servers Cedar lets them use now, with the `per_user_oauth` flag.
    servers: Vec<(ServerId, String, bool)>,
}

/// Checks the request is the signed-in person the selection `elicitation_id` was made for;
/// else the page to show instead (sign-in, or a refusal).
fn visit(req: &HttpRequest, state: &AppState, elicitation_id: &str) -> Result<Visit, HttpResponse> {
    let site = PortalSite::of(req, state).ok_or_else(not_found)?;
    let Some(signed_in) = session(req, state, &site) else {
        let next = format!("{}?{}", req.path(), req.query_string());
        return Err(login_page(req, &site, &next, None));
    };
    let refuse = |message: &str| {
        render(
            StatusCode::FORBIDDEN,
            &MessagePage {
                portal_name: site.name.clone(),
                heading: "This link is not yours".to_owned(),
                message: message.to_owned(),
                link: Some(site.path("/")),
                link_text: "Go to the portal".to_owned(),
            },
        )
    };
    let selection = state.app.gateway.selections.get(elicitation_id).ok_or_else(|| {
        refuse("This server-selection link is unknown or expired (links last 30 minutes). Ask your MCP client for a new one: call portal_toggle_servers again.")
    })?;
    if selection.user_id != signed_in.user.id || selection.portal_id != site.portal_id {
        return Err(refuse(
            "This server-selection link was made for another account or portal. Only the person whose MCP client asked for it may use it.",
        ));
    }
    let caller = PortalCaller {
        portal_id: site.portal_id.clone(),
        principal: sign_in::principal_of(&signed_in.user),
        client_ip: req.peer_addr().map(|a| a.ip()),
        mode: ContextMode::default(),
        grant_id: None,
        pages_url: site.issuer(),
    };
    let exposed = state.app.gateway.exposed(&caller).map_err(|e| {
        tracing::error!(error = %e, "access could not be decided");
        render(
            StatusCode::SERVICE_UNAVAILABLE,
            &MessagePage::error(&site, "Your servers could not be listed; try again shortly."),
        )
    })?;
    let servers =
        exposed.servers.iter().map(|s| (s.id.clone(), s.name.clone(), s.per_user_oauth)).collect();
    Ok(Visit {
        site,
        selection,
        user_id: signed_in.user.id.clone(),
        email: signed_in.user.email.clone(),
        servers,
    })
}

impl Visit {
    /// The enabled servers that still need the person's authorization, in page order.
    async fn waiting(&self, state: &AppState, off: &HashSet<ServerId>) -> Vec<ServerId> {
        let mut waiting = Vec::new();
        for (id, _, own) in &self.servers {
            if *own && !off.contains(id) && !state.app.user_authorized(id, &self.user_id).await {
                waiting.push(id.clone());
            }
        }
        waiting
    }

    fn start_link(&self, server_id: &ServerId) -> String {
        let query = serde_urlencoded::to_string([
            ("elicitationId", self.selection_id()),
            ("server", server_id.as_str()),
        ])
        .unwrap_or_default();
        self.site.path(&format!("/authorize/start?{query}"))
    }

    fn selection_id(&self) -> &str {
        &self.selection.id
    }

    fn page_link(&self) -> String {
        self.site.path(&format!("/authorize?elicitationId={}", self.selection_id()))
    }
}

/// `GET /authorize?elicitationId=…`: the page.
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<SelectionQuery>,
) -> HttpResponse {
    let visit = match visit(&req, &state, &query.elicitation_id) {
        Ok(visit) => visit,
        Err(page) => return page,
    };
    let off = visit.selection.session.servers_off().unwrap_or_default();
    let mut rows = Vec::with_capacity(visit.servers.len());
    for (id, name, own) in &visit.servers {
        let authorized = *own && state.app.user_authorized(id, &visit.user_id).await;
        rows.push(ServerRow {
            id: id.to_string(),
            name: name.clone(),
            enabled: !off.contains(id),
            own_oauth: *own,
            authorized,
            authorize_link: visit.start_link(id),
        });
    }
    let waiting = rows.iter().filter(|r| r.enabled && r.own_oauth && !r.authorized).count();
    let done = query.saved.is_some() && waiting == 0;
    let notice = (query.saved.is_some() && waiting > 0).then(|| {
        format!(
            "Saved. {waiting} of your servers need your authorization: use their Authorize links."
        )
    });
    let (csrf, new) = csrf_token(&req, &visit.site);
    let page = SelectPage {
        portal_name: &visit.site.name,
        email: &visit.email,
        servers: rows,
        action: visit.site.path("/authorize"),
        csrf: &csrf,
        elicitation_id: visit.selection_id(),
        notice,
        done,
    };
    with_csrf(render(StatusCode::OK, &page), new)
}

/// `POST /authorize`: saves the session's servers, then shows the page again.
pub async fn save(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Some(site) = PortalSite::of(&req, &state) else { return not_found() };
    if body.len() > MAX_FORM_BYTES {
        return super::bad_form(&site);
    }
    let mut csrf = String::new();
    let mut elicitation_id = String::new();
    let mut chosen: HashSet<String> = HashSet::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        if value.len() > MAX_FIELD {
            return super::bad_form(&site);
        }
        match key.as_ref() {
            "csrf" => csrf = value.into_owned(),
            "elicitation_id" => elicitation_id = value.into_owned(),
            "server" => {
                chosen.insert(value.into_owned());
            }
            _ => {}
        }
    }
    if !csrf_ok(&req, &csrf) {
        return super::bad_form(&site);
    }
    let visit = match visit(&req, &state, &elicitation_id) {
        Ok(visit) => visit,
        Err(page) => return page,
    };
    // Only servers the person may use count; anything else in the form is ignored.
    let enabled: HashSet<ServerId> = visit
        .servers
        .iter()
        .filter(|(id, _, _)| chosen.contains(id.as_str()))
        .map(|(id, _, _)| id.clone())
        .collect();
    visit.selection.session.apply_selection(&enabled).await;
    redirect(&format!("{}&saved=1", visit.page_link()))
}

/// `GET /authorize/start?elicitationId=…&server=…`: starts the person's authorization of one
/// server at its authorization server.
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<StartQuery>,
) -> HttpResponse {
    let visit = match visit(&req, &state, &query.elicitation_id) {
        Ok(visit) => visit,
        Err(page) => return page,
    };
    let Some((server_id, _, _)) =
        visit.servers.iter().find(|(id, _, own)| *own && id.as_str() == query.server)
    else {
        return render(
            StatusCode::BAD_REQUEST,
            &MessagePage::error(
                &visit.site,
                "That server is not one you authorize yourself in this portal.",
            ),
        );
    };
    begin(&state, &visit, server_id).await
}

async fn begin(state: &AppState, visit: &Visit, server_id: &ServerId) -> HttpResponse {
    let callback = format!("{}{CALLBACK_PATH}", visit.site.issuer());
    let actor = portico_core::Actor::User { id: visit.user_id.clone(), email: visit.email.clone() };
    match state
        .app
        .authorize_server_for_user(
            server_id,
            &visit.user_id,
            actor,
            &visit.site.portal_id,
            &callback,
            visit.selection_id().to_owned(),
        )
        .await
    {
        Ok(url) => redirect(&url),
        Err(error) => {
            tracing::warn!(server = %server_id, %error, "an upstream authorization could not start");
            let status = match error {
                portico_app::AppError::Invalid(_) | portico_app::AppError::Rule(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            render(
                status,
                &MessagePage {
                    portal_name: visit.site.name.clone(),
                    heading: "Authorization could not start".to_owned(),
                    message: format!("Server `{server_id}`: {}", public_message(&error)),
                    link: Some(visit.page_link()),
                    link_text: "Back to your servers".to_owned(),
                },
            )
        }
    }
}

/// `GET /servers-callback`: an upstream's authorization server sends the person (or admin)
/// back here.
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let site = PortalSite::of(&req, &state);
    if req.query_string().len() > 8 * 1024 {
        return plain(
            &site,
            StatusCode::BAD_REQUEST,
            "Authorization failed",
            "The answer is too long.",
        );
    }
    let callback_url =
        format!("{}{}?{}", super::public_origin(&req), req.path(), req.query_string());
    let signed_in = site.as_ref().and_then(|s| session(&req, &state, s)).map(|s| s.user.id);
    match state.app.complete_upstream_authorization(&callback_url, signed_in.as_deref()).await {
        Ok(completed) => match (&completed.owner, &site, completed.resume.as_deref()) {
            (UpstreamGrantOwner::User { .. }, Some(_), Some(elicitation_id)) => {
                // On to the next server that needs the person's authorization, else the page.
                match visit(&req, &state, elicitation_id) {
                    Ok(visit) => {
                        let off = visit.selection.session.servers_off().unwrap_or_default();
                        match visit.waiting(&state, &off).await.first() {
                            Some(next) => begin(&state, &visit, next).await,
                            None => redirect(&format!("{}&saved=1", visit.page_link())),
                        }
                    }
                    Err(page) => page,
                }
            }
            _ => plain(
                &site,
                StatusCode::OK,
                "Server authorized",
                &format!(
                    "Portico now holds an authorization for server `{}`; it is being synced. You can close this page.",
                    completed.server_id
                ),
            ),
        },
        Err(error) => {
            plain(&site, StatusCode::BAD_REQUEST, "Authorization failed", &public_message(&error))
        }
    }
}

/// What a person may be told of an application error: its message for invalid requests, a
/// generic one otherwise (causes of unavailability are for the log).
fn public_message(error: &portico_app::AppError) -> String {
    match error {
        portico_app::AppError::Invalid(message) => message.clone(),
        portico_app::AppError::Rule(rule) => rule.to_string(),
        other => {
            tracing::warn!(error = %other, "upstream authorization failed");
            "The authorization server could not be reached; try again shortly.".to_owned()
        }
    }
}

fn plain(
    site: &Option<PortalSite>,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> HttpResponse {
    render(
        status,
        &MessagePage {
            portal_name: site.as_ref().map_or_else(|| "Portico".to_owned(), |s| s.name.clone()),
            heading: heading.to_owned(),
            message: message.to_owned(),
            link: None,
            link_text: String::new(),
        },
    )
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `GET /oauth/upstream-client.json`: Portico's Client ID Metadata Document, the `client_id`
/// it presents to upstream authorization servers that take them. It exists when Portico has an
/// https public URL (`--public-url`; CIMD requires https); the document names itself. Its
/// redirect URIs are every place people come back to: the public URL's and the requesting
/// origin's `/servers-callback` (admins' authorizations) and each portal's, on its own host and
/// by path.
pub async fn client_metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(client_id) = state.app.gateway.upstream_client.metadata_url.clone() else {
        return crate::oauth::oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Portico publishes a client metadata document only when its public URL is https",
        );
    };
    let public = client_id
        .strip_suffix(portico_gateway::upstream_grants::CLIENT_METADATA_PATH)
        .unwrap_or(&client_id)
        .to_owned();
    let origin = super::public_origin(&req);
    let mut redirect_uris = Vec::new();
    let mut add = |uri: String| {
        if !redirect_uris.contains(&uri) {
            redirect_uris.push(uri);
        }
    };
    for base in [&public, &origin] {
        add(format!("{base}{CALLBACK_PATH}"));
    }
    state.read(|m| {
        for portal in m.portals.iter() {
            add(format!("https://{}{CALLBACK_PATH}", portal.settings.hostname));
            for base in [&public, &origin] {
                add(format!("{base}/portals/{}{CALLBACK_PATH}", portal.portal_id));
            }
        }
    });
    let document = serde_json::json!({
        "client_id": client_id,
        "client_name": state.app.gateway.upstream_client.client_name,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(document)
}
