//! Authentication of admin API requests with `Authorization: Bearer <API token>`.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use portico_core::Actor;
use portico_core::domain::account::TokenScope;

use super::error::{ApiError, Code};
use crate::state::AppState;
use portico_app::api_tokens as token;

/// The API token a request authenticated with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub name: String,
    pub scope: TokenScope,
}

impl Caller {
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

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
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
        Ok(Caller {
            token_id: record.token_id.clone(),
            name: record.name.clone(),
            scope: record.scope,
        })
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        // A write with a `read` token is refused here, before its body is parsed: the answer is
        // 403 whatever the body holds (handlers check again with `require_edit`).
        ready(authenticate(req).and_then(|caller| {
            if !req.method().is_safe() {
                caller.require_edit()?;
            }
            Ok(caller)
        }))
    }
}
