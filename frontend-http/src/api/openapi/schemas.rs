//! Schemas of the OpenAPI document that no handler type carries: path parameters (actix
//! extracts them as tuples), reusable sets of error responses, the enums whose values come from
//! a [`WireEnum`] of the core or the projections, and the one mirror of a core type that is not
//! an enum (a test below keeps it in step with its original). The answers themselves are the
//! types the handlers serialize, declared beside them with
//! [`envelope!`](crate::api::envelope::envelope).

use portico_core::wire::WireEnum;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToSchema};

use crate::api::envelope::ErrorEnvelope;

/// The account in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct AccountPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
}

/// An MCP server in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct ServerPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The server's id.
    id: String,
}

/// A portal in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct PortalPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The portal's id.
    id: String,
}

/// A service token in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct ServiceTokenPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The service token's id (a UUID).
    id: String,
}

/// An identity provider in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct IdentityProviderPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The identity provider's id (a UUID).
    id: String,
}

/// An Access application in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct AccessAppPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The application's id (a UUID).
    id: String,
}

/// A Logpush job in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct LogpushJobPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The job's id: a positive integer.
    job_id: u64,
}

/// A Logpush dataset in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "actix extracts the path as a tuple; this describes it")]
pub struct DatasetPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The dataset: `mcp_portal_logs`.
    dataset_id: String,
}

