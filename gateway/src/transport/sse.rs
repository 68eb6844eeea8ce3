//! The legacy HTTP+SSE transport (MCP 2024-11-05) as an rmcp client transport.
//!
//! rmcp 3.11 has no client for it. The flow: GET the SSE URL with
//! `Accept: text/event-stream`, wait for the `endpoint` event (a URL relative to the SSE URL,
//! which must stay on the same origin), then POST each client message to that endpoint while
//! server messages arrive as `message` events on the GET stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::{HeaderMap, StatusCode, header};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::{Sse, SseStream};
use url::Url;

use crate::ssrf::redact_url;

/// The largest single SSE event accepted, in bytes (as rmcp's streamable client).
pub const MAX_SSE_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// Why the legacy SSE transport failed.
#[derive(Debug, thiserror::Error)]
pub enum SseTransportError {
    /// The HTTP request failed (connect, TLS, timeout, reset).
    #[error("{context}: {source}")]
    Http {
        context: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The upstream answered with a non-success status.
    #[error("{context}: upstream answered HTTP {status}")]
    Status { context: &'static str, status: StatusCode },
    /// The SSE GET answered with something other than an event stream.
    #[error("the SSE endpoint answered with content type `{0}`, not `text/event-stream`")]
    NotEventStream(String),
    /// The stream ended, or failed, before the `endpoint` event.
    #[error("the SSE stream ended before the `endpoint` event")]
    NoEndpoint,
    /// The `endpoint` event did not arrive in time.
    #[error("no `endpoint` event within {0:?}")]
    EndpointTimeout(Duration),
    /// The `endpoint` event is not a URL, or points at another origin.
    #[error("the SSE `endpoint` event {0}")]
    BadEndpoint(String),
    /// One SSE event exceeded [`MAX_SSE_EVENT_SIZE`] (or the configured limit).
    #[error("an SSE event exceeded the maximum size of {0} bytes")]
    EventTooLarge(usize),
    /// The event stream could not be parsed.
    #[error("malformed SSE stream: {0}")]
    Malformed(String),
    /// A client message could not be serialized.
    #[error("could not serialize a client message: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl SseTransportError {
    /// The HTTP status the upstream answered, if that is the failure.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            SseTransportError::Status { status, .. } => Some(*status),
            SseTransportError::Http { source, .. } => source.status(),
            _ => None,
        }
    }
}

/// A client transport speaking the legacy HTTP+SSE protocol.
pub struct SseClientTransport {
    client: reqwest::Client,
    headers: HeaderMap,
    post_url: Url,
    post_timeout: Duration,
    events: Option<BoxStream<'static, Result<Sse, SseTransportError>>>,
}

impl std::fmt::Debug for SseClientTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseClientTransport").field("post_url", &redact_url(&self.post_url)).finish()
    }
}

impl SseClientTransport {
    /// Opens the event stream at `sse_url` and waits, at most `timeout`, for the `endpoint`
    /// event. `headers` go on the GET and every POST; each POST is bounded by `timeout` too.
    pub async fn connect(
        client: reqwest::Client,
        sse_url: Url,
        headers: HeaderMap,
        timeout: Duration,
        max_event_size: usize,
    ) -> Result<Self, SseTransportError> {
        tokio::time::timeout(timeout, Self::open(client, sse_url, headers, timeout, max_event_size))
            .await
            .unwrap_or(Err(SseTransportError::EndpointTimeout(timeout)))
    }

