//! Who is calling, in one place: admin API requests authenticate with an API token
//! (`Authorization: Bearer <API token>`, an [`ApiCaller`]), MCP clients with a service token
//! (`CF-Access-Client-Id` and `CF-Access-Client-Secret`, as Cloudflare Access takes them, a
//! [`Principal::ServiceToken`]).
//!
//! Every refusal of a service token has its own internal reason, which is logged, and one
//! message for the client, which tells an attacker nothing. Secrets are compared by hash in
//! constant time and never logged.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use portico_app::api_tokens as token;
use portico_core::Actor;
use portico_core::domain::account::TokenScope;
use portico_policies::Principal;
use portico_projections::{PortalServerView, PortalView, ReadModels};

use crate::api::error::{ApiError, Code};
use crate::state::AppState;

/// The API token a request authenticated with.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub token_id: String,
    pub name: String,
    pub scope: TokenScope,
}

impl ApiCaller {
    /// The actor recorded on the events this caller causes.
    pub fn actor(&self) -> Actor {
        Actor::ApiToken { id: self.token_id.clone(), name: self.name.clone() }
    }

    /// Answers 403 unless the token may write.
    pub fn require_edit(&self) -> Result<(), ApiError> {
        if self.scope.can_write() {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                format!(
                    "the API token `{}` has the `read` scope; this request needs `edit`",
                    self.name
                ),
            ))
        }
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(Code::Unauthenticated, message)
}

fn authenticate_api_token(req: &HttpRequest) -> Result<ApiCaller, ApiError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::internal("application state is missing"));
    };
    let header = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .map_err(|_| unauthenticated("the Authorization header is not valid text"))?,
        None if req.headers().contains_key("x-auth-key") => {
            return Err(unauthenticated(
                "API keys (X-Auth-Email/X-Auth-Key) are not supported; send `Authorization: Bearer <API token>`",
            ));
        }
        None => return Err(unauthenticated("missing `Authorization: Bearer <API token>` header")),
    };
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <API token>`"))?
        .trim();
    let invalid = || unauthenticated("invalid API token");
    let token_id = token::id_of(presented).ok_or_else(invalid)?;
    let presented_hash = token::hash(presented);
    state.read(|models| {
        let record =
            models.access.token(&token_id).filter(|t| t.is_active()).ok_or_else(invalid)?;
        if !token::hashes_match(&record.secret_hash, &presented_hash) {
            return Err(invalid());
        }
        Ok(ApiCaller {
            token_id: record.token_id.clone(),
            name: record.name.clone(),
            scope: record.scope,
        })
    })
}

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        // A write with a `read` token is refused here, before its body is parsed: the answer is
        // 403 whatever the body holds (handlers check again with `require_edit`).
        ready(authenticate_api_token(req).and_then(|caller| {
            if !req.method().is_safe() {
                caller.require_edit()?;
            }
            Ok(caller)
        }))
    }
}

/// The header carrying a service token's client id.
pub const CLIENT_ID_HEADER: &str = "CF-Access-Client-Id";
/// The header carrying a service token's client secret.
pub const CLIENT_SECRET_HEADER: &str = "CF-Access-Client-Secret";
/// What a client is told whenever its service token credentials are refused.
pub const GENERIC_MESSAGE: &str = "invalid service token credentials";

/// The longest header value looked at (a client id is 39 characters, a secret 64).
const MAX_CREDENTIAL_LEN: usize = 256;

/// The MCP endpoint's `401`: a `WWW-Authenticate: Bearer` challenge (RFC 6750) and the same
/// `description` in the body.
pub fn challenge(description: &str) -> actix_web::HttpResponse {
    let mut response = ApiError::new(Code::Unauthenticated, description).oauth_response();
    let value = format!(
        "Bearer realm=\"portico\", error=\"invalid_token\", error_description=\"{description}\""
    );
    if let Ok(value) = header::HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Why service token credentials were refused. Only logged: the client always gets
/// [`GENERIC_MESSAGE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAuthError {
    #[error("no `CF-Access-Client-Id` and `CF-Access-Client-Secret` headers")]
    Missing,
    #[error("the `{0}` header is missing, empty, too long or not text")]
    Malformed(&'static str),
    #[error("no service token has the client id `{client_id}`")]
    UnknownClient { client_id: String },
    #[error("service token `{token_id}` was deleted")]
    Deleted { token_id: String },
    #[error("service token `{token_id}` was presented with a secret it was rotated away from")]
    RotatedSecret { token_id: String },
    #[error("service token `{token_id}` was presented with a wrong secret")]
    WrongSecret { token_id: String },
    #[error("service token `{token_id}` expired at {expired_at}")]
    Expired { token_id: String, expired_at: DateTime<Utc> },
}

impl From<ServiceAuthError> for ApiError {
    fn from(_: ServiceAuthError) -> Self {
        ApiError::new(Code::Unauthenticated, GENERIC_MESSAGE)
    }
}

/// Checks a client id and secret against the service tokens at `now`.
///
/// The secret's hash is compared in constant time, and a hash comparison happens even for an
/// unknown client id, so the answer's timing does not tell whether the client id exists.
pub fn authenticate_service_token(
    models: &ReadModels,
    client_id: &str,
    client_secret: &str,
    now: DateTime<Utc>,
) -> Result<Principal, ServiceAuthError> {
    if client_id.is_empty() || client_id.len() > MAX_CREDENTIAL_LEN {
        return Err(ServiceAuthError::Malformed(CLIENT_ID_HEADER));
    }
    if client_secret.is_empty() || client_secret.len() > MAX_CREDENTIAL_LEN {
        return Err(ServiceAuthError::Malformed(CLIENT_SECRET_HEADER));
    }
    let presented = token::hash(client_secret);
    let Some(record) = models.service_tokens.by_client_id(client_id) else {
        // Same work as for a known client id.
        let _ = token::hashes_match(&presented, &"0".repeat(64));
        return Err(ServiceAuthError::UnknownClient { client_id: client_id.to_owned() });
    };
    let token_id = || record.token.token_id.clone();
    let matches = token::hashes_match(&record.token.secret_hash, &presented);
    if !record.is_live() {
        return Err(ServiceAuthError::Deleted { token_id: token_id() });
    }
    if !matches {
        let retired = record
            .retired_secret_hashes
            .iter()
            .fold(false, |found, old| token::hashes_match(old, &presented) | found);
        return Err(if retired {
            ServiceAuthError::RotatedSecret { token_id: token_id() }
        } else {
            ServiceAuthError::WrongSecret { token_id: token_id() }
        });
    }
    if let Some(expired_at) = record.token.expires_at.filter(|at| *at <= now) {
        return Err(ServiceAuthError::Expired { token_id: token_id(), expired_at });
    }
    Ok(Principal::ServiceToken {
        id: token_id(),
        name: record.token.name.clone(),
        client_id: record.token.client_id.clone(),
    })
}

/// Reads the two headers of a request and authenticates them at `now`.
pub fn authenticate_service_request(
    models: &ReadModels,
    req: &HttpRequest,
    now: DateTime<Utc>,
) -> Result<Principal, ServiceAuthError> {
    let header = |name: &'static str| {
        req.headers().get(name).map(|v| v.to_str().map_err(|_| ServiceAuthError::Malformed(name)))
    };
    match (header(CLIENT_ID_HEADER), header(CLIENT_SECRET_HEADER)) {
        (None, None) => Err(ServiceAuthError::Missing),
        (None, Some(_)) => Err(ServiceAuthError::Malformed(CLIENT_ID_HEADER)),
        (Some(_), None) => Err(ServiceAuthError::Malformed(CLIENT_SECRET_HEADER)),
        (Some(id), Some(secret)) => {
            authenticate_service_token(models, id?.trim(), secret?.trim(), now)
        }
    }
}