/// The answers of an operation that is always refused (with the reason).
#[derive(Debug, IntoResponses)]
pub enum RefusedErrors {
    /// Always: the message says what to do instead.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No valid API token.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// The API token has the `read` scope.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// The account (or the application) does not exist.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// The errors of a list.
#[derive(Debug, IntoResponses)]
pub enum ListErrors {
    /// A query parameter is invalid; the message names it.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No valid API token.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// The account does not exist.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// The errors of a read.
#[derive(Debug, IntoResponses)]
pub enum ReadErrors {
    /// The id in the path is malformed.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No valid API token.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// The account or the resource does not exist.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// The errors of a create or an update.
#[derive(Debug, IntoResponses)]
pub enum WriteErrors {
    /// The body is malformed, larger than 1 MiB, or breaks a rule; the message (and
    /// `source.pointer`, for a field) says what is wrong.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No valid API token.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// The API token has the `read` scope.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// The account or the resource does not exist.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// The resource exists already, or a concurrent change won; read it again and retry.
    #[response(status = 409)]
    Conflict(ErrorEnvelope),
}

/// The errors of a delete.
#[derive(Debug, IntoResponses)]
pub enum DeleteErrors {
    /// The id in the path is malformed.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No valid API token.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// The API token has the `read` scope.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// The account or the resource does not exist.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// A concurrent change won; read it again and retry.
    #[response(status = 409)]
    Conflict(ErrorEnvelope),
}

/// Storage is unavailable for now.
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
)]
#[expect(dead_code, reason = "describes the 503 answer, which `ApiError` writes")]
pub struct Unavailable(ErrorEnvelope);

/// Declares a schema named `$name`: a string that is one of the wire names of `$wire`, taken
/// from its [`WireEnum::ALL`], so the document lists exactly the values the API writes and
/// accepts.
macro_rules! wire_schema {
    ($(#[doc = $doc:literal])+ $name:ident = $wire:ty) => {
        $(#[doc = $doc])+
        #[derive(Debug)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let description = [$($doc),+].map(str::trim).join("\n");
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(description))
                    .enum_values(Some(<$wire as WireEnum>::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

wire_schema!(
    /// How Portico authenticates to an upstream server (fixed at creation).
    AuthType = portico_core::domain::server::AuthType
);
wire_schema!(
    /// Whether and how code mode is offered to a portal's clients.
    CodeMode = portico_core::domain::portal::CodeMode
);
wire_schema!(
    /// The `action.type` values.
    AuditActionType = portico_projections::AuditAction
);
wire_schema!(
    /// The `resource.type` values.
    AuditResourceType = portico_projections::ResourceType
);

/// An override of an upstream tool or prompt (an entry of `updated_tools` or
/// `updated_prompts`).
#[derive(Debug, ToSchema)]
#[expect(
    dead_code,
    reason = "describes `portico_core`'s `CapabilityOverride`, which bodies and answers carry"
)]
pub struct CapabilityOverride {
    /// The upstream tool or prompt name.
    #[schema(max_length = 256)]
    name: String,
    /// The name to expose instead of `name`: letters and digits with single `_` or `-` between
    /// them.
    #[schema(nullable = false, max_length = 40, pattern = "^[a-zA-Z0-9]+([_-][a-zA-Z0-9]+)*$")]
    alias: Option<String>,
    /// Replaces the upstream description.
    #[schema(nullable = false, max_length = 4096)]
    description: Option<String>,
    /// Whether the tool or prompt is exposed; absent keeps the default of its level.
    #[schema(nullable = false)]
    enabled: Option<bool>,
}

#[cfg(test)]
mod tests {
    use portico_core::domain::overrides::{self, CapabilityOverride as CoreOverride};
    use portico_core::domain::portal::CodeMode as CoreCodeMode;
    use portico_core::domain::server::AuthType as CoreAuthType;
    use portico_projections::{AuditAction, ResourceType};
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;

    fn wire(value: impl Serialize) -> Value {
        serde_json::to_value(value).unwrap()
    }

    fn schema(name: &str) -> Value {
        let doc = wire(super::super::document());
        doc["components"]["schemas"][name].clone()
    }

    /// The document's enum of schema `name`, and what serde writes for each of `all`.
    fn listed_and_written<T: WireEnum + Serialize>(name: &str, all: &[T]) -> (Value, Value) {
        (schema(name)["enum"].clone(), all.iter().map(wire).collect())
    }

    #[test]
    fn wire_enums_list_what_the_core_and_the_projections_write() {
        let (listed, written) = listed_and_written("AuthType", CoreAuthType::ALL);
        assert_eq!(listed, written);
        assert_eq!(listed, json!(["oauth", "bearer", "unauthenticated"]));
        let (listed, written) = listed_and_written("CodeMode", CoreCodeMode::ALL);
        assert_eq!(listed, written);
        assert_eq!(listed, json!(["off", "opt_in", "default_on", "enforced"]));
        let (listed, written) = listed_and_written("AuditActionType", AuditAction::ALL);
        assert_eq!(listed, written);
        assert_eq!(listed, json!(["create", "update", "delete", "revoke"]));
        let (listed, written) = listed_and_written("AuditResourceType", ResourceType::ALL);
        assert_eq!(listed, written);
        assert!(listed.as_array().unwrap().contains(&json!("cedar_policy_set")), "{listed}");
        assert_eq!(
            schema("CodeMode")["description"],
            "Whether and how code mode is offered to a portal's clients."
        );
    }

    #[test]
    fn the_override_mirror_has_the_core_fields_and_limits() {
        let full = CoreOverride {
            name: "search".into(),
            alias: Some("find".into()),
            description: Some("Finds".into()),
            enabled: Some(true),
        };
        let fields: Vec<String> = wire(full).as_object().unwrap().keys().cloned().collect();
        let schema = schema("CapabilityOverride");
        let mut mirrored: Vec<String> =
            schema["properties"].as_object().unwrap().keys().cloned().collect();
        mirrored.sort();
        let mut fields = fields;
        fields.sort();
        assert_eq!(fields, mirrored);
        let props = &schema["properties"];
        assert_eq!(props["alias"]["maxLength"], overrides::MAX_ALIAS_LEN);
        assert_eq!(props["description"]["maxLength"], overrides::MAX_OVERRIDE_DESCRIPTION_LEN);
        assert_eq!(props["name"]["maxLength"], overrides::MAX_CAPABILITY_NAME_LEN);
    }
}
