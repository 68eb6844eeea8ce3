//! The portal endpoint: MCP over streamable HTTP, one per portal, at `https://<portal
//! hostname>/mcp` (the portal is found by the `Host` header) and at `/portals/<portal id>/mcp`.
//!
//! Every request is authenticated before rmcp sees it: an OAuth access token issued for this
//! portal (`Authorization: Bearer`, a signed-in person) or a service token
//! (`CF-Access-Client-Id` and `CF-Access-Client-Secret`); without valid credentials the answer
//! is `401` with a `WWW-Authenticate: Bearer resource_metadata="..."` challenge (RFC 9728), from
//! which MCP clients find the portal's authorization server. A caller no policy lets `connect` to the portal gets `403`.
//! Refusals have OAuth's shape (`{"error", "error_description"}`, RFC 6750) and take their
//! statuses from the API's one table ([`Code`]).
//! A browser `Origin` other than the portal's own is refused with `403` (DNS rebinding and
//! cross-site requests). The authenticated [`PortalCaller`] travels to the session handler in the
//! request's extensions. A body that is not a JSON-RPC message is `400` with a JSON-RPC parse
//! error.
//!
//! A session's call of an upstream tool is answered in place, as `application/json`, without
//! rmcp's session machinery (see `portico_gateway::session` and [`in_place`]); everything else
//! goes through rmcp.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BodyStream, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use portico_gateway::Gateway;
use portico_gateway::context::ContextMode;
use portico_gateway::session::{AdmittedView, PortalCaller, PortalSession};
use portico_policies::Hidden;
use rmcp_actix_web::transport::StreamableHttpService;
use serde_json::json;

use crate::api::error::{ApiError, Code};
use crate::auth::{self, ServiceAuthError};
use crate::oauth::{self, PortalSite};
use crate::state::AppState;
use portico_app::sign_in;

mod in_place;
pub mod sessions;

pub use sessions::Sessions;

/// The largest JSON-RPC message a client may POST.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A session with no request for this long ends (the product's 24 hours); the client then gets
/// `404` and initializes again.
pub const SESSION_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How long a client whose event stream broke waits before it resumes the stream (the `retry`
/// hint of each stream's priming event).
pub const SSE_RETRY: Duration = Duration::from_secs(3);

/// The MCP service every worker mounts; its session manager is shared by all of them.
pub type McpService = StreamableHttpService<PortalSession, Sessions>;

/// The MCP endpoint: rmcp's service, and its session manager (which the calls answered in
/// place consult too).
#[derive(Clone)]
pub struct Mcp {
    pub service: McpService,
    pub sessions: Arc<Sessions>,
}

impl std::fmt::Debug for Mcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mcp").finish_non_exhaustive()
    }
}

/// Builds the MCP service over `gateway` (once per process), sessions ending after
/// [`SESSION_IDLE_TIMEOUT`] without a request.
/// Cancelling `shutdown` ends every session (and its event streams), so that a graceful stop does
/// not wait for clients to hang up.
pub fn service(gateway: Arc<Gateway>, shutdown: tokio_util::sync::CancellationToken) -> Mcp {
    service_with_idle_timeout(gateway, shutdown, SESSION_IDLE_TIMEOUT)
}

/// [`service`], sessions ending after `idle` without a request.
pub fn service_with_idle_timeout(
    gateway: Arc<Gateway>,
    shutdown: tokio_util::sync::CancellationToken,
    idle: Duration,
) -> Mcp {
    let sessions = Arc::new(Sessions::new(idle, Some(SSE_RETRY)));
    let service = StreamableHttpService::builder()
        .cancellation_token(shutdown)
        .service_factory(Arc::new(move || Ok(PortalSession::new(Arc::clone(&gateway)))))
        .session_manager(Arc::clone(&sessions))
        .sse_retry(SSE_RETRY)
        // Hosts are checked here (a portal's hostname routes the request), so rmcp's
        // loopback-only default is turned off; requests carry credentials in headers, which a
        // rebinding page cannot send, and a foreign `Origin` is refused below.
        .allowed_hosts(Vec::new())
        .max_request_body_bytes(MAX_MESSAGE_BYTES)
        .on_request_fn(|req, extensions| {
            let admitted = req.extensions();
            if let Some(caller) = admitted.get::<PortalCaller>() {
                extensions.insert(caller.clone());
            }
            if let Some(view) = admitted.get::<AdmittedView>() {
                extensions.insert(view.clone());
            }
        })
        .build();
    Mcp { service, sessions }
}