/// The servers of a portal that a service token may reach: only those whose mapping has
/// `on_behalf: false` (the others act on behalf of a signed-in user, which a machine is not).
pub fn reachable_servers(portal: &PortalView) -> impl Iterator<Item = &PortalServerView> {
    portal.servers.iter().filter(|s| !s.on_behalf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use portico_core::domain::ids::{PortalId, ServerId};
    use portico_core::domain::portal::CodeMode;

    use super::*;

    fn mapping(id: &str, on_behalf: bool) -> PortalServerView {
        PortalServerView {
            server_id: ServerId::parse(id).unwrap(),
            default_disabled: false,
            on_behalf,
            updated_tools: Vec::new(),
            updated_prompts: Vec::new(),
        }
    }

    #[test]
    fn a_service_token_reaches_only_servers_not_on_behalf_of_a_user() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let portal = PortalView {
            portal_id: PortalId::parse("team").unwrap(),
            name: "Team".into(),
            hostname: "team.example.com".into(),
            description: None,
            code_mode: CodeMode::OptIn,
            secure_web_gateway: false,
            servers: vec![mapping("docs", true), mapping("ci", false), mapping("wiki", false)],
            created_at: t,
            created_by: Actor::system("test"),
            modified_at: t,
            modified_by: Actor::system("test"),
            stream_version: 1,
        };
        let reachable: Vec<&str> =
            reachable_servers(&portal).map(|s| s.server_id.as_str()).collect();
        assert_eq!(reachable, ["ci", "wiki"]);
    }

    #[test]
    fn every_refusal_has_the_same_client_message() {
        let reasons = [
            ServiceAuthError::Missing,
            ServiceAuthError::UnknownClient { client_id: "x".into() },
            ServiceAuthError::Expired { token_id: "t".into(), expired_at: Utc::now() },
            ServiceAuthError::RotatedSecret { token_id: "t".into() },
        ];
        for reason in reasons {
            let error = ApiError::from(reason);
            assert_eq!(error.message, GENERIC_MESSAGE);
            assert_eq!(error.code, Code::Unauthenticated);
        }
    }

    #[test]
    fn unknown_and_malformed_credentials_are_refused() {
        let models = ReadModels::default();
        let now = Utc::now();
        assert_eq!(
            authenticate_service_token(&models, "", "s", now),
            Err(ServiceAuthError::Malformed(CLIENT_ID_HEADER))
        );
        assert_eq!(
            authenticate_service_token(&models, "a.access", &"s".repeat(300), now),
            Err(ServiceAuthError::Malformed(CLIENT_SECRET_HEADER))
        );
        assert!(matches!(
            authenticate_service_token(&models, "a.access", "s", now),
            Err(ServiceAuthError::UnknownClient { .. })
        ));
    }
}
