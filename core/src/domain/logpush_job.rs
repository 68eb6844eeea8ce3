//! Logpush jobs: where the `mcp_portal_logs` of the account are pushed, in the shape of
//! Cloudflare's Logpush job object.
//!
//! Each job has a numeric id. Ids are handed out by one counter stream ([`JOB_IDS_STREAM`]):
//! a create first appends [`LogpushJobIdReserved`] with the next id, expecting the counter's
//! version, so of two concurrent creates one append fails and decides again; the id is then the
//! creator's alone, before anything (a vault secret, the job's own stream) is written under
//! it. A reserved id whose job never got created is a gap, as Cloudflare's ids have.
//!
//! The secret parameters of a `destination_conf` (`access-key-id`, `secret-access-key`, every
//! `header_*`) never enter the log: they go to the vault as one JSON object under the owner
//! [`vault_owner`] and kind [`DESTINATION_SECRETS_KIND`], and the events carry the destination
//! with those values masked ([`destination::MASKED_SECRET`]) and the vault version
//! ([`LogpushJobSettings::destination_secrets_version`]).
//!
//! A job's `filter` and `output_options` are checked by the Logpush library, which sits above
//! this crate: [`decide`] asks through [`LogpushJobChecks`]. [`LogpushJobState::apply`] folds
//! one job's stream (`logpush-job-{id}`) and holds no rules.

pub mod destination;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DomainError;
use super::ids::truncate_for_message;
use crate::event::Event;
use crate::log::Position;
use crate::vault::SecretRef;

pub use destination::{Destination, MASKED_SECRET};

/// The default dataset (the Logpush library's `DATASET`).
pub const DATASET: &str = "mcp_portal_logs";
/// The datasets a job may push (the Logpush library's `Dataset::ALL`).
pub const DATASETS: [&str; 2] = [DATASET, "audit_logs"];
/// The longest job name, in characters (Cloudflare's limit).
pub const MAX_NAME_LEN: usize = 512;
/// The stream of the job id counter.
pub const JOB_IDS_STREAM: &str = "logpush-job-ids";
/// The vault kind of a job's destination secrets (a JSON object, parameter name -> value).
pub const DESTINATION_SECRETS_KIND: &str = "destination_secrets";
/// `max_upload_bytes`: 0 (no limit of its own) or within these bounds.
pub const MAX_UPLOAD_BYTES: (i64, i64) = (5_000_000, 1_000_000_000);
/// `max_upload_records`: 0 or within these bounds.
pub const MAX_UPLOAD_RECORDS: (i64, i64) = (1_000, 1_000_000);
/// `max_upload_interval_seconds`: 0 or within these bounds.
pub const MAX_UPLOAD_INTERVAL_SECONDS: (i64, i64) = (30, 300);
/// The values of the deprecated `frequency`.
pub const FREQUENCIES: [&str; 2] = ["high", "low"];
/// The values of `kind`, which is fixed at creation.
pub const KINDS: [&str; 2] = ["", "edge"];

/// The numeric id of a Logpush job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogpushJobId(pub u64);

impl LogpushJobId {
    /// Parses a path's id: a positive decimal integer; the error names `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
        match value.parse::<u64>() {
            Ok(id) if id > 0 && !value.starts_with('+') => Ok(LogpushJobId(id)),
            _ => Err(DomainError::invalid(
                field,
                format!("`{}` is not a job id (a positive integer)", truncate_for_message(value)),
            )),
        }
    }
}

impl std::fmt::Display for LogpushJobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The stream of one job: `logpush-job-{id}`.
pub fn logpush_job_stream(id: LogpushJobId) -> String {
    format!("logpush-job-{id}")
}

/// The vault owner of a job's secrets: `logpush-job:{id}`.
pub fn vault_owner(id: LogpushJobId) -> String {
    format!("logpush-job:{id}")
}

/// A job's settings as recorded; an update replaces the fields it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobSettings {
    pub name: Option<String>,
    /// The destination with every secret parameter's value masked.
    pub destination_conf: String,
    /// The vault version of the destination's secrets, if it has any.
    pub destination_secrets_version: Option<u32>,
    pub enabled: bool,
    /// The filter, as the JSON text it was sent as.
    pub filter: Option<String>,
    /// `output_options`, as checked by the Logpush library.
    pub output_options: Option<Value>,
    pub max_upload_bytes: Option<i64>,
    pub max_upload_records: Option<i64>,
    pub max_upload_interval_seconds: Option<i64>,
    /// Deprecated: `high` or `low`; recorded, not used.
    pub frequency: Option<String>,
}

