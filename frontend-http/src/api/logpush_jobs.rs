//! `/accounts/{account_id}/logpush/...`: Logpush jobs in the shape of Cloudflare's Logpush API
//! (the official SDKs' `logpush.jobs`, `logpush.datasets` and `logpush.validate` work against
//! it), for the datasets `mcp_portal_logs` and `audit_logs`.
//!
//! The secret parameters of `destination_conf` (`access-key-id`, `secret-access-key`, every
//! `header_*`) are stored in the vault by the application layer and answered as `**********`;
//! sent back masked in an update, they keep the stored values. `ownership_challenge` is
//! write-only: Portico checks it was issued for the destination and has not expired;
//! `ownership/validate` answers the same question. `POST ownership` writes a new challenge into
//! an `s3` destination's bucket and answers the object's name.

use actix_web::{HttpResponse, web};
use portico_app::logpush_jobs::DestinationConf;
use portico_core::domain::logpush_job::{Destination, LogpushJobId, LogpushJobPatch};
use portico_logpush::Dataset;
use portico_projections::LogpushJobRecord;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::body::JsonBody;
use super::envelope::envelope;
use super::error::ApiError;
use super::rfc3339;
use crate::auth::ApiCaller;
use crate::state::AppState;

/// A `destination_conf` in a request body: it may hold secrets, so its `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DestinationText(String);

impl std::fmt::Debug for DestinationText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DestinationText(..)")
    }
}

/// `Some(value)` for a field that is present, `null` included (`Some(None)`); an absent field
/// stays `None` through `#[serde(default)]`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `POST` and `PUT` body. A `PUT` changes the fields it sends and keeps the others; a field
/// sent as `null` is cleared.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogpushJobBody {
    /// `mcp_portal_logs` (calls through portals) or `audit_logs` (admin changes): required on
    /// create; it cannot change.
    #[serde(default)]
    pub dataset: Option<String>,
    /// `<scheme>://<address>?<params>` with the schemes `s3` (AWS S3, or S3-compatible with
    /// `endpoint=`), `https` and `splunk`. Required on create. Secret parameters are answered
    /// masked; sent back masked, they keep the stored value.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub destination_conf: Option<DestinationText>,
    /// Whether the job pushes logs; `false` by default.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A name, not unique: at most 512 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// A filter as a JSON string: `{"where": {...}}` over the dataset's fields.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub filter: Option<Option<String>>,
    /// `""` or `"edge"`; fixed at creation.
    #[serde(default)]
    pub kind: Option<String>,
    /// How records are written: `field_names`, `output_type`, `timestamp_format`, ...
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub output_options: Option<Option<Value>>,
    /// Deprecated in favour of `output_options`: only `null` is accepted.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub logpull_options: Option<Option<String>>,
    /// 5,000,000 to 1,000,000,000, or 0.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_upload_bytes: Option<Option<i64>>,
    /// 1,000 to 1,000,000, or 0.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_upload_records: Option<Option<i64>>,
    /// 30 to 300, or 0.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_upload_interval_seconds: Option<Option<i64>>,
    /// Deprecated: `high` or `low`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub frequency: Option<Option<String>>,
    /// Write-only: needed for an AWS S3 destination (`s3://` without `endpoint=`).
    #[serde(default)]
    #[schema(write_only)]
    pub ownership_challenge: Option<String>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogpushJobObject {
    pub id: u64,
    pub dataset: String,
    /// Secret parameters masked as `**********`.
    pub destination_conf: String,
    pub enabled: bool,
    pub name: Option<String>,
    pub filter: Option<String>,
    pub kind: String,
    #[schema(value_type = Option<Object>)]
    pub output_options: Option<Value>,
    /// Always `null`: replaced by `output_options`.
    pub logpull_options: Option<String>,
    pub max_upload_bytes: Option<i64>,
    pub max_upload_records: Option<i64>,
    pub max_upload_interval_seconds: Option<i64>,
    pub frequency: Option<String>,
    /// When a batch last reached the destination.
    pub last_complete: Option<String>,
    /// When a batch last failed.
    pub last_error: Option<String>,
    /// Why the last batch failed; `null` after a success.
    pub error_message: Option<String>,
}

