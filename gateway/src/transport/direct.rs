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
//! Up to [`MAX_IN_FLIGHT`] requests at a time take this route on a connection
//! ([`DirectRoute::claim`]), each on an HTTP connection of its own from the thread's pool; while
//! that many are in flight, others go through rmcp's client. Each saves the hand-offs, alone
//! and under concurrency: posted this way (the URL parsed once, the headers built once, a
//! call's answer read as its own type), sixty-four concurrent calls cost less CPU each than
//! through rmcp's client, whose one task serves all of a connection's requests.
//!
//! What an event stream carries before the answer is handled as rmcp's client would: a list
//! change goes to the connection's handler, a `ping` is answered, and any other server request
//! is refused, as Portico's client offers no capability a server could ask for. After the
//! answer, the stream is read to its end, so that its connection serves the next request.
//!
//! A route is closed with its connection ([`DirectRoute::close`], when the process stops): a
//! request in flight on it ends at once with [`DirectError::Closed`], as one waiting in rmcp's
//! client does when its service is cancelled, and so does the reading of a stream's end. An
//! upstream that does not answer cannot hold a graceful stop open.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, EmptyResult, ErrorData, ProtocolVersion, RequestId,
    ServerJsonRpcMessage, ServerNotification, ServerRequest, ServerResult,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use tokio_util::sync::CancellationToken;

use super::http_client::{self, BodyError};
use super::sse::{self, SseTransportError};
use crate::ssrf::UpstreamPolicy;

/// The session a connection's handshake opened, as rmcp's client sends it on every request after
/// the handshake: known from the client's second request (its `notifications/initialized`);
/// `None` inside for a server without sessions.
#[derive(Debug, Default)]
pub(super) struct SeenSession {
    posts: AtomicUsize,
    session: OnceLock<Option<Arc<str>>>,
}

impl SeenSession {
    fn note(&self, session: Option<&Arc<str>>) {
        if self.posts.fetch_add(1, Ordering::Relaxed) > 0 {
            let _ = self.session.set(session.cloned());
        }
    }
}

/// Where and how to post a request on one upstream session.
#[derive(Debug, Clone)]
pub struct DirectRoute {
    /// Parsed once: a POST takes it as it is.
    url: reqwest::Url,
    /// The connection's own headers (its credential).
    headers: HeaderMap,
    /// Every header of a POST on the session, with the version they were built for: built at
    /// the first POST, when the session is known, and copied for each.
    prepared: OnceLock<(ProtocolVersion, HeaderMap)>,
    session: Arc<SeenSession>,
    /// The largest event of an event stream, and the largest JSON body, in bytes.
    limits: (usize, usize),
    policy: UpstreamPolicy,
    connect_timeout: Duration,
    /// Requests posted directly and not yet answered.
    in_flight: Arc<AtomicUsize>,
    /// Cancelled when the connection closes: what is in flight on the route ends.
    closed: CancellationToken,
    /// How long the rest of an answered event stream is read ([`FINISH_WITHIN`]).
    finish_within: Duration,
}

/// A request posted directly, until it is answered.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
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
    /// The connection was closed (the process is stopping) before the answer came.
    #[error("the connection to the upstream was closed")]
    Closed,
}

/// How many requests may be posted directly on one connection at a time: each holds an HTTP
/// connection to the upstream, so this bounds how many a burst opens on this route.
pub const MAX_IN_FLIGHT: usize = 64;

