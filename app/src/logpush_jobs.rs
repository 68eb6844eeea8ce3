//! Logpush jobs: create, change and delete the jobs that push the account's `mcp_portal_logs`
//! to S3-compatible stores and HTTP endpoints; [`worker`] delivers them.
//!
//! A create checks everything first (an invalid request records nothing, not even an id),
//! then reserves the next numeric id on the counter stream, stores the destination's secrets in
//! the vault under that id, and appends the job's creation to its own stream; if the append
//! fails the stored secrets go. The secret parameters of `destination_conf` travel as one JSON
//! object (owner `logpush-job:{id}`, kind `destination_secrets`); the events carry the
//! destination with their values masked. A secret sent back masked keeps the stored value.

pub mod ownership;
pub mod worker;

use std::collections::BTreeMap;

use portico_core::domain::DomainError;
use portico_core::domain::logpush_job::{
    self, CreateLogpushJob, DESTINATION_SECRETS_KIND, DeleteLogpushJob, Destination,
    DestinationInput, JOB_IDS_STREAM, LogpushJobChecks, LogpushJobCommand, LogpushJobId,
    LogpushJobPatch, LogpushJobState, MASKED_SECRET, ReserveLogpushJobId, UpdateLogpushJob,
    logpush_job_stream, vault_owner,
};
use portico_core::vault::{SecretRef, SecretString, VaultError};
use portico_core::{Actor, Event};
use portico_logpush::{Dataset, Filter, OutputFormat, OutputOptions};
use serde_json::Value;

use crate::{App, AppError, decide};

/// How many times a create reserves an id when concurrent creates keep taking the one it
/// chose.
const RESERVE_ATTEMPTS: usize = 64;

/// The field of the destination's errors.
const DESTINATION_FIELD: &str = logpush_job::destination::FIELD;

/// The library's dataset named `name` (the domain checks the name before it asks).
pub(crate) fn dataset_of(name: &str) -> Result<Dataset, String> {
    Dataset::from_name(name)
        .ok_or_else(|| format!("`{name}` is not a dataset; the datasets are {}", Dataset::list()))
}

/// The format a job's `output_options` (`None`: the defaults) give for `dataset`; the error is
/// the key at fault (empty when the options are not an object) and the message.
pub(crate) fn output_format(
    dataset: Dataset,
    options: Option<&Value>,
) -> Result<OutputFormat, (String, String)> {
    let parsed: OutputOptions = match options {
        None => OutputOptions::default(),
        Some(options) => serde_json::from_value(options.clone()).map_err(|e| {
            let message = e.to_string();
            // serde names an unknown key as "unknown field `x`, expected one of ...".
            let key = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(key, _)| key.to_owned())
                .unwrap_or_default();
            (key, message)
        })?,
    };
    parsed.validate_for(dataset).map_err(|e| (e.key, e.message))
}

/// The checks of the Logpush library, and of ownership challenges.
#[derive(Debug)]
pub(crate) struct LogpushChecks {
    /// `None` when the command sends no challenge (none is checked then).
    ownership: Option<ownership::ChallengeVerifier>,
}

impl LogpushChecks {
    const WITHOUT_CHALLENGE: LogpushChecks = LogpushChecks { ownership: None };
}

impl LogpushJobChecks for LogpushChecks {
    fn check_filter(&self, dataset: &str, filter: &str) -> Result<(), String> {
        Filter::parse_for(dataset_of(dataset)?, filter).map(|_| ()).map_err(|e| e.to_string())
    }

    fn check_output_options(&self, dataset: &str, options: &Value) -> Result<(), (String, String)> {
        let dataset = dataset_of(dataset).map_err(|message| (String::new(), message))?;
        output_format(dataset, Some(options)).map(|_| ())
    }

    fn check_ownership_challenge(&self, conf: &str, challenge: &str) -> Result<(), String> {
        match &self.ownership {
            Some(verifier) => verifier.verify(conf, challenge),
            None => Err("is not an ownership challenge Portico issued".to_owned()),
        }
    }
}

/// A `destination_conf` as a client sent it: it may hold secrets, so it never prints itself.
#[derive(Clone)]
pub struct DestinationConf(SecretString);

impl DestinationConf {
    pub fn new(conf: String) -> Self {
        DestinationConf(SecretString::new(conf))
    }
}

impl std::fmt::Debug for DestinationConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DestinationConf(..)")
    }
}

/// Secret parameter name -> value.
type Secrets = BTreeMap<String, SecretString>;

