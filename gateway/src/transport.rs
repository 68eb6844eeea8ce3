//! Connecting to an upstream MCP server with rmcp's client.
//!
//! [`connect`] picks the transport as the product does (spec §1.6): a URL ending in `/mcp`
//! speaks streamable HTTP only; one ending in `/sse` speaks the legacy HTTP+SSE transport
//! (streamable HTTP when the server is routed through the Secure Web Gateway, which supports
//! nothing else); any other URL tries streamable HTTP on the URL, SSE on the URL, streamable
//! HTTP on `url/mcp`, then SSE on `url/sse`, moving on only after HTTP 404, 405 or 406.
//!
//! Every attempt goes through the shared upstream client ([`http_client`]): SSRF-checked DNS,
//! no redirects, no proxy, pooled connections. The handshake offers MCP `2025-11-25` and
//! accepts whatever older version the server answers with (`2025-06-18`, and `2024-11-05` for
//! legacy SSE servers).

mod credentials;
mod direct;
mod error;
pub mod http_client;
pub mod sse;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ProtocolVersion, ServerJsonRpcMessage};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use url::Url;

pub use credentials::{CredentialError, UpstreamAuth, credential_headers};
pub use direct::{DirectError, DirectRoute};
pub use error::ConnectError;
pub use sse::{MAX_SSE_EVENT_SIZE, SseClientTransport, SseTransportError};

use crate::ssrf::{UpstreamPolicy, redact_url};

/// The MCP version Portico offers in `initialize`.
pub const OFFERED_PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// Where and how to reach one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// The server's `hostname`: the full URL of its MCP endpoint.
    pub url: Url,
    /// Sent with every request; built by [`UpstreamTarget::credential_headers`].
    pub headers: HeaderMap,
    /// The server's `secure_web_gateway` flag.
    pub secure_web_gateway: bool,
}

impl UpstreamTarget {
    /// A target for `url` presenting `auth`.
    pub fn new(
        url: Url,
        auth: UpstreamAuth<'_>,
        secure_web_gateway: bool,
    ) -> Result<Self, CredentialError> {
        Ok(Self { url, headers: Self::credential_headers(auth)?, secure_web_gateway })
    }

    /// The headers carrying a stored credential; see [`UpstreamAuth`].
    pub fn credential_headers(auth: UpstreamAuth<'_>) -> Result<HeaderMap, CredentialError> {
        credential_headers(auth)
    }
}

/// Limits and policy for connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Bounds establishing one TCP (+TLS) connection.
    pub connect_timeout: Duration,
    /// Bounds each attempt's whole handshake (connect, `initialize`, its answer), and each
    /// legacy-SSE POST. Requests after the handshake take their own deadlines.
    pub request_timeout: Duration,
    /// Which addresses may be connected to.
    pub policy: UpstreamPolicy,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            policy: UpstreamPolicy::default(),
        }
    }
}

/// The wire transport of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Streamable HTTP (2025-03-26 and later).
    StreamableHttp,
    /// HTTP+SSE (2024-11-05).
    LegacySse,
}

impl TransportKind {
    fn label(self) -> &'static str {
        match self {
            TransportKind::StreamableHttp => "streamable HTTP",
            TransportKind::LegacySse => "SSE",
        }
    }
}

/// A live, initialized connection to an upstream.
#[derive(Debug)]
pub struct Connected<H: ClientHandler> {
    /// The rmcp client: `service.peer()` sends requests, `service.cancel()` closes it.
    pub service: RunningService<RoleClient, H>,
    /// The transport that answered.
    pub transport: TransportKind,
    /// The URL that answered (the target URL, or it with `/mcp` or `/sse` appended).
    pub url: Url,
    /// How a request is posted on the upstream's session without rmcp's client (streamable
    /// HTTP only).
    pub direct: Option<DirectRoute>,
}

impl<H: ClientHandler> Connected<H> {
    /// The MCP version the server chose.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.service.peer().peer_info().map(|info| info.protocol_version.clone())
    }
}

