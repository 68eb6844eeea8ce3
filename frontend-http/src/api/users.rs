//! The people who signed in to the account's portals (`GET /access/users`, Cloudflare's Access
//! users), and ending all of one person's sessions (`POST /access/organizations/revoke_user`).

use actix_web::{HttpResponse, web};
use portico_projections::UserRecord;
use serde::{Deserialize, Serialize};

use super::body::{JsonBody, ListQuery, paginate};
use super::envelope::{ResultInfo, envelope};
use super::error::ApiError;
use super::rfc3339;
use crate::auth::ApiCaller;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{account_id}/access/users", web::get().to(list)).route(
        "/accounts/{account_id}/access/organizations/revoke_user",
        web::post().to(revoke_user),
    );
}

/// A person who signed in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserObject {
    /// Portico's id of the person (the `Portico::User` id in Cedar).
    pub id: String,
    pub email: String,
    pub name: String,
    /// When they last signed in (RFC 3339).
    pub last_successful_login: String,
    /// The identity provider of that sign-in.
    pub idp: String,
    /// Always `true`: everyone here used Access (a portal).
    pub access_seat: bool,
    /// Always `false`: Portico has no Gateway seats.
    pub gateway_seat: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl UserObject {
    fn from_record(r: &UserRecord) -> Self {
        UserObject {
            id: r.id.clone(),
            email: r.email.clone(),
            name: r.name.clone(),
            last_successful_login: rfc3339(r.last_login),
            idp: r.idp.clone(),
            access_seat: true,
            gateway_seat: false,
            created_at: rfc3339(r.first_seen),
            updated_at: rfc3339(r.last_login),
        }
    }
}

envelope!(
    /// The answer carrying a page of people.
    UserList { result: Vec<UserObject>, result_info: ResultInfo }
);
envelope!(
    /// The answer of a revocation: `true`.
    RevokeUserResult { result: bool }
);

/// Lists the people who signed in, by email; `search` matches the email or name.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/users",
    tag = "People",
    operation_id = "list_access_users",
    params(crate::api::openapi::AccountPath, super::body::ListQuery),
    responses((status = 200, description = "A page of people", body = UserList), crate::api::openapi::ListErrors),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let (page, per_page, search) = query.resolve()?;
    let search = search.to_lowercase();
    let items: Vec<UserObject> = state.read(|m| {
        m.sign_ins
            .users()
            .filter(|u| {
                search.is_empty()
                    || u.email.contains(&search)
                    || u.name.to_lowercase().contains(&search)
            })
            .map(UserObject::from_record)
            .collect()
    });
    let (items, info) = paginate(items, page, per_page);
    Ok(UserList::page(items, info))
}

/// `POST .../revoke_user` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeUserBody {
    /// The person's email address.
    pub email: String,
}

/// Ends every session of a person and revokes every token their MCP clients hold, at every
/// portal; they must sign in again.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/access/organizations/revoke_user",
    tag = "People",
    operation_id = "revoke_access_user",
    params(crate::api::openapi::AccountPath),
    request_body = RevokeUserBody,
    responses((status = 200, description = "Revoked", body = RevokeUserResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn revoke_user(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<RevokeUserBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require_edit()?;
    state.check_account(&path)?;
    if body.email.len() > 254 || body.email.trim().is_empty() {
        return Err(ApiError::field(
            "email",
            "an email address of at most 254 characters is required",
        ));
    }
    if !state.app.revoke_user(&body.email, &caller.actor()).await? {
        return Err(ApiError::not_found(format!(
            "no one with the email `{}` has signed in",
            crate::state::truncate(body.email.trim())
        )));
    }
    Ok(RevokeUserResult::ok(true))
}