impl LogpushJobObject {
    pub fn from_record(record: &LogpushJobRecord) -> Self {
        let job = &record.job;
        let s = &job.settings;
        LogpushJobObject {
            id: job.job_id.0,
            dataset: job.dataset.clone(),
            destination_conf: s.destination_conf.clone(),
            enabled: s.enabled,
            name: s.name.clone(),
            filter: s.filter.clone(),
            kind: job.kind.clone(),
            output_options: s.output_options.clone(),
            logpull_options: None,
            max_upload_bytes: s.max_upload_bytes,
            max_upload_records: s.max_upload_records,
            max_upload_interval_seconds: s.max_upload_interval_seconds,
            frequency: s.frequency.clone(),
            last_complete: job.last_complete.map(rfc3339),
            last_error: job.last_error.map(rfc3339),
            error_message: job.error_message.clone(),
        }
    }
}

/// The answer to a delete: the id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeletedLogpushJob {
    pub id: u64,
}

/// A `destination_conf` to check.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    #[schema(value_type = String)]
    pub destination_conf: DestinationText,
}

/// Whether a destination is valid, and why not.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DestinationValidity {
    pub valid: bool,
    /// Empty when valid; otherwise what is wrong.
    pub message: String,
}

/// A destination and the challenge to check for it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnershipBody {
    #[schema(value_type = String)]
    pub destination_conf: DestinationText,
    pub ownership_challenge: String,
}

/// Where a new ownership challenge was written.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OwnershipChallengeWritten {
    /// The object's key in the bucket: `<path>/ownership-challenge-<8 hex digits>.txt`.
    pub filename: String,
    pub message: String,
    pub valid: bool,
}

/// Whether the challenge is valid for the destination now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OwnershipValidity {
    pub valid: bool,
}

/// Whether a job pushes to this destination already.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DestinationExists {
    pub exists: bool,
}

envelope!(
    /// The answer carrying one Logpush job.
    LogpushJobResult { result: LogpushJobObject }
);
envelope!(
    /// The answer carrying every Logpush job (of a dataset).
    LogpushJobList { result: Vec<LogpushJobObject> }
);
envelope!(
    /// The answer to the delete of a Logpush job: its id.
    DeletedLogpushJobResult { result: DeletedLogpushJob }
);
envelope!(
    /// The fields of a dataset: name -> description.
    DatasetFieldsResult { result: std::collections::BTreeMap<String, String> }
);
envelope!(
    /// The answer to a destination check.
    DestinationValidityResult { result: DestinationValidity }
);
envelope!(
    /// The answer to an ownership challenge request.
    OwnershipChallengeResult { result: OwnershipChallengeWritten }
);
envelope!(
    /// The answer to an ownership challenge check.
    OwnershipValidityResult { result: OwnershipValidity }
);
envelope!(
    /// The answer to "does a job push here already".
    DestinationExistsResult { result: DestinationExists }
);

/// Registers the Logpush routes (on the `/client/v4` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let logpush = "/accounts/{account_id}/logpush";
    cfg.service(
        web::resource(format!("{logpush}/jobs"))
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource(format!("{logpush}/jobs/{{job_id}}"))
            .route(web::get().to(read))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .route(format!("{logpush}/datasets/{{dataset_id}}/fields").as_str(), web::get().to(fields))
    .route(format!("{logpush}/datasets/{{dataset_id}}/jobs").as_str(), web::get().to(dataset_jobs))
    .route(format!("{logpush}/ownership").as_str(), web::post().to(write_ownership))
    .route(format!("{logpush}/ownership/validate").as_str(), web::post().to(validate_ownership))
    .route(format!("{logpush}/validate/destination").as_str(), web::post().to(validate_destination))
    .route(
        format!("{logpush}/validate/destination/exists").as_str(),
        web::post().to(destination_exists),
    );
}

/// The job id of a path: a malformed one is a 400 naming `job_id`.
fn parse_job_id(id: &str) -> Result<LogpushJobId, ApiError> {
    LogpushJobId::parse("job_id", id).map_err(ApiError::from)
}

/// The dataset of a path: `mcp_portal_logs` or `audit_logs`; anything else is a 400 naming
/// `dataset_id`.
fn check_dataset(dataset: &str) -> Result<Dataset, ApiError> {
    Dataset::from_name(dataset).ok_or_else(|| {
        ApiError::field(
            "dataset_id",
            format!(
                "invalid `dataset_id`: `{}` is not a dataset of Portico; the datasets are {}",
                crate::state::truncate(dataset),
                Dataset::list()
            ),
        )
    })
}