/// The ids of requests posted directly: strings, which rmcp's client (numbers) never uses.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl DirectRoute {
    pub(super) fn new(
        url: &url::Url,
        headers: HeaderMap,
        session: Arc<SeenSession>,
        limits: (usize, usize),
        policy: UpstreamPolicy,
        connect_timeout: Duration,
    ) -> Self {
        DirectRoute {
            url: url.clone(),
            headers,
            prepared: OnceLock::new(),
            session,
            limits,
            policy,
            connect_timeout,
            in_flight: Arc::default(),
            closed: CancellationToken::new(),
            finish_within: FINISH_WITHIN,
        }
    }

    /// Closes the route with its connection: requests in flight on it end with
    /// [`DirectError::Closed`], and so does any later one.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Claims the route for one request if fewer than [`MAX_IN_FLIGHT`] are in flight on it.
    pub fn claim(&self) -> Option<InFlight> {
        self.in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < MAX_IN_FLIGHT).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(Arc::clone(&self.in_flight)))
    }

    /// Whether a request on a session of `version` can be posted directly: once the handshake
    /// is over, and on revisions before the standard request headers (SEP-2243),
    /// which rmcp's client derives from each request and the upstream's tool schemas.
    pub fn serves(&self, version: &ProtocolVersion) -> bool {
        self.session.session.get().is_some() && version < &ProtocolVersion::STANDARD_HEADERS
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
        tokio::select! {
            biased;
            () = self.closed.cancelled() => Err(DirectError::Closed),
            // Boxed once here rather than carried (and copied) by each future up the request
            // path: the HTTP exchange's future is about 4 kB (see `Upstreams::connect_slot`).
            answer = Box::pin(self.exchange(id, request, version, list_changed)) => answer,
        }
    }

    async fn exchange(
        &self,
        id: RequestId,
        request: ClientRequest,
        version: &ProtocolVersion,
        list_changed: impl Fn(),
    ) -> Result<Result<ServerResult, ErrorData>, DirectError> {
        let client = http_client::thread_client(self.policy, self.connect_timeout)
            .map_err(|e| DirectError::Transport(format!("no HTTP client: {e}")))?;
        let call = matches!(request, ClientRequest::CallToolRequest(_));
        let read = |data: &[u8]| {
            if call {
                crate::message::read_call_answer(data)
            } else {
                serde_json::from_slice::<ServerJsonRpcMessage>(data)
            }
        };
        let message = ClientJsonRpcMessage::request(request, id.clone());
        let mut events = match self.post(&client, &message, version, read).await? {
            Posted::Message(message) => {
                return answer_to(message, &id)
                    .ok_or_else(|| unexpected("a JSON answer for another request"));
            }
            Posted::Events(events) => events,
            Posted::Nothing(status) => {
                return Err(unexpected(&format!("`{status}` for a request")));
            }
        };
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| transport(&e))?;
            let Some(data) = event.data.filter(|data| !data.is_empty()) else { continue };
            let message = read(data.as_bytes())
                .map_err(|e| unexpected(&format!("an event that is not JSON-RPC: {e}")))?;
            match message {
                ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_) => {
                    if let Some(answer) = answer_to(message, &id) {
                        finish(events, self.finish_within, self.closed.clone());
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
                    // What the server answers to a reply (`202 Accepted`, as MCP asks) is not
                    // read.
                    self.post(&client, &reply, version, read).await?;
                }
            }
        }
        Err(DirectError::Transport("the upstream's event stream ended before the answer".into()))
    }

    /// POSTs `message` on the session and takes what the upstream answered: a JSON body, read
    /// with `read`, or the start of an event stream. Failures are told apart as rmcp's client
    /// tells them: a failure's JSON body that is a JSON-RPC error is that error, the request's
    /// answer, except after `401`, `403` and `429`, which are about the way to the server, not
    /// the request; any other failure (`404`: the session is gone) is the transport's.
    async fn post(
        &self,
        client: &reqwest::Client,
        message: &ClientJsonRpcMessage,
        version: &ProtocolVersion,
        read: impl Fn(&[u8]) -> serde_json::Result<ServerJsonRpcMessage>,
    ) -> Result<Posted, DirectError> {
        let body = serde_json::to_vec(message).map_err(|e| transport(&e))?;
        let response = client
            .post(self.url.clone())
            .headers(self.headers(version))
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
            return Ok(Posted::Nothing(status));
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let is = |media_type: &str| {
            content_type.as_ref().is_some_and(|value| is_media_type(value, media_type))
        };
        if !status.is_success() {
            let about_the_way = matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
            );
            if is(JSON)
                && !about_the_way
                && let Ok(body) = read_body(response, self.limits.1).await
                && let Ok(error @ ServerJsonRpcMessage::Error(_)) = serde_json::from_slice(&body)
            {
                return Ok(Posted::Message(error));
            }
            return Err(DirectError::Transport(match status {
                StatusCode::NOT_FOUND => "the upstream's session is gone (HTTP 404)".to_owned(),
                _ => format!("the upstream answered HTTP {status}"),
            }));
        }
        if is(EVENT_STREAM) {
            return Ok(Posted::Events(sse::event_stream(response, self.limits.0)));
        }
        if is(JSON) {
            let body = read_body(response, self.limits.1).await?;
            return read(&body)
                .map(Posted::Message)
                .map_err(|e| unexpected(&format!("a JSON body that is not JSON-RPC: {e}")));
        }
        Err(DirectError::Transport(format!(
            "the upstream answered with content type {}, neither JSON nor an event stream",
            content_type.map_or_else(|| "(none)".to_owned(), |value| format!("{value:?}")),
        )))
    }

    /// The headers of a POST on the session at `version`: the connection's own, then those
    /// rmcp's client sends on the session.
    fn headers(&self, version: &ProtocolVersion) -> HeaderMap {
        if let Some((built_for, headers)) = self.prepared.get()
            && built_for == version
        {
            return headers.clone();
        }
        let mut headers = self.headers.clone();
        let accept = const { HeaderValue::from_static("text/event-stream, application/json") };
        headers.insert(header::ACCEPT, accept);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        if let Some(session) = self.session.session.get().cloned().flatten()
            && let Ok(value) = HeaderValue::from_str(&session)
        {
            headers.insert(HeaderName::from_static("mcp-session-id"), value);
        }
        if let Ok(value) = HeaderValue::from_str(version.as_str()) {
            headers.insert(HeaderName::from_static("mcp-protocol-version"), value);
        }
        let _ = self.prepared.set((version.clone(), headers.clone()));
        headers
    }
}

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// What an upstream answered to a POST.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per POST and taken apart at once; boxing would cost an allocation"
)]
enum Posted {
    /// No content (`202 Accepted` or `204 No Content`).
    Nothing(StatusCode),
    /// A JSON body: one message.
    Message(ServerJsonRpcMessage),
    /// An event stream.
    Events(AnswerEvents),
}

