//! Turning a stored upstream credential into the HTTP headers sent with every request.
//!
//! Error messages name the header but never contain a credential's value.

use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde::Deserialize;

/// The credential Portico presents to an upstream.
#[derive(Clone, Copy)]
pub enum UpstreamAuth<'a> {
    /// `auth_type: unauthenticated`: no header.
    Unauthenticated,
    /// `auth_type: bearer` with its stored `auth_credentials`: either a raw token, sent as
    /// `Authorization: Bearer <token>`, or a JSON string `{"headers":{"Name":"value",…}}` whose
    /// headers are forwarded verbatim.
    Bearer(&'a str),
    /// An OAuth access token (from the admin's or the user's upstream authorization).
    AccessToken(&'a str),
}

impl std::fmt::Debug for UpstreamAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamAuth::Unauthenticated => "Unauthenticated",
            UpstreamAuth::Bearer(_) => "Bearer(<redacted>)",
            UpstreamAuth::AccessToken(_) => "AccessToken(<redacted>)",
        })
    }
}

/// A credential that cannot be turned into headers. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The token is empty.
    #[error("the bearer credential is empty")]
    EmptyToken,
    /// The token has characters an HTTP header value cannot carry.
    #[error(
        "the bearer token contains characters not allowed in an HTTP header (control characters or non-ASCII)"
    )]
    InvalidToken,
    /// The credential starts like JSON but is not `{"headers":{…}}` with string values.
    #[error(
        "the bearer credential looks like JSON but is not `{{\"headers\":{{\"Name\":\"value\"}}}}` with string values"
    )]
    InvalidHeadersJson,
    /// A header name is not a valid HTTP header name.
    #[error("credential header name `{0}` is not a valid HTTP header name")]
    InvalidHeaderName(String),
    /// A header value has characters an HTTP header value cannot carry.
    #[error(
        "the value of credential header `{0}` contains characters not allowed in an HTTP header"
    )]
    InvalidHeaderValue(String),
    /// The header is set by the HTTP or MCP transport itself.
    #[error("credential header `{0}` is managed by the transport and cannot be set")]
    ReservedHeader(String),
}

/// Headers the transport owns: framing, content negotiation and the MCP session.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersCredential {
    headers: std::collections::BTreeMap<String, String>,
}

/// The headers carrying `auth`, each value marked sensitive so it is never printed.
pub fn credential_headers(auth: UpstreamAuth<'_>) -> Result<HeaderMap, CredentialError> {
    let mut headers = HeaderMap::new();
    match auth {
        UpstreamAuth::Unauthenticated => {}
        UpstreamAuth::Bearer(stored) if stored.trim_start().starts_with('{') => {
            let parsed: HeadersCredential =
                serde_json::from_str(stored).map_err(|_| CredentialError::InvalidHeadersJson)?;
            for (name, value) in parsed.headers {
                let header_name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| CredentialError::InvalidHeaderName(name.clone()))?;
                if RESERVED.contains(&header_name.as_str()) {
                    return Err(CredentialError::ReservedHeader(name));
                }
                let mut header_value = HeaderValue::from_str(&value)
                    .map_err(|_| CredentialError::InvalidHeaderValue(name.clone()))?;
                header_value.set_sensitive(true);
                headers.insert(header_name, header_value);
            }
        }
        UpstreamAuth::Bearer(token) | UpstreamAuth::AccessToken(token) => {
            let token = token.trim();
            if token.is_empty() {
                return Err(CredentialError::EmptyToken);
            }
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| CredentialError::InvalidToken)?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_token_becomes_bearer() {
        let headers = credential_headers(UpstreamAuth::Bearer("tok-123")).unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[header::AUTHORIZATION], "Bearer tok-123");
        assert!(headers[header::AUTHORIZATION].is_sensitive());
        let headers = credential_headers(UpstreamAuth::AccessToken("at")).unwrap();
        assert_eq!(headers[header::AUTHORIZATION], "Bearer at");
    }

    #[test]
    fn json_headers_are_forwarded_verbatim() {
        let stored = r#"{"headers":{"cf-access-client-id":"id.access","cf-access-client-secret":"s3cr3t","X-Api-Key":"k"}}"#;
        let headers = credential_headers(UpstreamAuth::Bearer(stored)).unwrap();
        assert_eq!(headers.len(), 3);
        assert_eq!(headers["cf-access-client-id"], "id.access");
        assert_eq!(headers["cf-access-client-secret"], "s3cr3t");
        assert_eq!(headers["x-api-key"], "k");
        assert!(!format!("{headers:?}").contains("s3cr3t"));
    }

    #[test]
    fn unauthenticated_sends_nothing() {
        assert!(credential_headers(UpstreamAuth::Unauthenticated).unwrap().is_empty());
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let cases = [
            (UpstreamAuth::Bearer("tok\nsecret"), CredentialError::InvalidToken),
            (UpstreamAuth::Bearer("  "), CredentialError::EmptyToken),
            (UpstreamAuth::Bearer(r#"{"headers":{"x":1}}"#), CredentialError::InvalidHeadersJson),
            (UpstreamAuth::Bearer(r#"{"secret-ish"#), CredentialError::InvalidHeadersJson),
            (
                UpstreamAuth::Bearer(r#"{"headers":{"bad name":"secret"}}"#),
                CredentialError::InvalidHeaderName("bad name".into()),
            ),
            (
                UpstreamAuth::Bearer(r#"{"headers":{"x-key":"secret\u0001"}}"#),
                CredentialError::InvalidHeaderValue("x-key".into()),
            ),
            (
                UpstreamAuth::Bearer(r#"{"headers":{"Host":"secret"}}"#),
                CredentialError::ReservedHeader("Host".into()),
            ),
            (
                UpstreamAuth::Bearer(r#"{"headers":{"mcp-session-id":"secret"}}"#),
                CredentialError::ReservedHeader("mcp-session-id".into()),
            ),
        ];
        for (auth, expected) in cases {
            let err = credential_headers(auth).unwrap_err();
            assert_eq!(err, expected);
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        assert!(!format!("{:?}", UpstreamAuth::Bearer("secret")).contains("secret"));
    }
}
