//! Why connecting to an upstream failed, in the shape of the server's `error_details`.
//!
//! Every cause is composed here from error kinds, statuses and the I/O error chain; no request
//! URL with its query, no header and no response body is copied in, so a cause never carries a
//! credential.

use std::error::Error as StdError;
use std::time::Duration;

use http::StatusCode;
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::StreamableHttpError;
use serde::Serialize;
use url::Url;

use super::credentials::CredentialError;
use super::sse::SseTransportError;
use crate::ssrf::{AllForbidden, SsrfError, redact_url};

/// A failed connection to an upstream MCP server. The fields are the server's
/// `error_details` (`{cause, is_upstream, mcp_code, retryable, status_code}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{cause}")]
pub struct ConnectError {
    /// What went wrong, for the admin. Never contains a credential.
    pub cause: String,
    /// Whether the upstream (rather than Portico's policy or configuration) failed.
    pub is_upstream: bool,
    /// The JSON-RPC error code the upstream answered with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_code: Option<i32>,
    /// Whether trying again later may succeed without changing anything.
    pub retryable: bool,
    /// The HTTP status the upstream answered with, if that is the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

impl ConnectError {
    fn upstream(cause: String, retryable: bool, status_code: Option<u16>) -> Self {
        Self { cause, is_upstream: true, mcp_code: None, retryable, status_code }
    }

    /// A failure on Portico's side (configuration, vault), not the upstream's.
    pub fn local(cause: impl Into<String>) -> Self {
        let cause = cause.into();
        Self { cause, is_upstream: false, mcp_code: None, retryable: false, status_code: None }
    }

    /// §1.6: the next strategy is tried only after HTTP 404, 405 or 406.
    pub(crate) fn falls_through(&self) -> bool {
        self.is_upstream && matches!(self.status_code, Some(404..=406))
    }

    pub(crate) fn ssrf(error: &SsrfError) -> Self {
        Self::local(error.to_string())
    }

    pub(crate) fn client_build(error: &reqwest::Error) -> Self {
        Self::local(format!("could not build the upstream HTTP client: {}", chain(error)))
    }

    pub(crate) fn timeout(url: &Url, timeout: Duration) -> Self {
        Self::upstream(
            format!(
                "upstream `{}` did not complete the MCP handshake within {timeout:?}",
                redact_url(url)
            ),
            true,
            None,
        )
    }

    /// An HTTP status answered to the handshake.
    pub(crate) fn status(url: &Url, status: StatusCode) -> Self {
        let url = redact_url(url);
        let code = Some(status.as_u16());
        match status.as_u16() {
            401 | 403 => Self::upstream(
                format!(
                    "upstream `{url}` refused authentication (HTTP {status}); check the server's \
                     credentials"
                ),
                false,
                code,
            ),
            404..=406 => Self::upstream(
                format!("upstream `{url}` has no MCP endpoint of this transport (HTTP {status})"),
                false,
                code,
            ),
            408 | 429 | 500..=599 => {
                Self::upstream(format!("upstream `{url}` failed with HTTP {status}"), true, code)
            }
            300..=399 => Self::upstream(
                format!(
                    "upstream `{url}` answered HTTP {status}; Portico does not follow redirects, \
                     register the URL they lead to"
                ),
                false,
                code,
            ),
            _ => Self::upstream(format!("upstream `{url}` answered HTTP {status}"), false, code),
        }
    }

    /// A transport error from the HTTP client.
    pub(crate) fn http(url: &Url, error: &reqwest::Error) -> Self {
        if let Some(refused) = find::<AllForbidden>(error) {
            return Self::local(format!("{refused}; {}", refused.advice()));
        }
        if let Some(status) = error.status() {
            return Self::status(url, status);
        }
        let url = redact_url(url);
        let what = if error.is_timeout() {
            "timed out talking to"
        } else if error.is_connect() {
            "could not connect to"
        } else {
            "lost the connection to"
        };
        Self::upstream(format!("{what} upstream `{url}`: {}", chain(error)), true, None)
    }

    /// A failed rmcp client handshake over either transport.
    pub(crate) fn initialize(url: &Url, error: ClientInitializeError) -> Self {
        match error {
            ClientInitializeError::TransportError { error, .. } => {
                let inner: &(dyn StdError + 'static) = error.error.as_ref();
                if let Some(error) = inner.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
                    return Self::streamable(url, error);
                }
                if let Some(error) = inner.downcast_ref::<SseTransportError>() {
                    return Self::sse(url, error);
                }
                Self::upstream(
                    format!("upstream `{}`: {}", redact_url(url), chain(inner)),
                    false,
                    None,
                )
            }
            ClientInitializeError::JsonRpcError(data) => Self {
                cause: format!(
                    "upstream `{}` rejected initialize: {}",
                    redact_url(url),
                    data.message
                ),
                is_upstream: true,
                mcp_code: Some(data.code.0),
                retryable: false,
                status_code: None,
            },
            ClientInitializeError::ConnectionClosed(during) => Self::upstream(
                format!("upstream `{}` closed the connection before the {during}", redact_url(url)),
                true,
                None,
            ),
            other => Self::upstream(
                format!("upstream `{}` failed the MCP handshake: {other}", redact_url(url)),
                false,
                None,
            ),
        }
    }

