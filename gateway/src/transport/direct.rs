//! A request posted on an upstream's streamable HTTP session from the requesting task, without
//! rmcp's client machinery.
//!
//! rmcp's client serves a connection from the task that opened it: a request goes from the
//! caller through the client's service loop and its transport worker to the HTTP client, and
//! its answer back the same way, each hop a channel, and for a caller on another thread two
//! thread wake-ups per call. A call of an upstream tool needs none of it: it is one POST on
//! the upstream's session, answered with JSON or with an event stream that ends with the
//! answer. [`DirectRoute::request`] posts it from the caller's task, on an HTTP client of the
//! caller's thread (its connections are served by the caller's runtime), with the headers
//! rmcp's client sends on the session. The handshake, the session's `GET` stream, notifications
//! and everything else stay with rmcp's client.
//!
//! What an event stream carries before the answer is handled as rmcp's client would: a list
//! change goes to the connection's handler, a `ping` is answered, and any other server request
//! is refused, as Portico's client offers no capability a server could ask for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, EmptyResult, ErrorData, ProtocolVersion, RequestId,
    ServerJsonRpcMessage, ServerNotification, ServerRequest, ServerResult,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};

use super::http_client;
use crate::ssrf::UpstreamPolicy;

/// The session id a connection's handshake opened, as rmcp's client sends it on every request
/// after the handshake.
pub(super) type SeenSession = Arc<OnceLock<Arc<str>>>;

/// Where and how to post a request on one upstream session.
#[derive(Debug, Clone)]
pub struct DirectRoute {
    url: Arc<str>,
    /// The connection's own headers (its credential).
    headers: HashMap<HeaderName, HeaderValue>,
    session: SeenSession,
    limits: (usize, usize),
    policy: UpstreamPolicy,
    connect_timeout: Duration,
}

/// Why a request posted directly got no answer.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The upstream, or the way to it, failed: the connection is to be replaced.
    #[error("{0}")]
    Transport(String),
    /// The upstream answered with something that is not the answer.
    #[error("{0}")]
    Unexpected(String),
}

/// The ids of requests posted directly: strings, which rmcp's client (numbers) never uses.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl DirectRoute {
    pub(super) fn new(
        url: &url::Url,
        headers: HashMap<HeaderName, HeaderValue>,
        session: SeenSession,
        limits: (usize, usize),
        policy: UpstreamPolicy,
        connect_timeout: Duration,
    ) -> Self {
        DirectRoute {
            url: Arc::from(url.as_str()),
            headers,
            session,
            limits,
            policy,
            connect_timeout,
        }
    }

    /// Whether a request on a session of `version` can be posted directly: once the handshake
    /// opened a session, and on revisions before the standard request headers (SEP-2243),
    /// which rmcp's client derives from each request and the upstream's tool schemas.
    pub fn serves(&self, version: &ProtocolVersion) -> bool {
        self.session.get().is_some() && version < &ProtocolVersion::STANDARD_HEADERS
    }

    /// A new id for a request posted directly.
    pub fn next_id() -> RequestId {
        RequestId::String(format!("portico-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)).into())
    }

    /// Posts `request` as `id` on the session negotiated at `version`, and waits for its answer.
    /// A list change announced on the way goes to `list_changed`.
    pub async fn request(
        &self,
        id: RequestId,
        request: ClientRequest,
        version: &ProtocolVersion,
        list_changed: impl Fn(),
    ) -> Result<Result<ServerResult, ErrorData>, DirectError> {
        let client = http_client::thread_client(self.policy, self.connect_timeout)
            .map_err(|e| DirectError::Transport(format!("no HTTP client: {e}")))?;
        let message = ClientJsonRpcMessage::request(request, id.clone());
        let answer = self.post(&client, message, version).await?;
        let mut events = match answer {
            StreamableHttpPostResponse::Json(message, _) => {
                return answer_to(message, &id)
                    .ok_or_else(|| unexpected("a JSON answer for another request"));
            }
            StreamableHttpPostResponse::Sse(events, _) => events,
            StreamableHttpPostResponse::Accepted => {
                return Err(unexpected("`202 Accepted` for a request"));
            }
            _ => return Err(unexpected("an answer of a kind rmcp does not know")),
        };
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| transport(&e))?;
            let Some(data) = event.data.filter(|data| !data.is_empty()) else { continue };
            let message: ServerJsonRpcMessage = serde_json::from_str(&data)
                .map_err(|e| unexpected(&format!("an event that is not JSON-RPC: {e}")))?;
            match message {
                ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_) => {
                    if let Some(answer) = answer_to(message, &id) {
                        return Ok(answer);
                    }
                }
                ServerJsonRpcMessage::Notification(notification) => {
                    if matches!(
                        notification.notification,
                        ServerNotification::ToolListChangedNotification(_)
                            | ServerNotification::PromptListChangedNotification(_)
                    ) {
                        list_changed();
                    }
                }
                ServerJsonRpcMessage::Request(request) => {
                    let reply = match request.request {
                        ServerRequest::PingRequest(_) => ClientJsonRpcMessage::response(
                            rmcp::model::ClientResult::EmptyResult(EmptyResult {}),
                            request.id,
                        ),
                        _ => ClientJsonRpcMessage::error(
                            ErrorData::new(
                                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                                "Portico's client offers no capability but `ping`",
                                None,
                            ),
                            Some(request.id),
                        ),
                    };
                    self.post(&client, reply, version).await?;
                }
            }
        }
        Err(DirectError::Transport("the upstream's event stream ended before the answer".into()))
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        message: ClientJsonRpcMessage,
        version: &ProtocolVersion,
    ) -> Result<StreamableHttpPostResponse, DirectError> {
        let mut headers = self.headers.clone();
        if let Ok(value) = HeaderValue::from_str(version.as_str()) {
            headers.insert(HeaderName::from_static("mcp-protocol-version"), value);
        }
        let mut limits = StreamableHttpResponseLimits::default();
        (limits.max_sse_event_size, limits.max_json_response_size) = self.limits;
        client
            .post_message_with_response_limits(
                Arc::clone(&self.url),
                message,
                self.session.get().cloned(),
                None,
                headers,
                limits,
            )
            .await
            .map_err(|e| transport(&e))
    }
}