/// The events of an upstream's answer.
type AnswerEvents = BoxStream<'static, Result<sse_stream::Sse, SseTransportError>>;

/// Whether a `Content-Type` value names `media_type`, parameters and case aside.
fn is_media_type(value: &HeaderValue, media_type: &str) -> bool {
    let value = value.as_bytes();
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    value[..end].trim_ascii().eq_ignore_ascii_case(media_type.as_bytes())
}

/// A JSON body of at most `max` bytes.
async fn read_body(response: reqwest::Response, max: usize) -> Result<Vec<u8>, DirectError> {
    http_client::bounded_body(response, max).await.map_err(|e| match e {
        BodyError::TooLarge => unexpected(&format!("a JSON body of more than {max} bytes")),
        BodyError::Read(e) => transport(&e),
    })
}

/// How long the rest of an answered event stream is read, so that its connection can serve
/// the next request, before it is dropped (and the connection with it). Whatever it still
/// carries is not the request's: the request is answered.
const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// Reads what is left of an answered event stream: the server closes it after the answer,
/// and only a response read to its end gives its connection back to the pool. Usually the end
/// has already arrived with the answer; otherwise a task waits for it, within
/// `within` ([`FINISH_WITHIN`]) and until the route is `closed`.
fn finish(mut events: AnswerEvents, within: Duration, closed: CancellationToken) {
    for _ in 0..16 {
        match events.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let rest = async { while events.next().await.is_some() {} };
        tokio::select! {
            _ = tokio::time::timeout(within, rest) => {}
            () = closed.cancelled() => {}
        }
    });
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
    pub(super) session: Arc<SeenSession>,
}

impl SessionClient {
    fn note(&self, session: Option<&Arc<str>>) {
        self.session.note(session);
    }
}