fn object(state: &AppState, id: LogpushJobId) -> Result<LogpushJobObject, ApiError> {
    state
        .read(|m| m.logpush_jobs.get(id).map(LogpushJobObject::from_record))
        .ok_or_else(|| ApiError::not_found(format!("Logpush job `{id}` does not exist")))
}

/// Turns a body into the application layer's patch and the destination it carries.
fn input(body: LogpushJobBody) -> Result<(LogpushJobPatch, Option<DestinationConf>), ApiError> {
    if let Some(Some(_)) = body.logpull_options {
        return Err(ApiError::field(
            "logpull_options",
            "invalid `logpull_options`: it is deprecated and not supported; use `output_options`",
        ));
    }
    let patch = LogpushJobPatch {
        dataset: body.dataset,
        kind: body.kind,
        destination: None,
        name: body.name,
        enabled: body.enabled,
        filter: body.filter,
        output_options: body.output_options,
        max_upload_bytes: body.max_upload_bytes,
        max_upload_records: body.max_upload_records,
        max_upload_interval_seconds: body.max_upload_interval_seconds,
        frequency: body.frequency,
        ownership_challenge: body.ownership_challenge,
    };
    Ok((patch, body.destination_conf.map(|d| DestinationConf::new(d.0))))
}

/// Lists the Logpush jobs, by id.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/logpush/jobs",
    tag = "Logpush jobs",
    operation_id = "list_logpush_jobs",
    params(crate::api::openapi::AccountPath),
    responses((status = 200, description = "Every Logpush job", body = LogpushJobList), crate::api::openapi::ListErrors),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let jobs = state.read(|m| m.logpush_jobs.iter().map(LogpushJobObject::from_record).collect());
    Ok(LogpushJobList::ok(jobs))
}

/// Lists the Logpush jobs of a dataset (`mcp_portal_logs`).
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/logpush/datasets/{dataset_id}/jobs",
    tag = "Logpush jobs",
    operation_id = "list_logpush_dataset_jobs",
    params(crate::api::openapi::DatasetPath),
    responses((status = 200, description = "The dataset's Logpush jobs", body = LogpushJobList), crate::api::openapi::ReadErrors),
)]
pub async fn dataset_jobs(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, dataset) = path.into_inner();
    state.check_account(&account)?;
    check_dataset(&dataset)?;
    let jobs = state.read(|m| {
        m.logpush_jobs
            .iter()
            .filter(|r| r.job.dataset == dataset)
            .map(LogpushJobObject::from_record)
            .collect()
    });
    Ok(LogpushJobList::ok(jobs))
}

/// The fields of a dataset, with what each holds.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/logpush/datasets/{dataset_id}/fields",
    tag = "Logpush jobs",
    operation_id = "get_logpush_dataset_fields",
    params(crate::api::openapi::DatasetPath),
    responses((status = 200, description = "Field name -> description", body = DatasetFieldsResult), crate::api::openapi::ReadErrors),
)]
pub async fn fields(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, dataset) = path.into_inner();
    state.check_account(&account)?;
    let fields = check_dataset(&dataset)?
        .all_fields()
        .iter()
        .map(|f| (f.name().to_owned(), f.description().to_owned()))
        .collect();
    Ok(DatasetFieldsResult::ok(fields))
}

/// Reads a Logpush job (secret destination parameters masked).
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/logpush/jobs/{job_id}",
    tag = "Logpush jobs",
    operation_id = "get_logpush_job",
    params(crate::api::openapi::LogpushJobPath),
    responses((status = 200, description = "The Logpush job", body = LogpushJobResult), crate::api::openapi::ReadErrors),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    let id = parse_job_id(&id)?;
    object(&state, id).map(LogpushJobResult::ok)
}

