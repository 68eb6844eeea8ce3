//! `/accounts/{account_id}/cedar/`: the account's Cedar policies (list, create, read, update,
//! delete, and an atomic replace of the whole set for policy-as-code) and the schema they are
//! validated against.
//!
//! Every write is validated strictly against the schema by `portico-policies`; an invalid text
//! is a 400 whose message and `source` carry the line and column, and changes nothing. Each
//! change is one event on the `policies` stream, so it appears in the audit log with the old and
//! new text.

use actix_web::{HttpResponse, web};
use portico_app::policies::{NewPolicy, PolicyChanges};
use portico_core::domain::ids::PolicyId;
use portico_core::domain::policy::PolicyRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::{JsonBody, ListQuery, paginate};
use super::envelope::{ResultInfo, envelope};
use super::error::ApiError;
use super::parse_id;
use crate::auth::ApiCaller;
use crate::state::AppState;

/// The largest body of the policy endpoints: a whole policy set is larger than other resources.
pub const MAX_POLICY_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Registers the routes (called from [`super::routes`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let cedar = "/accounts/{account_id}/cedar";
    cfg.service(
        web::resource(format!("{cedar}/policies"))
            .app_data(web::PayloadConfig::new(MAX_POLICY_BODY_BYTES))
            .route(web::get().to(list))
            .route(web::post().to(create))
            .route(web::put().to(replace)),
    )
    .service(
        web::resource(format!("{cedar}/policies/{{id}}"))
            .route(web::get().to(read))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .route(&format!("{cedar}/schema"), web::get().to(schema));
}

/// A Cedar policy as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyObject {
    /// A slug: lowercase letters, digits and single hyphens, at most 64 characters.
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The Cedar text of exactly one policy.
    pub policy: String,
    /// Disabled policies are kept (and validated) but not evaluated.
    pub enabled: bool,
}

impl From<&PolicyRecord> for PolicyObject {
    fn from(p: &PolicyRecord) -> Self {
        PolicyObject {
            id: p.id.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            policy: p.policy.clone(),
            enabled: p.enabled,
        }
    }
}

/// `POST .../cedar/policies` body; also one item of the replace body (where `id` is required).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// Generated from `name` when absent on create (made unique with a `-2`, `-3`... suffix).
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub policy: String,
    /// `true` when absent.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PUT .../cedar/policies/{id}` body: an omitted field keeps its current value (send
/// `"description": null` to clear the description).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    /// May be sent back unchanged; a policy's id cannot change.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `null` clears the description; omitted keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A field that was sent, possibly as `null` (`Some(None)`), as opposed to omitted (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PUT .../cedar/policies` body: the whole new set.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySetInput {
    /// Every policy of the new set; each needs an `id`.
    pub policies: Vec<PolicyInput>,
}

/// The paging of a policy list, and the version of the policy set it was read at.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyListInfo {
    #[serde(flatten)]
    pub info: ResultInfo,
    /// Increases with every change of the policy set.
    pub policy_set_version: u64,
}

/// The schema in both of Cedar's formats.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CedarSchemaObject {
    /// The schema in Cedar's human-readable format (`.cedarschema`).
    pub text: &'static str,
    /// The same schema in Cedar's JSON format.
    #[schema(value_type = Object)]
    pub json: Value,
}

envelope!(
    /// The answer carrying one policy.
    PolicyResult { result: PolicyObject }
);
envelope!(
    /// The answer carrying a page of policies.
    PolicyList { result: Vec<PolicyObject>, result_info: PolicyListInfo }
);
envelope!(
    /// The answer carrying the whole set after a replace.
    PolicySetResult { result: Vec<PolicyObject> }
);
envelope!(
    /// The answer carrying the schema.
    CedarSchemaResult { result: CedarSchemaObject }
);

/// Path parameters of one policy (OpenAPI only).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct PolicyPath {
    account_id: String,
    id: String,
}

/// Lists the policies by id, a page at a time, optionally filtered by `search` (id or name).
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/cedar/policies",
    tag = "Cedar policies",
    operation_id = "list_cedar_policies",
    params(crate::api::openapi::AccountPath, super::body::ListQuery),
    responses((status = 200, description = "A page of policies", body = PolicyList), crate::api::openapi::ListErrors),
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
    let (items, version) = state.read(|m| {
        let items: Vec<PolicyObject> = m
            .policies
            .iter()
            .filter(|p| {
                search.is_empty()
                    || p.id.as_str().contains(&search)
                    || p.name.to_lowercase().contains(&search)
            })
            .map(PolicyObject::from)
            .collect();
        (items, m.policies.version())
    });
    let (items, info) = paginate(items, page, per_page);
    Ok(PolicyList::page(items, PolicyListInfo { info, policy_set_version: version }))
}