type RmcpPosted = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;
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
    ) -> impl Future<Output = RmcpPosted> + Send + '_ {
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
    ) -> impl Future<Output = RmcpPosted> + Send + '_ {
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
    ) -> impl Future<Output = RmcpPosted> + Send + '_ {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use rmcp::model::CallToolRequestParams;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    // The upstream here is a scripted HTTP peer, not a real MCP server: the point is the exact
    // sequences of a session's event stream (a server's ping and list change before the answer,
    // a stream cut short, a broken event), which no real server can be made to send on demand.
    // Real servers answer directly posted calls in the front end's and the end-to-end tests.

    /// Answers the n-th request with `answers[n]` (status line, content type, body) and records
    /// each request (head lowercased, then body); also counts the connections it accepted.
    async fn scripted(
        answers: Vec<(&'static str, &'static str, String)>,
    ) -> (u16, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let recorded = Arc::clone(&seen);
        let next = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(answers);
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (recorded, next, answers) =
                    (Arc::clone(&recorded), Arc::clone(&next), Arc::clone(&answers));
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let n = socket.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < head_end + length {
                            let n = socket.read(&mut chunk).await.unwrap();
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]);
                        recorded.lock().unwrap().push(format!("{head}{body}"));
                        buf.drain(..head_end + length);
                        let (status, kind, body) = &answers[next.fetch_add(1, Ordering::SeqCst)];
                        // A body is sent in parts, 100 ms apart, where it says `PAUSE`.
                        let parts: Vec<&str> = body.split(PAUSE).collect();
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
                            parts.iter().map(|p| p.len()).sum::<usize>()
                        );
                        socket.write_all(answer.as_bytes()).await.unwrap();
                        for (i, part) in parts.iter().enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            socket.write_all(part.as_bytes()).await.unwrap();
                        }
                    }
                });
            }
        });
        (port, seen, connections)
    }

    const PAUSE: &str = "PAUSE";

    fn route(port: u16) -> DirectRoute {
        let session = Arc::new(SeenSession::default());
        session.note(None);
        session.note(Some(&Arc::from("upstream-session")));
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer upstream-credential"),
        );
        DirectRoute::new(
            &url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap(),
            headers,
            session,
            (1 << 20, 1 << 20),
            UpstreamPolicy { allow_private: true },
            Duration::from_secs(2),
        )
    }

    fn call() -> ClientRequest {
        ClientRequest::CallToolRequest(rmcp::model::Request::new(CallToolRequestParams::new(
            "echo",
        )))
    }

    fn event(message: serde_json::Value) -> String {
        format!("data: {message}\n\n")
    }

    const V: ProtocolVersion = ProtocolVersion::V_2025_11_25;

    #[tokio::test]
    async fn an_event_streams_ping_and_list_change_are_handled_before_its_answer() {
        let id = RequestId::String("portico-test-1".into());
        let stream = [
            event(json!({"jsonrpc": "2.0", "id": 7, "method": "ping"})),
            event(json!({"jsonrpc": "2.0", "id": 8, "method": "sampling/createMessage",
                         "params": {"messages": [], "maxTokens": 1}})),
            event(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})),
            event(json!({"jsonrpc": "2.0", "id": "someone-else", "result": {}})),
            event(json!({"jsonrpc": "2.0", "id": "portico-test-1",
                         "result": {"content": [{"type": "text", "text": "hi"}]}})),
        ]
        .concat();
        let (port, seen, _) = scripted(vec![
            ("200 OK", "text/event-stream", stream),
            ("202 Accepted", "application/json", String::new()),
            ("202 Accepted", "application/json", String::new()),
        ])
        .await;
        let changed = AtomicUsize::new(0);
        let answer = route(port)
            .request(id, call(), &V, || {
                changed.fetch_add(1, Ordering::SeqCst);
            })
            .await
            .unwrap()
            .unwrap();
        let ServerResult::CallToolResult(result) = answer else { panic!("{answer:?}") };
        assert_eq!(result.content[0].as_text().unwrap().text, "hi");
        assert_eq!(changed.load(Ordering::SeqCst), 1);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        for request in seen.iter() {
            assert!(request.starts_with("post /mcp "), "{request}");
            assert!(request.contains("mcp-session-id: upstream-session"), "{request}");
            assert!(request.contains("mcp-protocol-version: 2025-11-25"), "{request}");
            assert!(request.contains("authorization: bearer upstream-credential"), "{request}");
        }
        assert!(seen[0].contains(r#""method":"tools/call""#), "{}", seen[0]);
        assert!(seen[0].contains(r#""id":"portico-test-1""#), "{}", seen[0]);
        // The ping is answered; the request for a capability Portico does not offer is refused.
        let body = |request: &str| -> serde_json::Value {
            serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap()
        };
        assert_eq!(body(&seen[1]), json!({"jsonrpc": "2.0", "id": 7, "result": {}}));
        assert_eq!(body(&seen[2])["id"], 8);
        assert_eq!(body(&seen[2])["error"]["code"], -32601);
    }

    #[tokio::test]
    async fn a_json_answer_and_an_error_answer_come_back_as_they_are() {
        let (port, _, _) = scripted(vec![
            (
                "200 OK",
                "application/json",
                json!({"jsonrpc": "2.0", "id": "portico-test-2",
                       "result": {"content": [{"type": "text", "text": "json"}]}})
                .to_string(),
            ),
            (
                "200 OK",
                "application/json",
                json!({"jsonrpc": "2.0", "id": "portico-test-3",
                       "error": {"code": -32602, "message": "no such tool"}})
                .to_string(),
            ),
        ])
        .await;
        let route = route(port);
        let first = RequestId::String("portico-test-2".into());
        let answer = route.request(first, call(), &V, || {}).await.unwrap().unwrap();
        assert!(matches!(answer, ServerResult::CallToolResult(_)), "{answer:?}");
        let second = RequestId::String("portico-test-3".into());
        let error = route.request(second, call(), &V, || {}).await.unwrap().unwrap_err();
        assert_eq!((error.code.0, error.message.as_ref()), (-32602, "no such tool"));
    }

    /// Which of a request's failures ([`DirectError`]) a test expects.
    #[derive(Debug, PartialEq)]
    enum Failure {
        Transport,
        Unexpected,
    }

    /// Posts a call as `id` on `route`, which is to fail with `failure` saying `says`.
    async fn fails(route: &DirectRoute, id: &str, failure: Failure, says: &str) {
        let request = route.request(RequestId::String(id.to_owned().into()), call(), &V, || {});
        let error = request.await.unwrap_err();
        let (kind, text) = match &error {
            DirectError::Transport(text) => (Failure::Transport, text),
            DirectError::Unexpected(text) => (Failure::Unexpected, text),
            DirectError::Closed => panic!("{error}"),
        };
        assert!(kind == failure && text.contains(says), "{id}: {error}");
    }

    #[tokio::test]
    async fn a_failed_session_or_stream_is_a_transport_error_and_nonsense_is_unexpected() {
        let cut_short = event(json!({"jsonrpc": "2.0", "method": "notifications/message",
                                     "params": {"level": "info", "data": "working"}}));
        let (port, _, _) = scripted(vec![
            ("404 Not Found", "text/plain", "gone".into()),
            ("200 OK", "text/event-stream", cut_short),
            ("200 OK", "text/event-stream", "data: not json\n\n".into()),
            ("202 Accepted", "application/json", String::new()),
        ])
        .await;
        let route = route(port);
        let id = "portico-test-4";
        fails(&route, id, Failure::Transport, "session is gone").await;
        fails(&route, id, Failure::Transport, "ended before").await;
        fails(&route, id, Failure::Unexpected, "not JSON-RPC").await;
        fails(&route, id, Failure::Unexpected, "202 Accepted").await;
    }

    #[tokio::test]
    async fn a_failure_is_the_requests_answer_only_when_its_json_body_is_a_json_rpc_error() {
        let rpc_error = |id: &str| {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "busy"}})
                .to_string()
        };
        let (port, _, _) = scripted(vec![
            ("500 Internal Server Error", "application/json; charset=utf-8", rpc_error("p-1")),
            ("500 Internal Server Error", "text/plain", "it broke".into()),
            ("500 Internal Server Error", "application/json", r#"{"detail": "broke"}"#.into()),
            ("401 Unauthorized", "application/json", rpc_error("p-4")),
            ("429 Too Many Requests", "application/json", rpc_error("p-5")),
        ])
        .await;
        let route = route(port);
        let first = RequestId::String("p-1".into());
        let error = route.request(first, call(), &V, || {}).await.unwrap().unwrap_err();
        assert_eq!((error.code.0, error.message.as_ref()), (-32000, "busy"));
        for (id, status) in [("p-2", "500"), ("p-3", "500"), ("p-4", "401"), ("p-5", "429")] {
            fails(&route, id, Failure::Transport, &format!("HTTP {status}")).await;
        }
    }

    #[tokio::test]
    async fn a_json_body_is_bounded_and_an_answer_of_another_type_is_refused() {
        let answer = json!({"jsonrpc": "2.0", "id": "p-1",
                            "result": {"content": [{"type": "text", "text": "x".repeat(100)}]}})
        .to_string();
        let (port, seen, _) = scripted(vec![
            ("200 OK", "Application/JSON ; charset=utf-8", answer.clone()),
            ("200 OK", "application/json", answer),
            ("200 OK", "application/json", r#"{"hello": "world"}"#.into()),
            ("200 OK", "text/html", "<html></html>".into()),
        ])
        .await;
        let mut route = route(port);
        let first = RequestId::String("p-1".into());
        let answer = route.request(first, call(), &V, || {}).await.unwrap().unwrap();
        assert!(matches!(answer, ServerResult::CallToolResult(_)), "{answer:?}");
        route.limits.1 = 64;
        fails(&route, "p-1", Failure::Unexpected, "more than 64 bytes").await;
        route.limits.1 = 1 << 20;
        fails(&route, "p-1", Failure::Unexpected, "not JSON-RPC").await;
        fails(&route, "p-1", Failure::Transport, "\"text/html\"").await;
        let seen = seen.lock().unwrap();
        assert!(seen[0].contains("accept: text/event-stream, application/json"), "{}", seen[0]);
        assert!(seen[0].contains("content-type: application/json"), "{}", seen[0]);
    }

    #[test]
    fn only_a_session_before_the_standard_headers_is_served_directly() {
        let session = Arc::new(SeenSession::default());
        let url = url::Url::parse("http://127.0.0.1:1/mcp").unwrap();
        let policy = UpstreamPolicy { allow_private: true };
        let route = DirectRoute::new(
            &url,
            HeaderMap::new(),
            Arc::clone(&session),
            (1, 1),
            policy,
            Duration::from_secs(1),
        );
        assert!(!route.serves(&V), "no handshake yet");
        session.note(None);
        assert!(!route.serves(&V), "only `initialize` was posted");
        // A server without sessions: the handshake's second request carries none.
        session.note(None);
        assert!(route.serves(&V));
        assert!(route.serves(&ProtocolVersion::V_2025_06_18));
        assert!(!route.serves(&ProtocolVersion::STANDARD_HEADERS));
    }

    #[tokio::test]
    async fn an_answered_event_streams_connection_serves_the_next_request() {
        // The answer is followed, later, by an event for no one: the stream is read to its end
        // anyway, so that its connection goes back to the pool.
        let stream = [
            event(json!({"jsonrpc": "2.0", "id": "portico-test-5", "result": {"content": []}})),
            PAUSE.to_owned(),
            event(json!({"jsonrpc": "2.0", "method": "notifications/message",
                         "params": {"level": "info", "data": "after the answer"}})),
        ]
        .concat();
        let (port, seen, connections) = scripted(vec![
            ("200 OK", "text/event-stream", stream),
            (
                "200 OK",
                "application/json",
                json!({"jsonrpc": "2.0", "id": "portico-test-6", "result": {"content": []}})
                    .to_string(),
            ),
        ])
        .await;
        let route = route(port);
        for id in ["portico-test-5", "portico-test-6"] {
            // By the second request, the first stream has ended.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let id = RequestId::String(id.into());
            let answer = route.request(id, call(), &V, || {}).await.unwrap().unwrap();
            assert!(matches!(answer, ServerResult::CallToolResult(_)), "{answer:?}");
        }
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "the second request needed a new connection"
        );
    }

    /// An upstream that reads one request, sends `head` (nothing, or the start of an answer
    /// that never ends) and then holds the connection open: it sends `true` on the returned
    /// channel once it has the request, and `false` once Portico has closed the connection.
    async fn holding(head: String) -> (u16, tokio::sync::mpsc::UnboundedReceiver<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tell, told) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut chunk = [0u8; 4096];
            while !String::from_utf8_lossy(&received).contains("tools/call") {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the request was cut short");
                received.extend_from_slice(&chunk[..n]);
            }
            tell.send(true).unwrap();
            socket.write_all(head.as_bytes()).await.unwrap();
            while socket.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
            let _ = tell.send(false);
        });
        (port, told)
    }

    /// How long a test waits for what should follow a close at once; only a hang reaches it.
    const HANG: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn a_closed_route_ends_the_request_in_flight_and_refuses_the_next() {
        let (port, mut upstream) = holding(String::new()).await;
        let route = route(port);
        let in_flight = {
            let route = route.clone();
            let id = RequestId::String("portico-test-7".into());
            tokio::spawn(async move { route.request(id, call(), &V, || {}).await })
        };
        assert_eq!(upstream.recv().await, Some(true), "the upstream got the request");
        route.close();
        let ended = tokio::time::timeout(HANG, in_flight)
            .await
            .expect("the request in flight ended when its route closed")
            .unwrap();
        assert!(matches!(ended, Err(DirectError::Closed)), "{ended:?}");
        assert_eq!(
            tokio::time::timeout(HANG, upstream.recv()).await.unwrap(),
            Some(false),
            "the upstream connection was closed"
        );
        let id = RequestId::String("portico-test-8".into());
        let next = route.request(id, call(), &V, || {}).await;
        assert!(matches!(next, Err(DirectError::Closed)), "{next:?}");
    }

    #[tokio::test]
    async fn a_closed_route_stops_reading_an_answered_stream_that_does_not_end() {
        // The answer comes on an event stream the upstream never ends: the rest is read in
        // the background (for the connection's reuse) until the route closes.
        let answer = event(json!({"jsonrpc": "2.0", "id": "portico-test-9", "result": {}}));
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
             transfer-encoding: chunked\r\n\r\n{:x}\r\n{answer}\r\n",
            answer.len()
        );
        let (port, mut upstream) = holding(head).await;
        // Longer than the test waits: only the close can end the reading.
        let route = DirectRoute { finish_within: HANG * 10, ..route(port) };
        let id = RequestId::String("portico-test-9".into());
        let answered = route.request(id, call(), &V, || {}).await.unwrap().unwrap();
        assert!(matches!(answered, ServerResult::EmptyResult(_)), "{answered:?}");
        assert_eq!(upstream.recv().await, Some(true));
        // Still read: the connection stays open until the close.
        assert!(upstream.try_recv().is_err(), "the stream was dropped before its end");
        route.close();
        assert_eq!(
            tokio::time::timeout(HANG, upstream.recv()).await.unwrap(),
            Some(false),
            "the upstream connection was closed with the route"
        );
    }

    #[test]
    fn a_route_is_claimed_by_at_most_its_limit_of_requests_at_a_time() {
        let route = route(9);
        let mut claims: Vec<InFlight> = (0..MAX_IN_FLIGHT - 1)
            .map(|n| route.claim().unwrap_or_else(|| panic!("claim {n} of {MAX_IN_FLIGHT}")))
            .collect();
        claims.push(route.clone().claim().expect("a clone shares the route's count"));
        assert!(route.claim().is_none(), "one more than the limit");
        assert!(route.clone().claim().is_none(), "one more than the limit, on a clone");
        claims.pop();
        assert!(route.claim().is_some(), "an answered request frees its place");
    }
}
