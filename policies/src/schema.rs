//! The Cedar schema every policy is validated against.

use std::sync::LazyLock;

use cedar_policy::Schema;

/// The schema's text, as committed in `schema/portico.cedarschema`.
pub const SCHEMA_TEXT: &str = include_str!("../schema/portico.cedarschema");

static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::from_cedarschema_str(SCHEMA_TEXT)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| e.to_string())
});

/// The schema in Cedar's JSON schema format (for tools that take JSON), converted from the text.
pub fn schema_json() -> Result<serde_json::Value, String> {
    let (fragment, _warnings) = cedar_policy::SchemaFragment::from_cedarschema_str(SCHEMA_TEXT)
        .map_err(|e| e.to_string())?;
    fragment.to_json_value().map_err(|e| e.to_string())
}

/// The parsed schema. An error here is a bug in the committed schema (a test parses it).
pub fn schema() -> Result<&'static Schema, &'static str> {
    SCHEMA.as_ref().map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_schema_parses() {
        assert!(super::schema().is_ok(), "{:?}", super::schema().err());
    }
}