/// The answer in `message` if it answers `id`.
fn answer_to(
    message: ServerJsonRpcMessage,
    id: &RequestId,
) -> Option<Result<ServerResult, ErrorData>> {
    match message {
        ServerJsonRpcMessage::Response(response) if &response.id == id => Some(Ok(response.result)),
        ServerJsonRpcMessage::Error(error) if error.id.as_ref() == Some(id) => {
            Some(Err(error.error))
        }
        _ => None,
    }
}

fn transport(error: &dyn std::fmt::Display) -> DirectError {
    DirectError::Transport(error.to_string())
}

fn unexpected(what: &str) -> DirectError {
    DirectError::Unexpected(format!("the upstream answered with {what}"))
}

/// The HTTP client of a connection's rmcp transport: the shared upstream client, noting the
/// session id rmcp's client sends once the handshake opened one.
#[derive(Debug, Clone)]
pub(super) struct SessionClient {
    pub(super) client: reqwest::Client,
    pub(super) session: SeenSession,
}

impl SessionClient {
    fn note(&self, session: Option<&Arc<str>>) {
        if let Some(session) = session {
            let _ = self.session.set(Arc::clone(session));
        }
    }
}

type Posted = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;
type Events = BoxStream<'static, Result<sse_stream::Sse, SseError>>;

impl StreamableHttpClient for SessionClient {
    type Error = reqwest::Error;

    fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Posted> + Send + '_ {
        self.note(session_id.as_ref());
        self.client.post_message(uri, message, session_id, auth_header, custom_headers)
    }

    fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Posted> + Send + '_ {
        self.note(session_id.as_ref());
        self.client.post_message_with_max_sse_event_size(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        )
    }

    fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> impl Future<Output = Posted> + Send + '_ {
        self.note(session_id.as_ref());
        self.client.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
    }

    fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<(), StreamableHttpError<reqwest::Error>>> + Send + '_ {
        self.client.delete_session(uri, session_id, auth_header, custom_headers)
    }

    fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<Events, StreamableHttpError<reqwest::Error>>> + Send + '_ {
        self.client.get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
    }

    fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Result<Events, StreamableHttpError<reqwest::Error>>> + Send + '_ {
        self.client.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        )
    }
}
