//! TEMPORARY: streamable HTTP only; replaced by the transport branch (detection, legacy SSE).
use std::time::Duration;

use rmcp::service::{RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient};
use url::Url;

#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub url: Url,
    pub headers: http::HeaderMap,
    pub secure_web_gateway: bool,
}

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub policy: crate::ssrf::UpstreamPolicy,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{cause}")]
pub struct ConnectError {
    pub cause: String,
    pub is_upstream: bool,
    pub mcp_code: Option<i32>,
    pub retryable: bool,
    pub status_code: Option<u16>,
}

pub struct Connected<H: ClientHandler> {
    pub service: RunningService<RoleClient, H>,
    pub url: Url,
}

pub async fn connect<H: ClientHandler>(
    target: &UpstreamTarget,
    options: &ConnectOptions,
    handler: H,
) -> Result<Connected<H>, ConnectError> {
    let client = reqwest::Client::builder().build().map_err(|e| ConnectError {
        cause: e.to_string(),
        is_upstream: false,
        mcp_code: None,
        retryable: false,
        status_code: None,
    })?;
    let mut config = StreamableHttpClientTransportConfig::with_uri(target.url.as_str());
    config.max_concurrent_requests = 512;
    config.custom_headers =
        target.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let service = tokio::time::timeout(options.connect_timeout, handler.serve(transport))
        .await
        .map_err(|_| ConnectError {
            cause: "connect timed out".into(),
            is_upstream: false,
            mcp_code: None,
            retryable: true,
            status_code: None,
        })?
        .map_err(|e| ConnectError {
            cause: e.to_string(),
            is_upstream: true,
            mcp_code: None,
            retryable: true,
            status_code: None,
        })?;
    Ok(Connected { service, url: target.url.clone() })
}

impl ConnectError {
    pub fn local(cause: impl Into<String>) -> Self {
        ConnectError { cause: cause.into(), is_upstream: false, mcp_code: None, retryable: false, status_code: None }
    }
}

pub fn credential_headers(value: &str) -> Result<http::HeaderMap, ConnectError> {
    let mut headers = http::HeaderMap::new();
    let v = http::HeaderValue::from_str(&format!("Bearer {value}"))
        .map_err(|_| ConnectError::local("bad credential"))?;
    headers.insert(http::header::AUTHORIZATION, v);
    Ok(headers)
}
