//! What a command can fail with, in terms every frontend maps to its own protocol (the admin
//! API with its one status table, the CLI with a message).

use portico_core::domain::DomainError;
use portico_core::{AppendError, LogError};

/// Why a command did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The command broke a business rule.
    #[error(transparent)]
    Rule(#[from] DomainError),
    /// A policy text Cedar refused, at this line and column of the text.
    #[error("{error}")]
    PolicyText { error: DomainError, line: u32, column: u32 },
    /// A concurrent write to the same resource won; reading again and retrying may succeed.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed in a way the rules do not name (an append's bounds).
    #[error("{0}")]
    Invalid(String),
    /// Storage or the read models are unavailable for now; `cause` is for the log only.
    #[error("unavailable: {cause}")]
    Unavailable { cause: String },
    /// A bug or an unexpected failure; `cause` is for the log only.
    #[error("internal error: {cause}")]
    Internal { cause: String },
}

impl AppError {
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        AppError::Unavailable { cause: cause.to_string() }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::Internal { cause: cause.to_string() }
    }

    /// A write that lost a race with another.
    pub(crate) fn conflict() -> Self {
        AppError::Conflict(
            "the resource was changed by another request at the same time; read it again and retry"
                .to_owned(),
        )
    }
}

impl From<AppendError> for AppError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Conflict { .. } => AppError::conflict(),
            AppendError::Invalid(message) => AppError::Invalid(message),
            AppendError::Log(e) => e.into(),
        }
    }
}

impl From<LogError> for AppError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Storage(_) | LogError::Closed => AppError::unavailable(e),
            LogError::Decode { .. } | LogError::Gap { .. } => AppError::internal(e),
        }
    }
}