    async fn open(
        client: reqwest::Client,
        sse_url: Url,
        headers: HeaderMap,
        post_timeout: Duration,
        max_event_size: usize,
    ) -> Result<Self, SseTransportError> {
        let context = "GET of the SSE stream";
        let response = client
            .get(sse_url.clone())
            .headers(headers.clone())
            .header(header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|source| SseTransportError::Http { context, source })?;
        let status = response.status();
        if !status.is_success() {
            return Err(SseTransportError::Status { context, status });
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !content_type.trim_start().to_ascii_lowercase().starts_with("text/event-stream") {
            return Err(SseTransportError::NotEventStream(content_type));
        }
        let mut events = event_stream(response, max_event_size);
        loop {
            let event = events.next().await.ok_or(SseTransportError::NoEndpoint)??;
            if event.event.as_deref() == Some("endpoint") {
                let post_url = endpoint_url(&sse_url, event.data.as_deref().unwrap_or_default())?;
                tracing::debug!(endpoint = %redact_url(&post_url), "legacy SSE endpoint received");
                return Ok(Self { client, headers, post_url, post_timeout, events: Some(events) });
            }
        }
    }

    /// Where client messages are POSTed.
    pub fn post_url(&self) -> &Url {
        &self.post_url
    }
}

/// Resolves the `endpoint` event's data against the SSE URL, on the same origin only: the
/// credential headers must not follow an endpoint to another host.
fn endpoint_url(sse_url: &Url, data: &str) -> Result<Url, SseTransportError> {
    let endpoint = sse_url
        .join(data.trim())
        .map_err(|e| SseTransportError::BadEndpoint(format!("is not a URL: {e}")))?;
    if endpoint.origin() != sse_url.origin() {
        return Err(SseTransportError::BadEndpoint(format!(
            "points at another origin ({}); Portico posts only to the SSE stream's origin",
            endpoint.origin().ascii_serialization()
        )));
    }
    Ok(endpoint)
}

/// The events of `response`'s body, none of them longer than `max_event_size` bytes.
pub(super) fn event_stream(
    response: reqwest::Response,
    max_event_size: usize,
) -> BoxStream<'static, Result<Sse, SseTransportError>> {
    let bounded = BoundedEvents::new(Box::pin(response.bytes_stream()), max_event_size);
    SseStream::from_bytes_stream(bounded)
        .map(move |item| item.map_err(|e| sse_error(e, max_event_size)))
        .boxed()
}

fn sse_error(error: sse_stream::Error, max_event_size: usize) -> SseTransportError {
    match error {
        sse_stream::Error::Body(body) => match body.downcast::<BodyError>().map(|body| *body) {
            Ok(BodyError::EventTooLarge) => SseTransportError::EventTooLarge(max_event_size),
            Ok(BodyError::Http(source)) => {
                SseTransportError::Http { context: "reading the SSE stream", source }
            }
            Err(other) => SseTransportError::Malformed(other.to_string()),
        },
        other => SseTransportError::Malformed(other.to_string()),
    }
}

impl Transport<RoleClient> for SseClientTransport {
    type Error = SseTransportError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let request = serde_json::to_vec(&item).map(|body| {
            self.client
                .post(self.post_url.clone())
                .headers(self.headers.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .timeout(self.post_timeout)
                .body(body)
        });
        async move {
            let context = "POST of a client message";
            let response = request?
                .send()
                .await
                .map_err(|source| SseTransportError::Http { context, source })?;
            let status = response.status();
            if !status.is_success() {
                return Err(SseTransportError::Status { context, status });
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        // INVARIANT: the only await is `next()` on the stream, so dropping this future (rmcp
        // selects over it) never loses an event.
        let events = self.events.as_mut()?;
        loop {
            match events.next().await {
                None => {
                    tracing::debug!("legacy SSE stream ended");
                    self.events = None;
                    return None;
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "legacy SSE stream failed; closing the transport");
                    self.events = None;
                    return None;
                }
                Some(Ok(event)) => match event.event.as_deref() {
                    None | Some("message") => {
                        let data = event.data.unwrap_or_default();
                        match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                            Ok(message) => return Some(message),
                            Err(error) => {
                                tracing::warn!(%error, "skipping an SSE message that is not JSON-RPC")
                            }
                        }
                    }
                    Some(other) => tracing::debug!(event = other, "skipping SSE event"),
                },
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.events = None;
        Ok(())
    }
}

/// Why the event stream's body stopped.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("an SSE event exceeded the maximum size")]
    EventTooLarge,
    #[error(transparent)]
    Http(reqwest::Error),
}

/// Passes the body through, failing once one event (the bytes between two blank lines, line
/// breaks excluded) grows past the limit, so a hostile upstream cannot make us buffer forever.
struct BoundedEvents<S> {
    inner: S,
    max: usize,
    current: usize,
    at_line_start: bool,
    last_cr: bool,
    failed: bool,
}

impl<S> BoundedEvents<S> {
    fn new(inner: S, max: usize) -> Self {
        Self { inner, max, current: 0, at_line_start: true, last_cr: false, failed: false }
    }

