//! A session's call of an upstream tool, answered in place (see
//! `portico_gateway::session::direct`): the request must be one rmcp would hand to the session
//! unchanged (a POST of a live session with the headers MCP requires and nothing for rmcp to
//! check against the body), and its body one `tools/call` the session can answer without an
//! event stream. Anything else is given back, body included, for rmcp to serve. The answer is
//! JSON, or an event stream of the upstream's progress and then the answer when the call asks
//! for progress.

use std::sync::Arc;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, HttpResponse, web};
use futures::StreamExt;
use portico_gateway::session::{AdmittedView, PortalCaller, PortalSession, ProgressStream};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorData, GetMeta, JsonRpcRequest, ProgressNotification,
    ServerJsonRpcMessage, ServerNotification,
};

use super::{MAX_MESSAGE_BYTES, Sessions};
use crate::state::AppState;

const SESSION_ID: &str = "mcp-session-id";
const PROTOCOL_VERSION: &str = "mcp-protocol-version";
const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// A request whose headers allow an answer in place: its session, the session's id, and the
/// endpoint's sessions.
pub(super) struct Candidate {
    session: PortalSession,
    id: String,
    sessions: Arc<Sessions>,
}

/// What may answer `req` in place, judged by its headers alone.
pub(super) fn candidate(req: &ServiceRequest) -> Option<Candidate> {
    if req.method() != actix_web::http::Method::POST {
        return None;
    }
    let headers = req.headers();
    let id = header(headers, SESSION_ID)?;
    // Headers rmcp checks against the body (SEP-2243's `Mcp-Method`, `Mcp-Name`, ...) are left
    // to it.
    if headers.keys().any(|name| {
        name.as_str().starts_with("mcp-") && name != SESSION_ID && name != PROTOCOL_VERSION
    }) {
        return None;
    }
    let accepted = header(headers, ACCEPT.as_str())?.split(',').map(essence).fold(
        (false, false),
        |(json, events), kind| {
            (
                json || kind.eq_ignore_ascii_case(JSON),
                events || kind.eq_ignore_ascii_case(EVENT_STREAM),
            )
        },
    );
    if accepted != (true, true)
        || !essence(header(headers, CONTENT_TYPE.as_str())?).eq_ignore_ascii_case(JSON)
    {
        return None;
    }
    let length: usize = header(headers, CONTENT_LENGTH.as_str())?.parse().ok()?;
    if length > MAX_MESSAGE_BYTES {
        return None;
    }
    let state = req.app_data::<web::Data<AppState>>()?;
    let session = PortalSession::direct(&state.app.gateway, id)?;
    (session.protocol_version()?.as_str() == header(headers, PROTOCOL_VERSION)?).then(|| {
        Candidate { session, id: id.to_owned(), sessions: Arc::clone(&state.mcp.sessions) }
    })
}

/// Answers `req` through the candidate's session if its body is a call the session answers in
/// place; `Ok(None)` gives the request back (with its body) for rmcp. `Err` is the answer to a
/// body that could not be read.
pub(super) async fn answer(
    req: &mut ServiceRequest,
    candidate: Candidate,
    caller: &PortalCaller,
    view: &AdmittedView,
) -> Result<Option<HttpResponse>, HttpResponse> {
    let Candidate { session, id, sessions } = candidate;
    // A closed session (a DELETE, its idle timeout) is rmcp's to answer, with 404; an open one
    // is in use now.
    if !sessions.touch(&id) {
        return Ok(None);
    }
    let body = read_body(req).await?;
    let call = match portico_gateway::message::read_client_message(&body) {
        Ok(ClientJsonRpcMessage::Request(request))
            if session.answers_directly(caller, &view.0, &request.request) =>
        {
            Some(request)
        }
        _ => None,
    };
    let Some(call) = call else {
        req.set_payload(Payload::from(body));
        return Ok(None);
    };
    let parts = parts(req, caller, view);
    if call.request.get_meta().get_progress_token().is_some() {
        return Ok(Some(with_progress(session, call, parts)));
    }
    let answer = session.answer_directly(call.id, call.request, parts, None).await;
    Ok(Some(HttpResponse::Ok().content_type(JSON).body(encode(&answer))))
}