impl LogpushJobSettings {
    /// Where the destination's secrets are in the vault.
    pub fn destination_secrets(&self, id: LogpushJobId) -> Option<SecretRef> {
        self.destination_secrets_version
            .map(|v| SecretRef::new(vault_owner(id), DESTINATION_SECRETS_KIND, v))
    }
}

/// A job id was handed out; the job's own stream is created under it next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobIdReserved {
    pub job_id: LogpushJobId,
}

/// A Logpush job was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobCreated {
    pub job_id: LogpushJobId,
    pub dataset: String,
    /// `""` or `"edge"`.
    pub kind: String,
    pub settings: LogpushJobSettings,
}

/// A Logpush job's settings changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobUpdated {
    pub job_id: LogpushJobId,
    pub settings: LogpushJobSettings,
}

/// A Logpush job was deleted; nothing more is pushed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobDeleted {
    pub job_id: LogpushJobId,
}

/// The worker fixed the next batch of a job: every event at log positions `first..=last` (the
/// ones the job's dataset, filter and sampling keep) goes into one object named after that
/// range. Until the batch is delivered it is the job's only batch, and a retry (after a failure
/// or a crash) sends the same range again, under the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobBatchPlanned {
    pub job_id: LogpushJobId,
    pub first: Position,
    pub last: Position,
}

/// A batch of a job reached its destination (the worker's report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobDelivered {
    pub job_id: LogpushJobId,
    pub last_complete: DateTime<Utc>,
    /// The batch the destination acknowledged; the job's checkpoint moves to its `last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<DeliveredBatch>,
}

/// What a delivered batch held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredBatch {
    pub first: Position,
    pub last: Position,
    /// How many records the object holds (0: the range held none the job keeps, and no object
    /// was written).
    pub records: u64,
    /// The size of the object as sent, in bytes.
    pub bytes: u64,
    /// The object's name (its key, for an object store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// A batch of a job could not be delivered (the worker's report). The message never holds a
/// secret of the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobFailed {
    pub job_id: LogpushJobId,
    pub last_error: DateTime<Utc>,
    pub error_message: String,
}

/// A destination as a command carries it: the masked text, and the vault version of its
/// secrets (a new version the caller stored, or the current one kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationInput {
    pub conf: String,
    pub secrets_version: Option<u32>,
}

/// The fields a create or an update sends. `None`: not sent (an update keeps the value);
/// `Some(None)`: sent as `null` (cleared).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogpushJobPatch {
    pub dataset: Option<String>,
    pub kind: Option<String>,
    pub destination: Option<DestinationInput>,
    pub name: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub filter: Option<Option<String>>,
    pub output_options: Option<Option<Value>>,
    pub max_upload_bytes: Option<Option<i64>>,
    pub max_upload_records: Option<Option<i64>>,
    pub max_upload_interval_seconds: Option<Option<i64>>,
    pub frequency: Option<Option<String>>,
    /// Write-only: the token that proves the destination is the creator's.
    pub ownership_challenge: Option<String>,
}

/// Create a job under an id reserved for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLogpushJob {
    pub job_id: LogpushJobId,
    pub patch: LogpushJobPatch,
}

/// Change the fields of a job the patch names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateLogpushJob {
    pub job_id: LogpushJobId,
    pub patch: LogpushJobPatch,
}

/// Delete a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteLogpushJob {
    pub job_id: LogpushJobId,
}

/// Record the outcome of a delivery: `Ok((at, batch))` a success (of the planned batch, which
/// `batch` must match), `Err((at, message))` a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLogpushDelivery {
    pub job_id: LogpushJobId,
    pub outcome: DeliveryOutcome,
}

/// How a delivery went: `Ok((at, batch))` or `Err((at, message))`.
pub type DeliveryOutcome = Result<(DateTime<Utc>, Option<DeliveredBatch>), (DateTime<Utc>, String)>;

/// Fix the next batch of a job: log positions `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLogpushBatch {
    pub job_id: LogpushJobId,
    pub first: Position,
    pub last: Position,
}

