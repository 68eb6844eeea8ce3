//! The Cedar policy set: create, change, delete or replace policies, each validated strictly
//! against the schema with Cedar before it is recorded.

use std::cell::RefCell;

use portico_core::Actor;
use portico_core::domain::DomainError;
use portico_core::domain::ids::{MAX_ID_LEN, PolicyId};
use portico_core::domain::policy::{
    self, CreatePolicy, DeletePolicy, POLICIES_STREAM, PolicyCommand, PolicyRecord,
    PolicyRejection, PolicySetState, PolicyValidator, ReplacePolicies, UpdatePolicy,
};
use portico_policies::CedarValidator;

use crate::{App, AppError, Decided, decide};

/// A policy's fields; a missing id is generated from the name.
#[derive(Debug, Clone)]
pub struct NewPolicy {
    pub id: Option<PolicyId>,
    pub name: String,
    pub description: Option<String>,
    pub policy: String,
    pub enabled: bool,
}

/// A change of a policy: an omitted field keeps its value (`description: Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct PolicyChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub policy: Option<String>,
    pub enabled: Option<bool>,
}

impl App {
    /// Creates a policy and returns its id.
    pub async fn create_policy(
        &self,
        policy: NewPolicy,
        actor: &Actor,
    ) -> Result<PolicyId, AppError> {
        let mut created = None;
        self.execute_policies(actor, |state| {
            let id = match policy.id {
                Some(id) => id,
                None => generate_id(&policy.name, state)?,
            };
            created = Some(id.clone());
            let record = PolicyRecord {
                id,
                name: policy.name,
                description: policy.description,
                policy: policy.policy,
                enabled: policy.enabled,
            };
            Ok(CreatePolicy(record).into())
        })
        .await?;
        created.ok_or_else(|| AppError::internal("a created policy has no id"))
    }

    /// Changes a policy.
    pub async fn update_policy(
        &self,
        id: &PolicyId,
        changes: PolicyChanges,
        actor: &Actor,
    ) -> Result<(), AppError> {
        self.execute_policies(actor, |state| {
            let Some(existing) = state.policies.get(id) else {
                return Err(DomainError::NotFound { kind: "policy", id: id.to_string() }.into());
            };
            let record = PolicyRecord {
                id: id.clone(),
                name: changes.name.unwrap_or_else(|| existing.name.clone()),
                description: changes.description.unwrap_or_else(|| existing.description.clone()),
                policy: changes.policy.unwrap_or_else(|| existing.policy.clone()),
                enabled: changes.enabled.unwrap_or(existing.enabled),
            };
            Ok(UpdatePolicy(record).into())
        })
        .await
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, id: &PolicyId, actor: &Actor) -> Result<(), AppError> {
        self.execute_policies(actor, |_| Ok(DeletePolicy(id.clone()).into())).await
    }

    /// Replaces the whole policy set at once: one event, all or nothing.
    pub async fn replace_policies(
        &self,
        policies: Vec<PolicyRecord>,
        actor: &Actor,
    ) -> Result<(), AppError> {
        self.execute_policies(actor, |_| Ok(ReplacePolicies(policies).into())).await
    }

    /// Builds the command from the policy set as it is, decides it with Cedar and appends.
    async fn execute_policies(
        &self,
        actor: &Actor,
        command: impl FnOnce(&PolicySetState) -> Result<PolicyCommand, AppError>,
    ) -> Result<(), AppError> {
        self.execute(POLICIES_STREAM, actor, |m| {
            let state = m.policies.state();
            decide_with_cedar(state, command(state)?)
        })
        .await?;
        Ok(())
    }
}

/// Runs the policy rules with Cedar, keeping the line and column of a rejected text.
fn decide_with_cedar(state: &PolicySetState, command: PolicyCommand) -> Result<Decided, AppError> {
    let validator = LocatingValidator::default();
    decide(state, command, &validator as &dyn PolicyValidator).map_err(|e| match e {
        AppError::Rule(error @ DomainError::InvalidField { .. }) => {
            let from_validator =
                matches!(&error, DomainError::InvalidField { field, .. } if field.ends_with("policy"));
            match validator.last.take() {
                Some(PolicyRejection { line: Some(line), column: Some(column), .. })
                    if from_validator =>
                {
                    AppError::PolicyText { error, line, column }
                }
                _ => AppError::Rule(error),
            }
        }
        other => other,
    })
}

/// [`CedarValidator`], remembering the last rejection (`decide` stops at the first).
#[derive(Debug, Default)]
struct LocatingValidator {
    last: RefCell<Option<PolicyRejection>>,
}

impl PolicyValidator for LocatingValidator {
    fn validate(&self, policy: &PolicyRecord) -> Result<(), PolicyRejection> {
        let result = CedarValidator.validate(policy);
        if let Err(rejection) = &result {
            *self.last.borrow_mut() = Some(rejection.clone());
        }
        result
    }
}

/// A slug from `name` (`"Eng may use Docs"` -> `eng-may-use-docs`), unique in `state`.
pub fn generate_id(name: &str, state: &PolicySetState) -> Result<PolicyId, AppError> {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    // Room for a `-NNNNN` suffix.
    slug.truncate(MAX_ID_LEN - 6);
    let slug = slug.trim_end_matches('-');
    let base = if slug.is_empty() { "policy" } else { slug };
    // At most MAX_POLICIES ids are taken, so one of the first MAX_POLICIES + 1 is free.
    (1..=policy::MAX_POLICIES + 1)
        .map(|n| if n == 1 { base.to_owned() } else { format!("{base}-{n}") })
        .filter_map(|candidate| PolicyId::parse(candidate).ok())
        .find(|id| !state.policies.contains_key(id))
        .ok_or_else(|| AppError::internal(format!("no free id for a policy named `{base}`")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_generated_from_names_and_made_unique() {
        let mut state = PolicySetState::default();
        assert_eq!(generate_id("Eng may use  Docs!", &state).unwrap().as_str(), "eng-may-use-docs");
        assert_eq!(generate_id("  ***  ", &state).unwrap().as_str(), "policy");
        assert_eq!(generate_id(&"A".repeat(300), &state).unwrap().as_str().len(), MAX_ID_LEN - 6);
        let record = |id: &str| PolicyRecord {
            id: PolicyId::parse(id).unwrap(),
            name: id.to_owned(),
            description: None,
            policy: String::new(),
            enabled: true,
        };
        for id in ["docs", "docs-2"] {
            state.policies.insert(PolicyId::parse(id).unwrap(), record(id));
        }
        assert_eq!(generate_id("Docs", &state).unwrap().as_str(), "docs-3");
    }
}
