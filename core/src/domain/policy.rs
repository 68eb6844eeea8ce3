//! Cedar policies as the log records them: each policy's id, name, description, Cedar text and
//! whether it is enabled. The domain does not know Cedar: validating the text against the schema
//! is a service the `policies` crate provides to `decide` (see STYLE.md, "Services").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::PolicyId;
use super::validate::{self, MAX_DESCRIPTION_LEN};
use crate::event::Event;

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

/// The longest Cedar text of one policy, in bytes.
pub const MAX_POLICY_TEXT_BYTES: usize = 65_536;
/// The most policies an account may have.
pub const MAX_POLICIES: usize = 10_000;

/// The policy set as its stream's events describe it. `Default` is a stream without events: no
/// policies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicySetState {
    /// Every policy, by id.
    pub policies: BTreeMap<PolicyId, PolicyRecord>,
    /// How many events of the stream were folded: the version to expect on the next append,
    /// and the "policy set version" the API shows.
    pub stream_version: u64,
}

impl PolicySetState {
    /// Folds one event. Holds no rules; events of other aggregates are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::PolicyCreated(PolicyCreated { policy })
            | Event::PolicyUpdated(PolicyUpdated { policy }) => {
                self.policies.insert(policy.id.clone(), policy.clone());
            }
            Event::PolicyDeleted(e) => {
                self.policies.remove(&e.policy_id);
            }
            Event::PolicySetReplaced(e) => {
                self.policies = e.policies.iter().map(|p| (p.id.clone(), p.clone())).collect();
            }
            // Events of other aggregates are not the policy set's.
            _ => return,
        }
        self.stream_version += 1;
    }
}

/// Create one policy (`POST .../cedar/policies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePolicy(pub PolicyRecord);

/// Replace one policy's fields (`PUT .../cedar/policies/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePolicy(pub PolicyRecord);

/// Delete one policy (`DELETE .../cedar/policies/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePolicy(pub PolicyId);

/// Replace the whole set at once, all or nothing (`PUT .../cedar/policies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacePolicies(pub Vec<PolicyRecord>);

/// A command on the policy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyCommand {
    Create(CreatePolicy),
    Update(UpdatePolicy),
    Delete(DeletePolicy),
    Replace(ReplacePolicies),
}

macro_rules! policy_command {
    ($($variant:ident($command:ty)),*) => {
        $(impl From<$command> for PolicyCommand {
            fn from(command: $command) -> Self {
                PolicyCommand::$variant(command)
            }
        })*
    };
}

policy_command!(
    Create(CreatePolicy),
    Update(UpdatePolicy),
    Delete(DeletePolicy),
    Replace(ReplacePolicies)
);

/// The rules of the policy set: bounded names, descriptions and texts, at most
/// [`MAX_POLICIES`] policies, unique ids, and every policy (enabled or not) valid for
/// `validator`. A rejected text is an invalid `policy` field (`policies[3].policy` in a replace)
/// whose message starts with the line and column.
pub fn decide(
    state: &PolicySetState,
    command: PolicyCommand,
    validator: &dyn PolicyValidator,
) -> Result<Vec<Event>, DomainError> {
    match command {
        PolicyCommand::Create(CreatePolicy(policy)) => {
            if state.policies.contains_key(&policy.id) {
                return Err(DomainError::AlreadyExists {
                    kind: "policy",
                    id: policy.id.to_string(),
                });
            }
            if state.policies.len() >= MAX_POLICIES {
                return Err(DomainError::invalid(
                    "id",
                    format!("the account already has {MAX_POLICIES} policies, the most allowed"),
                ));
            }
            check(&policy, "", validator)?;
            Ok(vec![Event::PolicyCreated(PolicyCreated { policy })])
        }
        PolicyCommand::Update(UpdatePolicy(policy)) => {
            if !state.policies.contains_key(&policy.id) {
                return Err(not_found(&policy.id));
            }
            check(&policy, "", validator)?;
            Ok(vec![Event::PolicyUpdated(PolicyUpdated { policy })])
        }
        PolicyCommand::Delete(DeletePolicy(policy_id)) => {
            if !state.policies.contains_key(&policy_id) {
                return Err(not_found(&policy_id));
            }
            Ok(vec![Event::PolicyDeleted(PolicyDeleted { policy_id })])
        }
        PolicyCommand::Replace(ReplacePolicies(policies)) => {
            if policies.len() > MAX_POLICIES {
                return Err(DomainError::invalid(
                    "policies",
                    format!("has {} policies; at most {MAX_POLICIES} are allowed", policies.len()),
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, policy) in policies.iter().enumerate() {
                if !seen.insert(&policy.id) {
                    return Err(DomainError::invalid(
                        format!("policies[{i}].id"),
                        format!("`{}` appears more than once", policy.id),
                    ));
                }
                check(policy, &format!("policies[{i}]."), validator)?;
            }
            Ok(vec![Event::PolicySetReplaced(PolicySetReplaced { policies })])
        }
    }
}

fn not_found(id: &PolicyId) -> DomainError {
    DomainError::NotFound { kind: "policy", id: id.to_string() }
}

/// The field rules of one policy; `prefix` is its path in the command (`policies[3].`).
fn check(
    policy: &PolicyRecord,
    prefix: &str,
    validator: &dyn PolicyValidator,
) -> Result<(), DomainError> {
    validate::name(&format!("{prefix}name"), &policy.name)?;
    validate::description(
        &format!("{prefix}description"),
        policy.description.as_deref(),
        MAX_DESCRIPTION_LEN,
    )?;
    let field = format!("{prefix}policy");
    if policy.policy.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty: send one Cedar policy"));
    }
    if policy.policy.len() > MAX_POLICY_TEXT_BYTES {
        return Err(DomainError::invalid(
            field,
            format!(
                "is {} bytes long; at most {MAX_POLICY_TEXT_BYTES} are allowed",
                policy.policy.len()
            ),
        ));
    }
    validator
        .validate(policy)
        .map_err(|rejection| DomainError::invalid(field, rejection.to_string()))
}

impl super::Aggregate for PolicySetState {
    type Command = PolicyCommand;
    type Services = dyn PolicyValidator;

    fn apply(&mut self, event: &Event) {
        PolicySetState::apply(self, event);
    }

    fn decide(
        &self,
        command: PolicyCommand,
        validator: &dyn PolicyValidator,
    ) -> Result<Vec<Event>, DomainError> {
        decide(self, command, validator)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