/// A command on one job's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogpushJobCommand {
    Create(CreateLogpushJob),
    Update(UpdateLogpushJob),
    Delete(DeleteLogpushJob),
    RecordDelivery(RecordLogpushDelivery),
    PlanBatch(PlanLogpushBatch),
}

macro_rules! command_from {
    ($($variant:ident($command:ty)),*) => {
        $(impl From<$command> for LogpushJobCommand {
            fn from(command: $command) -> Self {
                LogpushJobCommand::$variant(command)
            }
        })*
    };
}

command_from!(
    Create(CreateLogpushJob),
    Update(UpdateLogpushJob),
    Delete(DeleteLogpushJob),
    RecordDelivery(RecordLogpushDelivery),
    PlanBatch(PlanLogpushBatch)
);

/// The checks that belong to the Logpush library (which depends on this crate) or to the
/// application (which holds the key of ownership challenges).
pub trait LogpushJobChecks {
    /// Checks a `filter` text over the fields of `dataset`; the error is the message, naming
    /// the place in the filter.
    fn check_filter(&self, dataset: &str, filter: &str) -> Result<(), String>;
    /// Checks `output_options` for `dataset`; the error is the key at fault (`field_names[2]`)
    /// and the message.
    fn check_output_options(&self, dataset: &str, options: &Value) -> Result<(), (String, String)>;
    /// Checks that `challenge` is an ownership challenge issued for `destination_conf` (the
    /// masked text) and not expired.
    fn check_ownership_challenge(
        &self,
        destination_conf: &str,
        challenge: &str,
    ) -> Result<(), String>;
}

/// An existing job, as its events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJob {
    pub job_id: LogpushJobId,
    pub dataset: String,
    pub kind: String,
    pub settings: LogpushJobSettings,
    pub last_complete: Option<DateTime<Utc>>,
    pub last_error: Option<DateTime<Utc>>,
    /// The last failure's message; cleared by a success.
    pub error_message: Option<String>,
    /// The job's checkpoint: the last log position of the last delivered batch.
    #[serde(default)]
    pub delivered_through: Option<Position>,
    /// The batch planned and not delivered yet (`first`, `last`).
    #[serde(default)]
    pub planned: Option<(Position, Position)>,
}

/// The state of one job's stream. `Default` is a stream without events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogpushJobState {
    /// The job as it is now; `None` if it was never created, or was deleted.
    pub job: Option<LogpushJob>,
    /// The highest destination secrets version recorded, kept after a delete.
    pub last_secrets_version: u32,
    pub stream_version: u64,
}

impl LogpushJobState {
    /// Folds one event. Holds no rules; events of other aggregates are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::LogpushJobCreated(e) => {
                self.job = Some(LogpushJob {
                    job_id: e.job_id,
                    dataset: e.dataset.clone(),
                    kind: e.kind.clone(),
                    settings: e.settings.clone(),
                    last_complete: None,
                    last_error: None,
                    error_message: None,
                    delivered_through: None,
                    planned: None,
                });
                self.note_secrets(&e.settings);
            }
            Event::LogpushJobUpdated(e) => {
                if let Some(job) = &mut self.job {
                    job.settings = e.settings.clone();
                }
                self.note_secrets(&e.settings);
            }
            Event::LogpushJobDeleted(_) => self.job = None,
            Event::LogpushJobBatchPlanned(e) => {
                if let Some(job) = &mut self.job {
                    job.planned = Some((e.first, e.last));
                }
            }
            Event::LogpushJobDelivered(e) => {
                if let Some(job) = &mut self.job {
                    job.last_complete = Some(e.last_complete);
                    job.error_message = None;
                    if let Some(batch) = &e.batch {
                        job.delivered_through = Some(batch.last);
                        job.planned = None;
                    }
                }
            }
            Event::LogpushJobFailed(e) => {
                if let Some(job) = &mut self.job {
                    job.last_error = Some(e.last_error);
                    job.error_message = Some(e.error_message.clone());
                }
            }
            _ => return,
        }
        self.stream_version += 1;
    }

    fn note_secrets(&mut self, settings: &LogpushJobSettings) {
        if let Some(v) = settings.destination_secrets_version {
            self.last_secrets_version = self.last_secrets_version.max(v);
        }
    }

    /// The version newly sent destination secrets are stored under.
    pub fn next_secrets_version(&self) -> u32 {
        self.last_secrets_version.saturating_add(1)
    }
}