/// The attempts for `url`, in order (spec §1.6).
pub fn strategies(url: &Url, secure_web_gateway: bool) -> Vec<(TransportKind, Url)> {
    use TransportKind::{LegacySse, StreamableHttp};
    let path = url.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.ends_with("/mcp") {
        return vec![(StreamableHttp, url.clone())];
    }
    if path.ends_with("/sse") {
        let kind = if secure_web_gateway { StreamableHttp } else { LegacySse };
        return vec![(kind, url.clone())];
    }
    vec![
        (StreamableHttp, url.clone()),
        (LegacySse, url.clone()),
        (StreamableHttp, with_segment(url, "mcp")),
        (LegacySse, with_segment(url, "sse")),
    ]
}

/// `url` with `/segment` appended to its path, query kept.
fn with_segment(url: &Url, segment: &str) -> Url {
    let mut joined = url.clone();
    let path = url.path().trim_end_matches('/');
    joined.set_path(&format!("{path}/{segment}"));
    joined
}

/// Connects to `target` and completes the MCP handshake with `handler` as the client.
///
/// The handler is cloned for each attempt, since a failed rmcp handshake consumes it; pass an
/// `Arc` (rmcp implements `ClientHandler` for `Arc<H>`) if cloning is not cheap.
pub async fn connect<H>(
    target: &UpstreamTarget,
    options: &ConnectOptions,
    handler: H,
) -> Result<Connected<H>, ConnectError>
where
    H: ClientHandler + Clone,
{
    if !matches!(target.url.scheme(), "http" | "https") {
        return Err(ConnectError::ssrf(&crate::ssrf::SsrfError::UnsupportedScheme {
            url: redact_url(&target.url),
            scheme: target.url.scheme().to_owned(),
        }));
    }
    // Host names are checked by the client's resolver on every new connection.
    options.policy.check_literal_host(&target.url).map_err(|e| ConnectError::ssrf(&e))?;
    let client = http_client::upstream_client(options.policy, options.connect_timeout)
        .map_err(|e| ConnectError::client_build(&e))?;
    let plan = strategies(&target.url, target.secure_web_gateway);
    let mut tried = Vec::new();
    for (kind, url) in plan {
        let attempt = match kind {
            TransportKind::StreamableHttp => {
                streamable(&client, &url, target, options, handler.clone()).await
            }
            TransportKind::LegacySse => legacy_sse(&client, &url, target, options, handler.clone())
                .await
                .map(|service| (service, None)),
        };
        match attempt {
            Ok((service, direct)) => {
                tracing::debug!(url = %redact_url(&url), transport = kind.label(), "upstream connected");
                return Ok(Connected { service, transport: kind, url, direct });
            }
            Err(error) if error.falls_through() => {
                tracing::debug!(url = %redact_url(&url), transport = kind.label(), status = ?error.status_code, "no MCP endpoint here; trying the next strategy");
                tried.push((kind, url, error));
            }
            Err(error) => return Err(error),
        }
    }
    Err(no_endpoint(&target.url, tried))
}

fn no_endpoint(target: &Url, tried: Vec<(TransportKind, Url, ConnectError)>) -> ConnectError {
    let status_code = tried.last().and_then(|(_, _, e)| e.status_code);
    let attempts: Vec<String> = tried
        .iter()
        .map(|(kind, url, e)| {
            let status = e.status_code.map_or_else(String::new, |s| format!(" answered HTTP {s}"));
            format!("{} on `{}`{status}", kind.label(), redact_url(url))
        })
        .collect();
    ConnectError {
        cause: format!(
            "no MCP endpoint found for `{}`: {}",
            redact_url(target),
            attempts.join("; ")
        ),
        is_upstream: true,
        mcp_code: None,
        retryable: false,
        status_code,
    }
}