/// Creates a Logpush job (disabled unless `enabled` is sent).
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/logpush/jobs",
    tag = "Logpush jobs",
    operation_id = "create_logpush_job",
    params(crate::api::openapi::AccountPath),
    request_body = LogpushJobBody,
    responses((status = 200, description = "The created Logpush job", body = LogpushJobResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<LogpushJobBody>,
) -> Result<HttpResponse, ApiError> {
    state.check_account(&path)?;
    caller.require_edit()?;
    let (patch, destination) = input(body)?;
    let id = state.app.create_logpush_job(patch, destination, &caller.actor()).await?;
    object(&state, id).map(LogpushJobResult::ok)
}

/// Changes the fields of a Logpush job that the body sends.
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/logpush/jobs/{job_id}",
    tag = "Logpush jobs",
    operation_id = "update_logpush_job",
    params(crate::api::openapi::LogpushJobPath),
    request_body = LogpushJobBody,
    responses((status = 200, description = "The updated Logpush job", body = LogpushJobResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<LogpushJobBody>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_job_id(&id)?;
    let (patch, destination) = input(body)?;
    state.app.update_logpush_job(id, patch, destination, &caller.actor()).await?;
    object(&state, id).map(LogpushJobResult::ok)
}

/// Deletes a Logpush job and its stored secrets.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/logpush/jobs/{job_id}",
    tag = "Logpush jobs",
    operation_id = "delete_logpush_job",
    params(crate::api::openapi::LogpushJobPath),
    responses((status = 200, description = "The deleted job's id", body = DeletedLogpushJobResult), crate::api::openapi::DeleteErrors, crate::api::openapi::Unavailable),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account, id) = path.into_inner();
    state.check_account(&account)?;
    caller.require_edit()?;
    let id = parse_job_id(&id)?;
    state.app.delete_logpush_job(id, &caller.actor()).await?;
    Ok(DeletedLogpushJobResult::ok(DeletedLogpushJob { id: id.0 }))
}

/// Checks a destination's syntax (Portico does not reach the destination here).
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/logpush/validate/destination",
    tag = "Logpush jobs",
    operation_id = "validate_logpush_destination",
    params(crate::api::openapi::AccountPath),
    request_body = DestinationBody,
    responses((status = 200, description = "Whether the destination is valid", body = DestinationValidityResult), crate::api::openapi::ListErrors),
)]
pub async fn validate_destination(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<DestinationBody>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let validity = match Destination::parse(&body.destination_conf.0) {
        Ok(_) => DestinationValidity { valid: true, message: String::new() },
        Err(e) => DestinationValidity { valid: false, message: e.to_string() },
    };
    Ok(DestinationValidityResult::ok(validity))
}

/// Whether a job pushes to this destination already (compared with secrets masked).
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/logpush/validate/destination/exists",
    tag = "Logpush jobs",
    operation_id = "logpush_destination_exists",
    params(crate::api::openapi::AccountPath),
    request_body = DestinationBody,
    responses((status = 200, description = "Whether a job has this destination", body = DestinationExistsResult), crate::api::openapi::ListErrors),
)]
pub async fn destination_exists(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<DestinationBody>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let masked = Destination::parse(&body.destination_conf.0).map_err(ApiError::from)?.redacted();
    let exists =
        state.read(|m| m.logpush_jobs.iter().any(|r| r.job.settings.destination_conf == masked));
    Ok(DestinationExistsResult::ok(DestinationExists { exists }))
}

/// Writes a new ownership challenge into an `s3` destination's bucket (with the keys the
/// destination gives, or the AWS default credential chain): only who can read the bucket can
/// send the token back in `ownership_challenge`. Needs the `edit` scope.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/logpush/ownership",
    tag = "Logpush jobs",
    operation_id = "write_logpush_ownership_challenge",
    params(crate::api::openapi::AccountPath),
    request_body = DestinationBody,
    responses((status = 200, description = "The challenge's object", body = OwnershipChallengeResult), crate::api::openapi::WriteErrors, crate::api::openapi::Unavailable),
)]
pub async fn write_ownership(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<DestinationBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require_edit()?;
    state.check_account(&path)?;
    let conf = DestinationConf::new(body.destination_conf.0);
    let filename = state.app.write_ownership_challenge(&conf).await?;
    Ok(OwnershipChallengeResult::ok(OwnershipChallengeWritten {
        filename,
        message: String::new(),
        valid: true,
    }))
}

/// Whether an ownership challenge is valid for a destination now: issued by Portico for this
/// destination (secrets masked) less than 7 days ago.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/logpush/ownership/validate",
    tag = "Logpush jobs",
    operation_id = "validate_logpush_ownership",
    params(crate::api::openapi::AccountPath),
    request_body = OwnershipBody,
    responses((status = 200, description = "Whether the challenge is valid", body = OwnershipValidityResult), crate::api::openapi::ListErrors, crate::api::openapi::Unavailable),
)]
pub async fn validate_ownership(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    JsonBody(body): JsonBody<OwnershipBody>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    state.check_account(&path)?;
    let conf = DestinationConf::new(body.destination_conf.0);
    let valid = state.app.ownership_challenge_is_valid(&conf, &body.ownership_challenge).await?;
    Ok(OwnershipValidityResult::ok(OwnershipValidity { valid }))
}