/// The rules of the job commands.
pub fn decide(
    state: &LogpushJobState,
    command: LogpushJobCommand,
    checks: &dyn LogpushJobChecks,
) -> Result<Vec<Event>, DomainError> {
    match command {
        LogpushJobCommand::Create(c) => {
            if state.stream_version > 0 {
                return Err(DomainError::AlreadyExists {
                    kind: "Logpush job",
                    id: c.job_id.to_string(),
                });
            }
            let patch = c.patch;
            let dataset = match patch.dataset.as_deref() {
                None => {
                    return Err(DomainError::invalid("dataset", dataset_message("is required")));
                }
                Some(d) => check_dataset(d)?,
            };
            let kind = match patch.kind.as_deref() {
                None => String::new(),
                Some(k) => check_kind(k)?,
            };
            let Some(destination) = &patch.destination else {
                return Err(DomainError::invalid(destination::FIELD, "is required"));
            };
            let empty = LogpushJobSettings {
                name: None,
                destination_conf: String::new(),
                destination_secrets_version: None,
                enabled: false,
                filter: None,
                output_options: None,
                max_upload_bytes: None,
                max_upload_records: None,
                max_upload_interval_seconds: None,
                frequency: None,
            };
            check_destination(destination, None, &patch, state, checks)?;
            let settings = merge(&dataset, empty, patch, checks)?;
            Ok(vec![Event::LogpushJobCreated(LogpushJobCreated {
                job_id: c.job_id,
                dataset,
                kind,
                settings,
            })])
        }
        LogpushJobCommand::Update(c) => {
            let current = existing(state, c.job_id)?;
            let patch = c.patch;
            if let Some(dataset) = patch.dataset.as_deref() {
                if check_dataset(dataset)? != current.dataset {
                    return Err(DomainError::Immutable { field: "dataset" });
                }
            }
            if let Some(kind) = patch.kind.as_deref() {
                if check_kind(kind)? != current.kind {
                    return Err(DomainError::Immutable { field: "kind" });
                }
            }
            if let Some(destination) = &patch.destination {
                check_destination(destination, Some(&current.settings), &patch, state, checks)?;
            } else if patch.ownership_challenge.is_some() {
                check_ownership_field(&patch)?;
            }
            let settings = merge(&current.dataset, current.settings.clone(), patch, checks)?;
            if settings == current.settings {
                return Ok(Vec::new());
            }
            Ok(vec![Event::LogpushJobUpdated(LogpushJobUpdated { job_id: c.job_id, settings })])
        }
        LogpushJobCommand::Delete(c) => {
            existing(state, c.job_id)?;
            Ok(vec![Event::LogpushJobDeleted(LogpushJobDeleted { job_id: c.job_id })])
        }
        LogpushJobCommand::PlanBatch(c) => {
            let job = existing(state, c.job_id)?;
            if job.planned == Some((c.first, c.last)) {
                return Ok(Vec::new());
            }
            if let Some((first, last)) = job.planned {
                return Err(DomainError::invalid(
                    "batch",
                    format!(
                        "Logpush job {} already has batch {first}-{last} planned and not delivered",
                        c.job_id
                    ),
                ));
            }
            let after = job.delivered_through.unwrap_or(0);
            if c.first <= after || c.last < c.first {
                return Err(DomainError::invalid(
                    "batch",
                    format!(
                        "batch {}-{} of Logpush job {} does not follow its checkpoint {after}",
                        c.first, c.last, c.job_id
                    ),
                ));
            }
            Ok(vec![Event::LogpushJobBatchPlanned(LogpushJobBatchPlanned {
                job_id: c.job_id,
                first: c.first,
                last: c.last,
            })])
        }
        LogpushJobCommand::RecordDelivery(c) => {
            let job = existing(state, c.job_id)?;
            if let Ok((_, Some(batch))) = &c.outcome {
                if job.planned != Some((batch.first, batch.last)) {
                    return Err(DomainError::invalid(
                        "batch",
                        format!(
                            "batch {}-{} of Logpush job {} is not its planned batch",
                            batch.first, batch.last, c.job_id
                        ),
                    ));
                }
            }
            Ok(vec![match c.outcome {
                Ok((at, batch)) => Event::LogpushJobDelivered(LogpushJobDelivered {
                    job_id: c.job_id,
                    last_complete: at,
                    batch,
                }),
                Err((at, message)) => Event::LogpushJobFailed(LogpushJobFailed {
                    job_id: c.job_id,
                    last_error: at,
                    error_message: message,
                }),
            }])
        }
    }
}

