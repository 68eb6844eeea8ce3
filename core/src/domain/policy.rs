//! Cedar policies as the log records them: each policy's id, name, description, Cedar text and
//! whether it is enabled. The domain does not know Cedar: validating the text against the schema
//! is a service the `policies` crate provides to `decide` (see STYLE.md, "Services").

use serde::{Deserialize, Serialize};

use super::ids::PolicyId;

/// The single stream of the account's policy set (one stream, so that replacing the whole set
/// is one atomic append, and every change is ordered against every other).
pub const POLICIES_STREAM: &str = "policies";

/// One policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub id: PolicyId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The Cedar text of exactly one policy.
    pub policy: String,
    pub enabled: bool,
}

/// A policy was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCreated {
    pub policy: PolicyRecord,
}

/// A policy was changed (any field but its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyUpdated {
    pub policy: PolicyRecord,
}

/// A policy was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDeleted {
    pub policy_id: PolicyId,
}

/// The whole policy set was replaced at once (policy-as-code pushes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySetReplaced {
    pub policies: Vec<PolicyRecord>,
}

/// Why a policy's text was refused, with where in the text (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRejection {
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl std::fmt::Display for PolicyRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "line {line}, column {column}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

/// Checks a policy's Cedar text against the schema. The domain cannot (it knows no Cedar); the
/// `policies` crate implements this and the API passes it to `decide`.
pub trait PolicyValidator {
    /// `Ok` if `policy.policy` is exactly one Cedar policy that validates strictly.
    fn validate(&self, policy: &PolicyRecord) -> Result<(), PolicyRejection>;
}
