//! Errors and the one table that maps them to HTTP, for the admin API and the MCP endpoint.
//!
//! An admin API error leaves as Cloudflare's v4 envelope:
//! `{"success": false, "errors": [{"code": N, "message": "...", "source": {"pointer": "/field"}}],
//! "messages": [], "result": null}`; the MCP endpoint refuses in OAuth's shape (RFC 6750):
//! `{"error": "invalid_token", "error_description": "..."}` ([`ApiError::oauth_response`]).
//! Both take their status from [`Code`]. The message is safe to show to the client; the internal
//! cause of a 5xx is only logged.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use portico_app::AppError;
use portico_core::domain::DomainError;
use portico_core::{AppendError, LogError};
use serde::Serialize;

use super::envelope::{ErrorEnvelope, ErrorSource, ResponseInfo};

/// Stable machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The body is not valid JSON or has the wrong shape.
    MalformedBody,
    /// A field's value breaks a rule.
    InvalidField,
    /// The body is larger than allowed.
    BodyTooLarge,
    /// A query parameter is invalid.
    InvalidQuery,
    /// No or an unknown API token.
    Unauthenticated,
    /// The token's scope does not allow this.
    Forbidden,
    /// The account, resource or route does not exist.
    NotFound,
    /// The resource already exists.
    AlreadyExists,
    /// A concurrent change won; retry.
    Conflict,
    /// The resource cannot be removed while others refer to it.
    InUse,
    /// Storage is unavailable for now; retry.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}

impl Code {
    /// The HTTP status of this error, wherever it is answered.
    pub fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The `error` value of an OAuth-shaped answer (the MCP endpoint's).
    fn oauth_error(self) -> &'static str {
        match self {
            Code::MalformedBody | Code::InvalidField | Code::BodyTooLarge | Code::InvalidQuery => {
                "invalid_request"
            }
            Code::Unauthenticated => "invalid_token",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::AlreadyExists | Code::Conflict | Code::InUse => "conflict",
            Code::Unavailable => "temporarily_unavailable",
            Code::Internal => "internal",
        }
    }

    /// `(HTTP status, numeric code)`: the only place statuses are chosen.
    fn parts(self) -> (StatusCode, u32) {
        match self {
            Code::MalformedBody => (StatusCode::BAD_REQUEST, 10001),
            Code::InvalidField => (StatusCode::BAD_REQUEST, 10002),
            // 400 rather than 413: every rejected body is a 400 that says what was wrong.
            Code::BodyTooLarge => (StatusCode::BAD_REQUEST, 10003),
            Code::InvalidQuery => (StatusCode::BAD_REQUEST, 10004),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, 10000),
            Code::Forbidden => (StatusCode::FORBIDDEN, 9109),
            Code::NotFound => (StatusCode::NOT_FOUND, 7003),
            Code::AlreadyExists => (StatusCode::CONFLICT, 10009),
            Code::Conflict => (StatusCode::CONFLICT, 10010),
            Code::InUse => (StatusCode::CONFLICT, 10011),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 10503),
            Code::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 10500),
        }
    }
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    /// Safe to show to the client.
    pub message: String,
    /// JSON pointer to the offending field, when one is at fault.
    pub pointer: Option<String>,
    /// Logged, never sent.
    pub internal: Option<String>,
    /// The 1-based line and column in the offending field's text (a Cedar policy's), if known.
    pub location: Option<(u32, u32)>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), pointer: None, internal: None, location: None }
    }

    /// A rule broken by field `path` (`servers[2].updated_tools[0].alias`).
    pub fn field(path: &str, message: impl Into<String>) -> Self {
        ApiError { pointer: Some(json_pointer(path)), ..Self::new(Code::InvalidField, message) }
    }

    /// The same error, pointing at `line` and `column` of the field's text.
    pub fn at(self, line: u32, column: u32) -> Self {
        ApiError { location: Some((line, column)), ..self }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// An unexpected failure: a generic message for the client, the cause for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError {
            internal: Some(cause.to_string()),
            ..Self::new(Code::Internal, "internal error; the cause was logged")
        }
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        ApiError {
            internal: Some(cause.to_string()),
            ..Self::new(Code::Unavailable, "storage is unavailable; retry shortly")
        }
    }
}

/// `servers[2].updated_tools[0].alias` -> `/servers/2/updated_tools/0/alias`.
fn json_pointer(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, rest)| (n, rest));
        out.push('/');
        out.push_str(name);
        for index in indexes.split('[').map(|i| i.trim_end_matches(']')).filter(|i| !i.is_empty()) {
            out.push('/');
            out.push_str(index);
        }
    }
    out
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// The error as the MCP endpoint answers it: OAuth's `{"error", "error_description"}`
    /// with the status of its [`Code`].
    pub fn oauth_response(&self) -> HttpResponse {
        self.log_internal();
        HttpResponse::build(self.code.status())
            .json(OAuthError { error: self.code.oauth_error(), error_description: &self.message })
    }

    fn log_internal(&self) {
        if let Some(internal) = &self.internal {
            tracing::error!(code = self.code.parts().1, cause = %internal, "request failed");
        }
    }
}

#[derive(Serialize)]
struct OAuthError<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.code.parts();
        self.log_internal();
        let body = ErrorEnvelope::new(ResponseInfo {
            code,
            message: self.message.clone(),
            source: self.pointer.clone().map(|pointer| ErrorSource {
                pointer,
                line: self.location.map(|(line, _)| line),
                column: self.location.map(|(_, column)| column),
            }),
        });
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        // The SDKs Stainless generates retry every 409 (a lock timeout, to them) unless told not
        // to; an id that exists does not go away by sending the create again, nor a reference
        // to a resource by sending its delete again.
        if matches!(self.code, Code::AlreadyExists | Code::InUse) {
            response.insert_header(("x-should-retry", HeaderValue::from_static("false")));
        }
        response.json(body)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match &e {
            DomainError::InvalidField { field, .. } => ApiError::field(field, e.to_string()),
            DomainError::Immutable { field } => ApiError::field(field, e.to_string()),
            DomainError::AlreadyExists { .. } => ApiError::new(Code::AlreadyExists, e.to_string()),
            DomainError::HostnameTaken { .. } => ApiError {
                pointer: Some("/hostname".into()),
                ..ApiError::new(Code::AlreadyExists, e.to_string())
            },
            DomainError::NotFound { .. } => ApiError::not_found(e.to_string()),
            DomainError::InvalidGrant { .. } => ApiError::new(Code::InvalidField, e.to_string()),
            DomainError::InUse { .. } => ApiError::new(Code::InUse, e.to_string()),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Rule(e) => e.into(),
            AppError::PolicyText { error, line, column } => ApiError::from(error).at(line, column),
            AppError::Conflict(message) => ApiError::new(Code::Conflict, message),
            AppError::Invalid(message) => ApiError::new(Code::InvalidField, message),
            AppError::Unavailable { cause } => ApiError::unavailable(cause),
            AppError::Internal { cause } => ApiError::internal(cause),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        AppError::from(e).into()
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        AppError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_become_json_pointers() {
        assert_eq!(
            json_pointer("servers[2].updated_tools[0].alias"),
            "/servers/2/updated_tools/0/alias"
        );
        assert_eq!(json_pointer("name"), "/name");
        assert_eq!(json_pointer("a[1][2]"), "/a/1/2");
    }
}
