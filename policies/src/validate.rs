//! Strict validation of one policy's text against the schema, with 1-based line and column.

use cedar_policy::{Policy, PolicyId, PolicySet, ValidationMode, Validator};
use miette::Diagnostic;
use miette_free::location;
use portico_core::domain::policy::{PolicyRecord, PolicyRejection, PolicyValidator};

use crate::schema::schema;

/// Validates policies with Cedar against Portico's schema.
#[derive(Debug, Default, Clone, Copy)]
pub struct CedarValidator;

impl PolicyValidator for CedarValidator {
    fn validate(&self, policy: &PolicyRecord) -> Result<(), PolicyRejection> {
        validate_policy(policy.id.as_str(), &policy.policy).map(|_| ())
    }
}

/// Parses `text` as exactly one policy with id `id` and validates it strictly.
pub fn validate_policy(id: &str, text: &str) -> Result<Policy, PolicyRejection> {
    let policy = Policy::parse(Some(PolicyId::new(id)), text).map_err(|e| {
        let offset = first_label(&e);
        rejection(text, format!("{e}"), offset)
    })?;
    let schema = schema().map_err(|e| PolicyRejection {
        message: format!("the schema is invalid: {e}"),
        line: None,
        column: None,
    })?;
    let mut set = PolicySet::new();
    set.add(policy.clone()).map_err(|e| rejection(text, e.to_string(), None))?;
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if let Some(error) = result.validation_errors().next() {
        let offset = first_label(error);
        return Err(rejection(text, error.to_string(), offset));
    }
    Ok(policy)
}

/// Where a diagnostic points (its first label's byte offset).
fn first_label(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic.labels().and_then(|mut labels| labels.next()).map(|label| label.offset())
}

fn rejection(text: &str, message: String, offset: Option<usize>) -> PolicyRejection {
    let (line, column) = offset.map(|o| location(text, o)).unzip();
    PolicyRejection { message, line, column }
}

/// Line and column helpers (no dependency on miette's rendering).
mod miette_free {
    /// The 1-based line and column of byte `offset` in `text`.
    pub fn location(text: &str, offset: usize) -> (u32, u32) {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_policy_passes() {
        let text = r#"permit(principal in Portico::Group::"eng", action in Portico::Action::"use_server", resource in Portico::Server::"docs");"#;
        validate_policy("eng-docs", text).unwrap();
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let text = "permit(\n  principal,\n  action,\n  resource\n) when { principal.email == };";
        let err = validate_policy("p", text).unwrap_err();
        assert_eq!(err.line, Some(5), "{err}");
        assert!(err.column.is_some());
    }

    #[test]
    fn schema_errors_have_a_location() {
        let text = "permit(principal, action == Portico::Action::\"call_tool\", resource)\nwhen { resource.nosuch == 1 };";
        let err = validate_policy("p", text).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.contains("nosuch"), "{err}");
        let err =
            validate_policy("p", r#"permit(principal == Portico::Widget::"x", action, resource);"#)
                .unwrap_err();
        assert!(err.to_string().contains("Widget"), "{err}");
    }

    #[test]
    fn exactly_one_policy() {
        let two = "permit(principal, action, resource);\nforbid(principal, action, resource);";
        assert!(validate_policy("p", two).is_err());
        assert!(validate_policy("p", "").is_err());
    }
}