/// Mounts the endpoint at `/portals/{portal_id}/mcp` and `/mcp`.
pub fn routes(cfg: &mut web::ServiceConfig, mcp: &Mcp) {
    let guarded = |path: &'static str| {
        mcp.service.clone().scope_with_path(path).wrap(actix_web::middleware::from_fn(guard))
    };
    cfg.service(guarded("/portals/{portal_id}/mcp")).service(guarded("/mcp"));
}

async fn guard(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody, BoxBody>>, actix_web::Error> {
    let (caller, view) = match admit(&req) {
        Ok(admitted) => admitted,
        Err(response) => return Ok(req.into_response(response).map_into_right_body()),
    };
    if let Some(candidate) = in_place::candidate(&req) {
        match in_place::answer(&mut req, candidate, &caller, &view).await {
            Ok(None) => {}
            Ok(Some(response)) | Err(response) => {
                return Ok(req.into_response(response).map_into_right_body());
            }
        }
    }
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(view);
    let json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let post = req.method() == actix_web::http::Method::POST;
    let response = next.call(req).await?;
    Ok(if json && response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        parse_error(response)
    } else if post {
        with_first_event(response).await.map_into_left_body()
    } else {
        response.map_into_left_body()
    })
}

/// How long an event stream that answers a POST waits for its first event before its head is
/// sent alone.
const FIRST_EVENT_WAIT: Duration = Duration::from_secs(1);

/// rmcp answers a request of a session with an event stream whose head it returns at once,
/// before the answer exists: the head and the answer then leave in two writes, and the client
/// wakes twice. Most answers come within a moment, so the head waits for the stream's first
/// event (at most [`FIRST_EVENT_WAIT`]) and both go out together; a longer call's client gets
/// the head when the wait ends, as before.
async fn with_first_event(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let event_stream = response
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !event_stream {
        return response;
    }
    let (request, response) = response.into_parts();
    let (head, mut body) = response.into_parts();
    let first = tokio::time::timeout(
        FIRST_EVENT_WAIT,
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_next(cx)),
    )
    .await;
    let body = match first {
        // Still waiting: nothing was taken from the stream.
        Err(_) => body,
        Ok(first) => {
            // A stream that ended or failed is not polled again.
            let mut rest = matches!(first, Some(Ok(_))).then_some(body);
            let stream = futures::StreamExt::chain(
                futures::stream::iter(first),
                futures::stream::poll_fn(move |cx| match rest.as_mut() {
                    Some(body) => std::pin::Pin::new(body).poll_next(cx),
                    None => std::task::Poll::Ready(None),
                }),
            );
            BoxBody::new(BodyStream::new(stream))
        }
    };
    ServiceResponse::new(request, head.set_body(body))
}

/// rmcp answers a JSON body it cannot read as a JSON-RPC message with `415 Unsupported Media
/// Type`, which sends a client that did send `application/json` looking at its headers. The
/// answer is `400` with a JSON-RPC parse error instead (MCP: "an HTTP error status code (e.g.,
/// 400 Bad Request)", optionally with a JSON-RPC error without an id).
fn parse_error(
    response: ServiceResponse<BoxBody>,
) -> ServiceResponse<EitherBody<BoxBody, BoxBody>> {
    let (request, _) = response.into_parts();
    let answer = HttpResponse::build(Code::MalformedBody.status()).json(json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": -32700,
            "message": "parse error: the body is not a JSON-RPC message in valid JSON",
        },
    }));
    ServiceResponse::new(request, answer).map_into_right_body()
}