fn existing(state: &LogpushJobState, id: LogpushJobId) -> Result<&LogpushJob, DomainError> {
    state
        .job
        .as_ref()
        .ok_or_else(|| DomainError::NotFound { kind: "Logpush job", id: id.to_string() })
}

fn dataset_message(problem: &str) -> String {
    format!("{problem}; the datasets are `{}` and `{}`", DATASETS[0], DATASETS[1])
}

fn check_dataset(dataset: &str) -> Result<String, DomainError> {
    if DATASETS.contains(&dataset) {
        return Ok(dataset.to_owned());
    }
    Err(DomainError::invalid(
        "dataset",
        dataset_message(&format!(
            "`{}` is not a dataset of Portico",
            truncate_for_message(dataset)
        )),
    ))
}

fn check_kind(kind: &str) -> Result<String, DomainError> {
    if KINDS.contains(&kind) {
        return Ok(kind.to_owned());
    }
    Err(DomainError::invalid(
        "kind",
        format!("`{}` is not a kind; it is `\"\"` or `\"edge\"`", truncate_for_message(kind)),
    ))
}

/// The destination's text parses, names its secrets exactly when it has a vault version, uses
/// a version never used before when it changes, and has the ownership challenge it needs.
fn check_destination(
    destination: &DestinationInput,
    current: Option<&LogpushJobSettings>,
    patch: &LogpushJobPatch,
    state: &LogpushJobState,
    checks: &dyn LogpushJobChecks,
) -> Result<(), DomainError> {
    let parsed = Destination::parse(&destination.conf)?;
    if parsed.redacted() != destination.conf {
        return Err(DomainError::invalid(
            destination::FIELD,
            "holds secret values; they go to the vault and the job records them masked",
        ));
    }
    let has_secrets = !parsed.secret_names().is_empty();
    match destination.secrets_version {
        None if has_secrets => {
            return Err(DomainError::invalid(
                destination::FIELD,
                "names secret parameters whose values were not stored",
            ));
        }
        Some(_) if !has_secrets => {
            return Err(DomainError::invalid(
                destination::FIELD,
                "has no secret parameters, yet a secrets version was given",
            ));
        }
        Some(version) => {
            let kept = current.and_then(|c| c.destination_secrets_version) == Some(version);
            if !kept && version <= state.last_secrets_version {
                return Err(DomainError::invalid(
                    destination::FIELD,
                    format!(
                        "secrets version {version} was used before; new secrets are stored \
                         under version {}",
                        state.next_secrets_version()
                    ),
                ));
            }
        }
        None => {}
    }
    let changed = current.is_none_or(|c| c.destination_conf != destination.conf);
    if parsed.needs_ownership_challenge() && changed {
        let Some(challenge) = patch.ownership_challenge.as_deref() else {
            return Err(DomainError::invalid(
                "ownership_challenge",
                "is required for an AWS S3 destination (`s3://` without `endpoint=`): it proves \
                 the bucket is yours",
            ));
        };
        checks
            .check_ownership_challenge(&destination.conf, challenge)
            .map_err(|message| DomainError::invalid("ownership_challenge", message))?;
    } else {
        check_ownership_field(patch)?;
    }
    Ok(())
}

/// An ownership challenge sent where none is needed is still checked for its shape.
fn check_ownership_field(patch: &LogpushJobPatch) -> Result<(), DomainError> {
    match patch.ownership_challenge.as_deref() {
        Some(c) if c.len() > 4096 || c.chars().any(char::is_control) => {
            Err(DomainError::invalid("ownership_challenge", "is not an ownership challenge token"))
        }
        _ => Ok(()),
    }
}