impl App {
    /// Creates a Logpush job and returns its id. `patch.destination` is ignored: the
    /// destination is `destination_conf`, which is required.
    pub async fn create_logpush_job(
        &self,
        mut patch: LogpushJobPatch,
        destination_conf: Option<DestinationConf>,
        actor: &Actor,
    ) -> Result<LogpushJobId, AppError> {
        let Some(conf) = destination_conf else {
            return Err(DomainError::InvalidField {
                field: DESTINATION_FIELD.to_owned(),
                message: "is required".to_owned(),
            }
            .into());
        };
        let destination = Destination::parse(conf.0.expose_secret())?;
        let secrets = destination.secrets();
        if let Some(name) = secrets.iter().find(|(_, v)| v.expose_secret() == MASKED_SECRET) {
            return Err(masked_without_value(name.0));
        }
        let version = (!secrets.is_empty()).then_some(1);
        patch.destination =
            Some(DestinationInput { conf: destination.redacted(), secrets_version: version });
        let checks = self.logpush_checks(&patch).await?;
        // Everything is checked against a job that does not exist yet before an id is reserved.
        let fresh = LogpushJobState::default();
        let check = CreateLogpushJob { job_id: LogpushJobId(1), patch: patch.clone() };
        decide(&fresh, check.into(), &checks)?;
        let id = self.reserve_logpush_job_id(actor).await?;
        let command = CreateLogpushJob { job_id: id, patch }.into();
        let new_secrets = version.map(|v| (&secrets, v));
        self.write_logpush_job(id, fresh, command, &checks, new_secrets, actor).await?;
        Ok(id)
    }

    /// Changes the fields of a job that `patch` names; `destination_conf`, when sent, replaces
    /// the destination (secrets sent masked keep their stored values).
    pub async fn update_logpush_job(
        &self,
        id: LogpushJobId,
        mut patch: LogpushJobPatch,
        destination_conf: Option<DestinationConf>,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let state = self.read(|m| m.logpush_jobs.state(id));
        let Some(job) = &state.job else {
            return Err(DomainError::NotFound { kind: "Logpush job", id: id.to_string() }.into());
        };
        let current_ref = job.settings.destination_secrets(id);
        let mut new_secrets = None;
        if let Some(conf) = destination_conf {
            let destination = Destination::parse(conf.0.expose_secret())?;
            let mut secrets = destination.secrets();
            let current = match &current_ref {
                Some(secret) => self.read_secrets(secret).await?,
                None => Secrets::new(),
            };
            for (name, value) in secrets.iter_mut() {
                if value.expose_secret() == MASKED_SECRET {
                    *value =
                        current.get(name).cloned().ok_or_else(|| masked_without_value(name))?;
                }
            }
            let unchanged = secrets.len() == current.len()
                && secrets.iter().all(|(name, value)| {
                    current.get(name).is_some_and(|c| c.expose_secret() == value.expose_secret())
                });
            let version = if secrets.is_empty() {
                None
            } else if unchanged {
                job.settings.destination_secrets_version
            } else {
                let version = state.next_secrets_version();
                new_secrets = Some((secrets, version));
                Some(version)
            };
            patch.destination =
                Some(DestinationInput { conf: destination.redacted(), secrets_version: version });
        }
        let checks = self.logpush_checks(&patch).await?;
        let command = UpdateLogpushJob { job_id: id, patch }.into();
        let new_secrets = new_secrets.as_ref().map(|(secrets, version)| (secrets, *version));
        self.write_logpush_job(id, state, command, &checks, new_secrets, actor).await?;
        // The secrets the job no longer names go (a failure leaves ciphertext no event names).
        let now = self.read(|m| m.logpush_jobs.get(id).and_then(|r| r.destination_secrets()));
        if let Some(old) = current_ref.filter(|old| Some(old) != now.as_ref()) {
            if let Err(error) = self.vault.delete(&old).await {
                tracing::warn!(job_id = %id, %error, "could not remove a Logpush job's old destination secrets");
            }
        }
        Ok(())
    }

    /// Deletes a job, then its secrets.
    pub async fn delete_logpush_job(
        &self,
        id: LogpushJobId,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let command: LogpushJobCommand = DeleteLogpushJob { job_id: id }.into();
        self.execute(&logpush_job_stream(id), actor, |m| {
            decide(&m.logpush_jobs.state(id), command, &LogpushChecks::WITHOUT_CHALLENGE)
        })
        .await?;
        if let Err(error) = self.vault.delete_owner(&vault_owner(id)).await {
            tracing::warn!(job_id = %id, %error, "could not remove a deleted Logpush job's secrets");
        }
        Ok(())
    }

    /// The destination secrets of a job, by parameter name (for the Logpush worker).
    pub async fn logpush_destination_secrets(
        &self,
        secret: &SecretRef,
    ) -> Result<BTreeMap<String, SecretString>, AppError> {
        self.read_secrets(secret).await
    }

