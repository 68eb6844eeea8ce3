//! Errors of the domain's business rules.
//!
//! Each names the field or the rule it breaks, in words an API client can act on. The HTTP layer
//! maps them to 400 (invalid input), 404 (unknown aggregate) and 409 (already exists).

/// A command broke a business rule; nothing was decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field's value is malformed or out of bounds. `field` is the wire name, with a path for
    /// nested values (`servers[2].updated_tools[0].alias`).
    #[error("invalid `{field}`: {message}")]
    InvalidField { field: String, message: String },
    /// The aggregate already exists (create of an id in use).
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// The aggregate does not exist (or was removed).
    #[error("{kind} `{id}` does not exist")]
    NotFound { kind: &'static str, id: String },
    /// Another portal has (or is being given) this hostname.
    #[error("invalid `hostname`: `{hostname}` is already the hostname of portal `{portal_id}`")]
    HostnameTaken { hostname: String, portal_id: String },
    /// An OAuth code or refresh token was refused (RFC 6749 `invalid_grant`).
    #[error("invalid grant: {reason}")]
    InvalidGrant { reason: String },
    /// A field that is fixed at creation was sent with a different value.
    #[error("`{field}` cannot be changed after creation")]
    Immutable { field: &'static str },
    /// The aggregate cannot be removed while others refer to it; `by` says which, and what to
    /// change first.
    #[error("{kind} `{id}` is still used by {by}")]
    InUse { kind: &'static str, id: String, by: String },
}

impl DomainError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::InvalidField { field: field.into(), message: message.into() }
    }
}