/// The settings after `patch`, each field it names checked.
fn merge(
    dataset: &str,
    mut settings: LogpushJobSettings,
    patch: LogpushJobPatch,
    checks: &dyn LogpushJobChecks,
) -> Result<LogpushJobSettings, DomainError> {
    if let Some(destination) = patch.destination {
        settings.destination_conf = destination.conf;
        settings.destination_secrets_version = destination.secrets_version;
    }
    if let Some(name) = patch.name {
        settings.name = check_name(name)?;
    }
    if let Some(enabled) = patch.enabled {
        settings.enabled = enabled;
    }
    if let Some(filter) = patch.filter {
        let filter = filter.filter(|f| !f.trim().is_empty());
        if let Some(text) = &filter {
            checks
                .check_filter(dataset, text)
                .map_err(|message| DomainError::invalid("filter", message))?;
        }
        settings.filter = filter;
    }
    if let Some(options) = patch.output_options {
        let options = options.filter(|o| !o.is_null());
        if let Some(value) = &options {
            checks.check_output_options(dataset, value).map_err(|(key, message)| {
                let field = if key.is_empty() {
                    "output_options".to_owned()
                } else {
                    format!("output_options.{key}")
                };
                DomainError::invalid(field, message)
            })?;
        }
        settings.output_options = options;
    }
    if let Some(v) = patch.max_upload_bytes {
        settings.max_upload_bytes = check_limit("max_upload_bytes", v, MAX_UPLOAD_BYTES)?;
    }
    if let Some(v) = patch.max_upload_records {
        settings.max_upload_records = check_limit("max_upload_records", v, MAX_UPLOAD_RECORDS)?;
    }
    if let Some(v) = patch.max_upload_interval_seconds {
        settings.max_upload_interval_seconds =
            check_limit("max_upload_interval_seconds", v, MAX_UPLOAD_INTERVAL_SECONDS)?;
    }
    if let Some(frequency) = patch.frequency {
        if let Some(f) = frequency.as_deref() {
            if !FREQUENCIES.contains(&f) {
                return Err(DomainError::invalid(
                    "frequency",
                    format!("`{}` is not `high` or `low`", truncate_for_message(f)),
                ));
            }
        }
        settings.frequency = frequency;
    }
    Ok(settings)
}

/// A name: `null` or empty clears it; otherwise at most [`MAX_NAME_LEN`] characters without
/// control characters.
fn check_name(name: Option<String>) -> Result<Option<String>, DomainError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else { return Ok(None) };
    if name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::invalid(
            "name",
            format!("`{}` is longer than {MAX_NAME_LEN} characters", truncate_for_message(&name)),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            format!("`{}` must not contain control characters", truncate_for_message(&name)),
        ));
    }
    Ok(Some(name))
}

fn check_limit(
    field: &str,
    value: Option<i64>,
    (min, max): (i64, i64),
) -> Result<Option<i64>, DomainError> {
    match value {
        None => Ok(None),
        Some(v) if v == 0 || (min..=max).contains(&v) => Ok(Some(v)),
        Some(v) => Err(DomainError::invalid(
            field,
            format!("{v} is out of range: it is 0 (no limit of its own) or from {min} to {max}"),
        )),
    }
}

impl super::Aggregate for LogpushJobState {
    type Command = LogpushJobCommand;
    type Services = dyn LogpushJobChecks;

    fn apply(&mut self, event: &Event) {
        LogpushJobState::apply(self, event);
    }

    fn decide(
        &self,
        command: LogpushJobCommand,
        checks: &dyn LogpushJobChecks,
    ) -> Result<Vec<Event>, DomainError> {
        decide(self, command, checks)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

/// The job id counter: the last id handed out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogpushJobIds {
    pub last_id: u64,
    pub stream_version: u64,
}

/// Hand out the next job id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveLogpushJobId;

impl super::Aggregate for LogpushJobIds {
    type Command = ReserveLogpushJobId;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        if let Event::LogpushJobIdReserved(e) = event {
            self.last_id = self.last_id.max(e.job_id.0);
            self.stream_version += 1;
        }
    }

    fn decide(&self, _: ReserveLogpushJobId, _: &()) -> Result<Vec<Event>, DomainError> {
        let next = self
            .last_id
            .checked_add(1)
            .ok_or_else(|| DomainError::invalid("id", "no Logpush job id is left"))?;
        Ok(vec![Event::LogpushJobIdReserved(LogpushJobIdReserved { job_id: LogpushJobId(next) })])
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
