//! Schemas of the OpenAPI document that no handler type carries: the envelope around each
//! answer, the error answer, path parameters, reusable sets of error responses, and mirrors of
//! the core types (`portico-core` does not depend on utoipa; a test below keeps each mirror in
//! step with its original).

// These types describe the wire format; nothing constructs them.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::api::access_apps::AccessAppObject;
use crate::api::audit_logs::{AuditLog, AuditLogResultInfo};
use crate::api::envelope::ResultInfo;
use crate::api::identity_providers::{DeletedIdentityProvider, IdentityProviderObject};
use crate::api::servers::ServerObject;
use crate::api::service_tokens::{ServiceTokenObject, ServiceTokenWithSecret};

/// The account in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
}

/// An MCP server in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ServerPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The server's id.
    id: String,
}

/// A portal in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PortalPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The portal's id.
    id: String,
}

/// A service token in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ServiceTokenPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The service token's id (a UUID).
    id: String,
}

/// An identity provider in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdentityProviderPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The identity provider's id (a UUID).
    id: String,
}

/// An Access application in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccessAppPath {
    /// The account's id: 32 hexadecimal characters.
    account_id: String,
    /// The application's id (a UUID).
    id: String,
}

/// An error or a message of the envelope.
#[derive(Debug, ToSchema)]
pub struct ResponseInfo {
    /// A stable machine-readable code.
    code: u32,
    /// What went wrong, safe to show.
    message: String,
    #[schema(nullable = false)]
    source: Option<ErrorSource>,
}

/// The field of the request body at fault.
#[derive(Debug, ToSchema)]
pub struct ErrorSource {
    /// A JSON pointer into the request body (`/servers/2/updated_tools/0/alias`).
    pointer: String,
    /// For a Cedar policy's text: the 1-based line of the problem.
    #[schema(nullable = false)]
    line: Option<u32>,
    /// For a Cedar policy's text: the 1-based column of the problem.
    #[schema(nullable = false)]
    column: Option<u32>,
}

fn null() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new().schema_type(Type::Null)
}

/// The answer to a request that failed: `success` is `false`, `errors` holds one error.
#[derive(Debug, ToSchema)]
pub struct ErrorEnvelope {
    success: bool,
    #[schema(min_items = 1)]
    errors: Vec<ResponseInfo>,
    messages: Vec<ResponseInfo>,
    #[schema(schema_with = null)]
    result: (),
}

/// Defines the envelope of a successful answer carrying `$result`.
macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident { result: $result:ty $(, result_info: $info:ty)? }) => {
        $(#[$doc])*
        #[derive(Debug, ToSchema)]
        pub struct $name {
            /// `true`.
            success: bool,
            /// Empty.
            errors: Vec<ResponseInfo>,
            /// Empty.
            messages: Vec<ResponseInfo>,
            result: $result,
            $(result_info: $info,)?
        }
    };
}

envelope!(
    /// The answer carrying one MCP server.
    ServerResult { result: ServerObject }
);
envelope!(
    /// The answer carrying a page of MCP servers.
    ServerList { result: Vec<ServerObject>, result_info: ResultInfo }
);
envelope!(
    /// The answer carrying one portal.
    PortalResult { result: PortalObject }
);
envelope!(
    /// The answer carrying a page of portals.
    PortalList { result: Vec<PortalObject>, result_info: ResultInfo }
);
envelope!(
    /// The answer carrying one service token.
    ServiceTokenResult { result: ServiceTokenObject }
);
envelope!(
    /// The answer carrying one service token and its client secret (create, rotate).
    ServiceTokenSecretResult { result: ServiceTokenWithSecret }
);
envelope!(
    /// The answer carrying a page of service tokens.
    ServiceTokenList { result: Vec<ServiceTokenObject>, result_info: ResultInfo }
);
envelope!(
    /// The answer carrying a page of audit logs.
    AuditLogList { result: Vec<AuditLog>, result_info: AuditLogResultInfo }
);

