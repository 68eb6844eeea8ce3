//! Portico's Cedar policies: the schema (`schema/portico.cedarschema`), strict validation of
//! policy texts with the line and column of each problem, and (to come) the authorizer.

pub mod schema;
pub mod validate;

pub use schema::{SCHEMA_TEXT, schema, schema_json};
pub use validate::{CedarValidator, validate_policy};