    /// The checks for `patch`: with the challenge verifier when it sends a challenge.
    async fn logpush_checks(&self, patch: &LogpushJobPatch) -> Result<LogpushChecks, AppError> {
        let ownership = match patch.ownership_challenge {
            Some(_) => Some(self.challenge_verifier().await?),
            None => None,
        };
        Ok(LogpushChecks { ownership })
    }

    /// Appends the next id to the counter stream, expecting the counter's version: of
    /// concurrent creates each gets its own id.
    async fn reserve_logpush_job_id(&self, actor: &Actor) -> Result<LogpushJobId, AppError> {
        let mut ids = self.read(|m| m.logpush_jobs.ids());
        for _ in 0..RESERVE_ATTEMPTS {
            let decided = decide(&ids, ReserveLogpushJobId, &())?;
            let Some(Event::LogpushJobIdReserved(reserved)) = decided.events.first() else {
                return Err(AppError::internal("the id counter reserved no id"));
            };
            let id = reserved.job_id;
            match crate::append(self.log.as_ref(), JOB_IDS_STREAM, decided, actor).await {
                Ok(_) => return Ok(id),
                Err(AppError::Conflict(_)) => {
                    // Another create took it: catch up with the counter's stream and try again.
                    let newer =
                        self.log.read_stream(JOB_IDS_STREAM, ids.stream_version + 1, 1_000).await?;
                    for event in &newer {
                        portico_core::domain::Aggregate::apply(&mut ids, &event.event);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(AppError::Conflict(
            "too many Logpush jobs are being created at the same time; retry".to_owned(),
        ))
    }

    /// Decides `command` against `state`, stores the new secrets (if any) under their version,
    /// and appends; if anything fails after the rules passed, the stored secrets go.
    async fn write_logpush_job(
        &self,
        id: LogpushJobId,
        state: LogpushJobState,
        command: LogpushJobCommand,
        checks: &LogpushChecks,
        new_secrets: Option<(&Secrets, u32)>,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let decided = decide(&state, command, checks)?;
        let mut staged = None;
        let result = async {
            if let Some((secrets, version)) = new_secrets {
                staged = Some(self.stage_secrets(id, version, secrets).await?);
            }
            self.execute(&logpush_job_stream(id), actor, |_| Ok(decided)).await
        }
        .await;
        if let Err(error) = result {
            if let Some(secret) = staged {
                if let Err(error) = self.vault.delete(&secret).await {
                    tracing::warn!(owner = %secret.owner, kind = %secret.kind, %error, "could not remove an unused secret");
                }
            }
            return Err(error);
        }
        Ok(())
    }

    async fn stage_secrets(
        &self,
        id: LogpushJobId,
        version: u32,
        secrets: &Secrets,
    ) -> Result<SecretRef, AppError> {
        let plain: BTreeMap<&str, &str> =
            secrets.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        let json = SecretString::new(serde_json::to_string(&plain).map_err(AppError::internal)?);
        drop(plain);
        self.vault.put_at(&vault_owner(id), DESTINATION_SECRETS_KIND, version, &json).await.map_err(
            |e| match e {
                VaultError::VersionTaken { .. } => AppError::Conflict(
                    "the Logpush job's destination was changed by another request at the same \
                     time; retry"
                        .to_owned(),
                ),
                VaultError::TooLarge { max, .. } => DomainError::InvalidField {
                    field: DESTINATION_FIELD.to_owned(),
                    message: format!("its secret parameters are longer than {max} bytes"),
                }
                .into(),
                other => AppError::unavailable(other),
            },
        )
    }

    async fn read_secrets(&self, secret: &SecretRef) -> Result<Secrets, AppError> {
        let json = self.vault.get(secret).await.map_err(AppError::unavailable)?;
        let map: BTreeMap<String, String> = serde_json::from_str(json.expose_secret())
            .map_err(|_| AppError::internal(format!("{secret} is not a JSON object")))?;
        Ok(map.into_iter().map(|(k, v)| (k, SecretString::new(v))).collect())
    }
}

fn masked_without_value(name: &str) -> AppError {
    DomainError::InvalidField {
        field: DESTINATION_FIELD.to_owned(),
        message: format!(
            "`{name}` is the masked value the API answers in place of a secret, and the job has \
             no stored value for it; send the real value"
        ),
    }
    .into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_domain_and_the_library_name_the_same_datasets() {
        assert_eq!(portico_core::domain::logpush_job::DATASET, portico_logpush::DATASET);
        let library: Vec<&str> = portico_logpush::Dataset::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(portico_core::domain::logpush_job::DATASETS.to_vec(), library);
    }
}