/// Reads a policy.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/cedar/policies/{id}",
    tag = "Cedar policies",
    operation_id = "get_cedar_policy",
    params(PolicyPath),
    responses((status = 200, description = "The policy", body = PolicyResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id: PolicyId = parse_id(&id, "policy")?;
    answer(&state, &id)
}

/// Creates a policy, validated strictly against the schema.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/cedar/policies",
    tag = "Cedar policies",
    operation_id = "create_cedar_policy",
    params(crate::api::openapi::AccountPath),
    request_body = PolicyInput,
    responses((status = 200, description = "The created policy", body = PolicyResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<PolicyInput>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let id = body.id.as_deref().map(|id| parse_id(id, "id")).transpose()?;
    let policy = NewPolicy {
        id,
        name: body.name,
        description: body.description,
        policy: body.policy,
        enabled: body.enabled.unwrap_or(true),
    };
    let id = state.app.create_policy(policy, &caller.actor()).await?;
    answer(&state, &id)
}

/// Changes a policy; omitted fields keep their values.
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/cedar/policies/{id}",
    tag = "Cedar policies",
    operation_id = "update_cedar_policy",
    params(PolicyPath),
    request_body = PolicyUpdate,
    responses((status = 200, description = "The updated policy", body = PolicyResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<PolicyUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: PolicyId = parse_id(&id, "policy")?;
    if let Some(body_id) = body.id.as_deref().filter(|b| *b != id.as_str()) {
        return Err(ApiError::field(
            "id",
            format!(
                "`id` is `{}` but the path names `{id}`; a policy's id cannot be changed",
                crate::state::truncate(body_id)
            ),
        ));
    }
    let changes = PolicyChanges {
        name: body.name,
        description: body.description,
        policy: body.policy,
        enabled: body.enabled,
    };
    state.app.update_policy(&id, changes, &caller.actor()).await?;
    answer(&state, &id)
}

/// Deletes a policy and returns it.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/cedar/policies/{id}",
    tag = "Cedar policies",
    operation_id = "delete_cedar_policy",
    params(PolicyPath),
    responses((status = 200, description = "The deleted policy", body = PolicyResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id: PolicyId = parse_id(&id, "policy")?;
    let before = state.read(|m| m.policies.get(&id).map(PolicyObject::from));
    state.app.delete_policy(&id, &caller.actor()).await?;
    before.map(PolicyResult::ok).ok_or_else(|| not_found(&id))
}

/// Replaces the whole policy set at once: one event, all or nothing. Returns the new set.
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/cedar/policies",
    tag = "Cedar policies",
    operation_id = "replace_cedar_policies",
    params(crate::api::openapi::AccountPath),
    request_body = PolicySetInput,
    responses((status = 200, description = "The new policy set", body = PolicySetResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn replace(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<PolicySetInput>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let mut records = Vec::with_capacity(body.policies.len());
    for (i, input) in body.policies.into_iter().enumerate() {
        let field = format!("policies[{i}].id");
        let Some(id) = input.id.as_deref() else {
            return Err(ApiError::field(&field, format!("invalid `{field}`: is required")));
        };
        let id: PolicyId = parse_id(id, &field)?;
        records.push(to_record(id, input));
    }
    state.app.replace_policies(records, &caller.actor()).await?;
    let set: Vec<PolicyObject> =
        state.read(|m| m.policies.iter().map(PolicyObject::from).collect());
    Ok(PolicySetResult::ok(set))
}

/// The Cedar schema every policy is validated against, as text and as JSON.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/cedar/schema",
    tag = "Cedar policies",
    operation_id = "get_cedar_schema",
    params(crate::api::openapi::AccountPath),
    responses((status = 200, description = "The schema", body = CedarSchemaResult), crate::api::openapi::ReadErrors),
)]
pub async fn schema(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let json = portico_policies::schema_json().map_err(ApiError::internal)?;
    Ok(CedarSchemaResult::ok(CedarSchemaObject { text: portico_policies::SCHEMA_TEXT, json }))
}

fn not_found(id: &PolicyId) -> ApiError {
    ApiError::not_found(format!("policy `{id}` does not exist"))
}

fn to_record(id: PolicyId, input: PolicyInput) -> PolicyRecord {
    PolicyRecord {
        id,
        name: input.name,
        description: input.description,
        policy: input.policy,
        enabled: input.enabled.unwrap_or(true),
    }
}

/// The policy as it is now.
fn answer(state: &AppState, id: &PolicyId) -> Result<HttpResponse, ApiError> {
    let found = state.read(|m| m.policies.get(id).map(PolicyObject::from));
    found.map(PolicyResult::ok).ok_or_else(|| not_found(id))
}