    fn streamable(url: &Url, error: &StreamableHttpError<reqwest::Error>) -> Self {
        match error {
            StreamableHttpError::Client(error) => Self::http(url, error),
            StreamableHttpError::HttpStatus(error) => match StatusCode::from_u16(error.status) {
                Ok(status) => Self::status(url, status),
                Err(_) => {
                    Self::upstream(format!("upstream answered HTTP {}", error.status), true, None)
                }
            },
            StreamableHttpError::AuthRequired(_) => Self::status(url, StatusCode::UNAUTHORIZED),
            StreamableHttpError::InsufficientScope(_) => Self::status(url, StatusCode::FORBIDDEN),
            // rmcp reports other 4xx answers as "HTTP <status>: <body>"; keep the status only.
            StreamableHttpError::UnexpectedServerResponse(message) => match leading_status(message)
            {
                Some(status) => Self::status(url, status),
                None => Self::upstream(
                    format!("upstream `{}` sent an unexpected response", redact_url(url)),
                    false,
                    None,
                ),
            },
            StreamableHttpError::UnexpectedContentType(content_type) => Self::upstream(
                format!(
                    "upstream `{}` answered with content type {}, neither JSON nor an event \
                     stream; is the URL an MCP endpoint?",
                    redact_url(url),
                    content_type.as_deref().map_or("(none)".to_owned(), |ct| format!("`{ct}`")),
                ),
                false,
                None,
            ),
            other => {
                Self::upstream(format!("upstream `{}`: {other}", redact_url(url)), false, None)
            }
        }
    }

    pub(crate) fn sse(url: &Url, error: &SseTransportError) -> Self {
        match error {
            SseTransportError::Http { source, .. } => Self::http(url, source),
            SseTransportError::Status { status, .. } => Self::status(url, *status),
            SseTransportError::NoEndpoint | SseTransportError::EndpointTimeout(_) => {
                Self::upstream(format!("upstream `{}`: {error}", redact_url(url)), true, None)
            }
            other => {
                Self::upstream(format!("upstream `{}`: {other}", redact_url(url)), false, None)
            }
        }
    }
}

impl From<CredentialError> for ConnectError {
    fn from(error: CredentialError) -> Self {
        Self::local(error.to_string())
    }
}

impl From<SsrfError> for ConnectError {
    fn from(error: SsrfError) -> Self {
        Self::ssrf(&error)
    }
}

/// `"HTTP 404 Not Found: …"` -> 404.
fn leading_status(message: &str) -> Option<StatusCode> {
    let code = message.strip_prefix("HTTP ")?.get(..3)?;
    StatusCode::from_bytes(code.as_bytes()).ok()
}

/// The error's source chain, without the top-level reqwest error whose text carries the URL.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current = if error.is::<reqwest::Error>() { error.source() } else { Some(error) };
    while let Some(e) = current {
        if !e.is::<reqwest::Error>() {
            parts.push(e.to_string());
        }
        current = e.source();
    }
    if parts.is_empty() { "no further detail".to_owned() } else { parts.join(": ") }
}

fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        let url = Url::parse("https://u:p@example.com/mcp?key=secret").unwrap();
        let e = ConnectError::status(&url, StatusCode::UNAUTHORIZED);
        assert!(!e.retryable && e.is_upstream && e.cause.contains("authentication"));
        assert!(!e.cause.contains("secret") && !e.cause.contains("u:p"), "{}", e.cause);
        assert!(ConnectError::status(&url, StatusCode::NOT_FOUND).falls_through());
        assert!(ConnectError::status(&url, StatusCode::METHOD_NOT_ALLOWED).falls_through());
        assert!(ConnectError::status(&url, StatusCode::NOT_ACCEPTABLE).falls_through());
        assert!(!ConnectError::status(&url, StatusCode::BAD_REQUEST).falls_through());
        assert!(ConnectError::status(&url, StatusCode::BAD_GATEWAY).retryable);
        assert_eq!(
            leading_status("HTTP 404 Not Found: Cannot POST /"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(leading_status("something else"), None);
    }

    #[test]
    fn serializes_as_error_details() {
        let e = ConnectError::local("refused");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"cause": "refused", "is_upstream": false, "retryable": false})
        );
    }
}