    /// Counts `chunk`; false once an event is over the limit.
    fn admit(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            let crlf = self.last_cr && byte == b'\n';
            self.last_cr = byte == b'\r';
            if crlf {
                continue;
            }
            if byte == b'\n' || byte == b'\r' {
                if self.at_line_start {
                    self.current = 0; // a blank line ends the event
                }
                self.at_line_start = true;
            } else {
                self.at_line_start = false;
                self.current += 1;
                if self.current > self.max {
                    return false;
                }
            }
        }
        true
    }
}

impl<S> Stream for BoundedEvents<S>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.admit(&chunk) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    self.failed = true;
                    Poll::Ready(Some(Err(BodyError::EventTooLarge)))
                }
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(BodyError::Http(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(max: usize) -> BoundedEvents<futures::stream::Empty<Result<Bytes, reqwest::Error>>> {
        BoundedEvents::new(futures::stream::empty(), max)
    }

    #[test]
    fn bounded_events_reset_on_blank_lines() {
        let mut c = counter(12);
        assert!(c.admit(b"data: 12345\n\n"));
        assert!(c.admit(b"data: 1234\r\n\r\ndata: 1234\r\r"));
        assert!(c.admit(b"event: x\nda"));
        assert!(!c.admit(b"ta: y\n"), "`event: x` + `data: y` is 15 bytes");
        let mut split = counter(9);
        assert!(split.admit(b"data: 123\r"));
        assert!(split.admit(b"\n\r"));
        assert!(split.admit(b"\ndata: 123\n\n"), "CRLF split across chunks still ends the event");
    }

    #[test]
    fn endpoint_must_stay_on_origin() {
        let sse = Url::parse("http://127.0.0.1:3001/sse").unwrap();
        assert_eq!(
            endpoint_url(&sse, "/message?sessionId=abc").unwrap().as_str(),
            "http://127.0.0.1:3001/message?sessionId=abc"
        );
        assert_eq!(
            endpoint_url(&sse, "http://127.0.0.1:3001/m").unwrap().as_str(),
            "http://127.0.0.1:3001/m"
        );
        for other in [
            "http://evil.example/m",
            "https://127.0.0.1:3001/m",
            "http://127.0.0.1:3002/m",
            "//evil.example/m",
        ] {
            assert!(
                matches!(endpoint_url(&sse, other), Err(SseTransportError::BadEndpoint(_))),
                "{other}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_event_fails_clearly() {
        let body = futures::stream::iter(vec![
            Ok::<_, reqwest::Error>(Bytes::from_static(b"event: endpoint\ndata: /m\n\n")),
            Ok(Bytes::from(format!("data: {}\n\n", "x".repeat(64)))),
        ]);
        let mut events = SseStream::from_bytes_stream(BoundedEvents::new(body, 32))
            .map(|item| item.map_err(|e| sse_error(e, 32)));
        assert_eq!(events.next().await.unwrap().unwrap().event.as_deref(), Some("endpoint"));
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, SseTransportError::EventTooLarge(32)), "{err}");
        assert_eq!(err.to_string(), "an SSE event exceeded the maximum size of 32 bytes");
    }
}