/// How many progress notifications may wait for a slow client before the upstream's next one
/// waits too.
const PROGRESS_BUFFER: usize = 32;

/// The answer to a call with a progress token: an event stream of the upstream's progress as
/// it comes, then the answer, which ends the stream.
fn with_progress(
    session: PortalSession,
    call: JsonRpcRequest<ClientRequest>,
    parts: http::request::Parts,
) -> HttpResponse {
    let (progress, received) = tokio::sync::mpsc::channel(PROGRESS_BUFFER);
    let answer = Box::pin(async move {
        session.answer_directly(call.id, call.request, parts, Some(ProgressStream(progress))).await
    });
    let events =
        futures::stream::unfold((Some(answer), received), |(answer, mut received)| async move {
            let mut answer = answer?;
            // Progress that came before the answer goes first.
            let message = tokio::select! {
                biased;
                Some(params) = received.recv() => {
                    let notification = ProgressNotification::new(params);
                    let message = ServerJsonRpcMessage::notification(
                        ServerNotification::ProgressNotification(notification),
                    );
                    return Some((event(&message), (Some(answer), received)));
                }
                message = &mut answer => message,
            };
            Some((event(&message), (None, received)))
        });
    HttpResponse::Ok()
        .content_type(EVENT_STREAM)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .streaming(events)
}

/// One server-sent event carrying `message`.
fn event(message: &ServerJsonRpcMessage) -> Result<Bytes, std::convert::Infallible> {
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(&encode(message));
    event.extend_from_slice(b"\n\n");
    Ok(Bytes::from(event))
}

/// `message` as JSON. rmcp's message types always encode; were one not to, the client gets a
/// JSON-RPC internal error for the request rather than a broken body.
fn encode(message: &ServerJsonRpcMessage) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_else(|error| {
        let id = match message {
            ServerJsonRpcMessage::Response(response) => Some(response.id.clone()),
            _ => None,
        };
        let error =
            ErrorData::internal_error(format!("the answer could not be encoded: {error}"), None);
        serde_json::to_vec(&ServerJsonRpcMessage::error(error, id)).unwrap_or_default()
    })
}

/// The request's body, whole (its `Content-Length` was checked against the bound).
async fn read_body(req: &mut ServiceRequest) -> Result<Bytes, HttpResponse> {
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            crate::api::error::ApiError::new(
                crate::api::error::Code::MalformedBody,
                format!("the request body could not be read: {error}"),
            )
            .oauth_response()
        })?;
        if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Err(crate::api::error::ApiError::new(
                crate::api::error::Code::BodyTooLarge,
                format!("a message may have at most {MAX_MESSAGE_BYTES} bytes"),
            )
            .oauth_response());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The request as rmcp's bridge hands it to the session: the headers the session reads, and
/// the caller and its view in the extensions.
fn parts(req: &ServiceRequest, caller: &PortalCaller, view: &AdmittedView) -> http::request::Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = http::Method::POST;
    if let Ok(uri) = req.uri().to_string().parse() {
        parts.uri = uri;
    }
    for name in [SESSION_ID, PROTOCOL_VERSION] {
        if let Some(value) = req.headers().get(name) {
            if let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) {
                parts.headers.insert(name, value);
            }
        }
    }
    let mut extensions = rmcp::model::Extensions::new();
    extensions.insert(caller.clone());
    extensions.insert(view.clone());
    parts.extensions.insert(extensions);
    parts
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// A media type without its parameters.
fn essence(value: &str) -> &str {
    value.split_once(';').map_or(value, |(essence, _)| essence).trim()
}