envelope!(
    /// The answer carrying one identity provider.
    IdentityProviderResult { result: IdentityProviderObject }
);
envelope!(
    /// The answer carrying a page of identity providers.
    IdentityProviderList { result: Vec<IdentityProviderObject>, result_info: ResultInfo }
);
envelope!(
    /// The answer to the delete of an identity provider: its id.
    DeletedIdentityProviderResult { result: DeletedIdentityProvider }
);
envelope!(
    /// The answer carrying one Access application.
    AccessAppResult { result: AccessAppObject }
);
envelope!(
    /// The answer carrying a page of Access applications.
    AccessAppList { result: Vec<AccessAppObject>, result_info: ResultInfo }
);

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
pub struct Unavailable(ErrorEnvelope);

/// How Portico authenticates to an upstream server (fixed at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Oauth,
    Bearer,
    Unauthenticated,
}

/// Whether and how code mode is offered to a portal's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CodeMode {
    /// Unavailable; query parameters are ignored.
    Off,
    /// Off unless the client asks with `?codemode=search_and_execute` (the default).
    OptIn,
    /// On unless the client sends `?codemode=off`.
    DefaultOn,
    /// Always on.
    Enforced,
}

/// An override of an upstream tool or prompt (an entry of `updated_tools` or
/// `updated_prompts`).
#[derive(Debug, ToSchema)]
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

/// A portal as the API shows it.
#[derive(Debug, ToSchema)]
pub struct PortalObject {
    id: String,
    name: String,
    /// The host name the portal is served at.
    hostname: String,
    description: Option<String>,
    code_mode: CodeMode,
    /// Whether `code_mode` is anything but `off`.
    allow_code_mode: bool,
    secure_web_gateway: bool,
    created_at: String,
    created_by: String,
    modified_at: String,
    modified_by: String,
    /// The portal's servers; absent in the answer of a delete.
    #[schema(nullable = false)]
    servers: Option<Vec<PortalServerObject>>,
}

/// A server of a portal: the server, with `updated_tools` and `updated_prompts` being the
/// portal's overrides of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalServerObject {
    #[serde(flatten)]
    server: ServerObject,
    server_id: String,
    /// Whether the server starts disabled for the portal's users.
    default_disabled: bool,
    /// Whether calls use each user's own upstream credentials.
    on_behalf: bool,
}

#[cfg(test)]
mod tests {
    use portico_core::domain::overrides::{self, CapabilityOverride as CoreOverride};
    use portico_core::domain::portal::CodeMode as CoreCodeMode;
    use portico_core::domain::server::AuthType as CoreAuthType;
    use serde_json::{Value, json};

    use super::*;

    // Exhaustive: a new variant in the core does not compile until its mirror has one.
    fn auth_type(core: CoreAuthType) -> AuthType {
        match core {
            CoreAuthType::Oauth => AuthType::Oauth,
            CoreAuthType::Bearer => AuthType::Bearer,
            CoreAuthType::Unauthenticated => AuthType::Unauthenticated,
        }
    }

    fn code_mode(core: CoreCodeMode) -> CodeMode {
        match core {
            CoreCodeMode::Off => CodeMode::Off,
            CoreCodeMode::OptIn => CodeMode::OptIn,
            CoreCodeMode::DefaultOn => CodeMode::DefaultOn,
            CoreCodeMode::Enforced => CodeMode::Enforced,
        }
    }

    fn wire(value: impl Serialize) -> Value {
        serde_json::to_value(value).unwrap()
    }

    fn schema(name: &str) -> Value {
        let doc = wire(super::super::document());
        doc["components"]["schemas"][name].clone()
    }

    #[test]
    fn mirrors_write_what_the_core_writes() {
        for core in [CoreAuthType::Oauth, CoreAuthType::Bearer, CoreAuthType::Unauthenticated] {
            assert_eq!(wire(core), wire(auth_type(core)));
        }
        let modes = [
            CoreCodeMode::Off,
            CoreCodeMode::OptIn,
            CoreCodeMode::DefaultOn,
            CoreCodeMode::Enforced,
        ];
        for core in modes {
            assert_eq!(wire(core), wire(code_mode(core)));
        }
        assert_eq!(schema("AuthType")["enum"], json!(["oauth", "bearer", "unauthenticated"]));
        assert_eq!(schema("CodeMode")["enum"], json!(["off", "opt_in", "default_on", "enforced"]));
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