/// Finds the portal, authenticates the caller and checks `connect`; the error is the answer.
fn admit(req: &ServiceRequest) -> Result<(PortalCaller, AdmittedView), HttpResponse> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::internal("application state is missing").oauth_response());
    };
    let Some(site) = PortalSite::of(req.request(), state) else {
        return Err(ApiError::not_found("no portal is served here").oauth_response());
    };
    if let Some(origin) = req.headers().get("origin") {
        if !origin_allowed(origin.to_str().unwrap_or_default(), &site.hostname) {
            return Err(ApiError::new(
                Code::Forbidden,
                "requests from this Origin are not accepted",
            )
            .oauth_response());
        }
    }
    let refuse = |reason: &dyn std::fmt::Display, description: Option<&str>| {
        tracing::info!(portal = %site.portal_id, %reason, "MCP request refused");
        auth::challenge(
            description.unwrap_or("authentication required"),
            oauth::challenge_value(&site, description),
        )
    };
    let mut grant_id = None;
    let principal = if let Some(token) = auth::bearer_token(req.request()) {
        match state.app.grant_of_access_token(token, &site.portal_id) {
            Some((user, grant)) => {
                grant_id = Some(grant);
                sign_in::principal_of(&user)
            }
            None => {
                return Err(refuse(
                    &"unknown, expired or revoked access token, or one for another portal",
                    Some("invalid token"),
                ));
            }
        }
    } else {
        let models = state.app.models.read();
        match auth::authenticate_service_request(&models, req.request(), state.app.clock.now()) {
            Ok(principal) => principal,
            Err(ServiceAuthError::Missing) => return Err(refuse(&ServiceAuthError::Missing, None)),
            Err(error) => return Err(refuse(&error, Some("invalid token"))),
        }
    };
    let setting =
        state.app.models.read().portals.get(&site.portal_id).map(|p| p.settings.code_mode);
    let mode = ContextMode::resolve(setting.unwrap_or_default(), req.query_string())
        .map_err(|message| ApiError::new(Code::InvalidQuery, message).oauth_response())?;
    let caller = PortalCaller {
        portal_id: site.portal_id.clone(),
        principal,
        client_ip: req.peer_addr().map(|a| a.ip()),
        mode,
        grant_id,
        pages_url: site.issuer(),
    };
    match state.app.gateway.exposed(&caller) {
        Ok(view) => {
            if let Some(Hidden::NoPortalAccess { message }) = &view.hidden {
                return Err(ApiError::new(Code::Forbidden, message.clone()).oauth_response());
            }
            Ok((caller, AdmittedView(view)))
        }
        Err(error) => Err(ApiError {
            message: "access could not be decided".to_owned(),
            ..ApiError::internal(error)
        }
        .oauth_response()),
    }
}

/// Whether a browser `Origin` may call a portal served at `hostname`: its own host, or a
/// loopback host (local development tools such as MCP Inspector).
fn origin_allowed(origin: &str, hostname: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else { return false };
    let Some(host) = url.host_str() else { return false };
    host.eq_ignore_ascii_case(hostname)
        || host == "localhost"
        || host == "127.0.0.1"
        || host == "[::1]"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::task::Poll;

    use actix_web::test::TestRequest;
    use actix_web::web::Bytes;

    use super::*;

    type Chunk = Result<Bytes, std::io::Error>;

    /// An event-stream answer whose events come from `events`, as rmcp's does.
    fn answer(events: impl futures::Stream<Item = Chunk> + 'static) -> ServiceResponse<BoxBody> {
        let response = HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(BoxBody::new(BodyStream::new(events)));
        ServiceResponse::new(TestRequest::post().to_http_request(), response)
    }

    /// Polls `body` once, without waiting.
    fn poll_once(body: &mut BoxBody) -> Poll<Option<Bytes>> {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        std::pin::Pin::new(body).poll_next(&mut cx).map(|chunk| chunk.map(|c| c.unwrap()))
    }

    #[tokio::test]
    async fn the_head_waits_for_the_first_event_and_nothing_is_lost() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Chunk>();
        let events =
            futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|c| (c, rx)) });
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(Ok(Bytes::from_static(b"data: first\n\n"))).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(Ok(Bytes::from_static(b"data: second\n\n"))).unwrap();
        });
        let response = with_first_event(answer(events)).await;
        // The answer is released only once its first event can go with it.
        let mut body = response.into_parts().1.into_body();
        assert_eq!(poll_once(&mut body), Poll::Ready(Some(Bytes::from_static(b"data: first\n\n"))));
        sender.await.unwrap();
        let rest = actix_web::body::to_bytes(body).await.unwrap();
        assert_eq!(rest, Bytes::from_static(b"data: second\n\n"));
    }

    #[tokio::test]
    async fn a_slow_answer_gets_its_head_after_the_wait() {
        let events = futures::stream::pending::<Chunk>();
        let started = tokio::time::Instant::now();
        let response = with_first_event(answer(events)).await;
        assert!(started.elapsed() >= FIRST_EVENT_WAIT);
        let mut body = response.into_parts().1.into_body();
        assert_eq!(poll_once(&mut body), Poll::Pending, "nothing was taken from the stream");
    }

    #[tokio::test]
    async fn other_answers_pass_unchanged() {
        let json = HttpResponse::Ok().content_type("application/json").body("{}");
        let response = ServiceResponse::new(TestRequest::post().to_http_request(), json);
        let response = with_first_event(response).await;
        let body = actix_web::body::to_bytes(response.into_parts().1.into_body()).await.unwrap();
        assert_eq!(body, Bytes::from_static(b"{}"));
        let ended = with_first_event(answer(futures::stream::empty())).await;
        let body = actix_web::body::to_bytes(ended.into_parts().1.into_body()).await.unwrap();
        assert!(body.is_empty());
    }
}