async fn streamable<H: ClientHandler>(
    client: &reqwest::Client,
    url: &Url,
    target: &UpstreamTarget,
    options: &ConnectOptions,
    handler: H,
) -> Result<(RunningService<RoleClient, H>, Option<DirectRoute>), ConnectError> {
    // rmcp sends these on every request, GET stream and DELETE included. It takes a map with one
    // value per name; credential headers have unique names.
    let custom_headers: HashMap<_, _> =
        target.headers.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
        .custom_headers(custom_headers)
        .max_sse_event_size(MAX_SSE_EVENT_SIZE);
    // One connection serves every session of the portal: allow many requests in flight (rmcp's
    // default is 16), and results as large as SSE events.
    let mut config = config;
    config.max_concurrent_requests = 1024;
    config.max_json_response_size = MAX_SSE_EVENT_SIZE;
    let session = Arc::<direct::SeenSession>::default();
    let direct = DirectRoute::new(
        url,
        target.headers.clone(),
        Arc::clone(&session),
        (MAX_SSE_EVENT_SIZE, MAX_SSE_EVENT_SIZE),
        options.policy,
        options.connect_timeout,
    );
    let client = direct::SessionClient { client: client.clone(), session };
    let transport = OfferVersion(StreamableHttpClientTransport::with_client(client, config));
    match tokio::time::timeout(options.request_timeout, handler.serve(transport)).await {
        Ok(Ok(service)) => Ok((service, Some(direct))),
        Ok(Err(error)) => Err(ConnectError::initialize(url, error)),
        Err(_) => Err(ConnectError::timeout(url, options.request_timeout)),
    }
}

async fn legacy_sse<H: ClientHandler>(
    client: &reqwest::Client,
    url: &Url,
    target: &UpstreamTarget,
    options: &ConnectOptions,
    handler: H,
) -> Result<RunningService<RoleClient, H>, ConnectError> {
    let transport = SseClientTransport::connect(
        client.clone(),
        url.clone(),
        target.headers.clone(),
        options.request_timeout,
        MAX_SSE_EVENT_SIZE,
    )
    .await
    .map_err(|e| ConnectError::sse(url, &e))?;
    match tokio::time::timeout(options.request_timeout, handler.serve(OfferVersion(transport)))
        .await
    {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(error)) => Err(ConnectError::initialize(url, error)),
        Err(_) => Err(ConnectError::timeout(url, options.request_timeout)),
    }
}

/// Rewrites the version offered in `initialize` to [`OFFERED_PROTOCOL_VERSION`] when the
/// handler offers a revision without the handshake.
///
/// rmcp 3.11's default `ClientConfig` offers `LATEST` = `2026-07-28`, a stateless revision
/// whose lifecycle is `server/discover` rather than `initialize`; offering it in `initialize`
/// asks servers that know it for a mode this handshake cannot set up.
#[derive(Debug)]
struct OfferVersion<T>(T);

impl<T: Transport<RoleClient>> Transport<RoleClient> for OfferVersion<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        mut item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let ClientJsonRpcMessage::Request(request) = &mut item
            && let ClientRequest::InitializeRequest(initialize) = &mut request.request
            && !initialize.params.protocol_version.has_initialize()
        {
            initialize.params.protocol_version = OFFERED_PROTOCOL_VERSION;
        }
        self.0.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.0.receive()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(url: &str, swg: bool) -> Vec<(TransportKind, String)> {
        strategies(&Url::parse(url).unwrap(), swg)
            .into_iter()
            .map(|(k, u)| (k, u.to_string()))
            .collect()
    }

    #[test]
    fn strategy_table() {
        use TransportKind::{LegacySse as Sse, StreamableHttp as Http};
        assert_eq!(plan("https://x.example/mcp", false), [(Http, "https://x.example/mcp".into())]);
        assert_eq!(plan("https://x.example/mcp", true), [(Http, "https://x.example/mcp".into())]);
        assert_eq!(
            plan("https://x.example/v1/sse", false),
            [(Sse, "https://x.example/v1/sse".into())]
        );
        assert_eq!(
            plan("https://x.example/v1/sse", true),
            [(Http, "https://x.example/v1/sse".into())]
        );
        assert_eq!(
            plan("https://x.example/api/?k=1", false),
            [
                (Http, "https://x.example/api/?k=1".into()),
                (Sse, "https://x.example/api/?k=1".into()),
                (Http, "https://x.example/api/mcp?k=1".into()),
                (Sse, "https://x.example/api/sse?k=1".into()),
            ]
        );
        assert_eq!(plan("http://127.0.0.1:9/", false)[2], (Http, "http://127.0.0.1:9/mcp".into()));
        assert_eq!(plan("http://127.0.0.1:9/mcpx", false).len(), 4);
    }
}
