//! Logpush jobs, as the admin API lists them and as the Logpush worker will find them: by id,
//! with the masked destination and where its secrets are in the vault (never the secrets), and
//! the state of every job stream and of the id counter, for deciding commands.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use portico_core::domain::Aggregate;
use portico_core::domain::logpush_job::{LogpushJob, LogpushJobId, LogpushJobIds, LogpushJobState};
use portico_core::vault::SecretRef;
use portico_core::{Actor, Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// One Logpush job that exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogpushJobRecord {
    pub job: LogpushJob,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Actor,
}

impl LogpushJobRecord {
    pub fn id(&self) -> LogpushJobId {
        self.job.job_id
    }

    /// Where the destination's secrets are in the vault (`Vault::get` reads them).
    pub fn destination_secrets(&self) -> Option<SecretRef> {
        self.job.settings.destination_secrets(self.job.job_id)
    }
}

/// Every Logpush job that exists, the state of every job stream (deleted ones included) and
/// of the id counter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogpushJobs {
    records: BTreeMap<LogpushJobId, LogpushJobRecord>,
    states: BTreeMap<LogpushJobId, LogpushJobState>,
    ids: LogpushJobIds,
}

impl LogpushJobs {
    /// Job `id`, if it exists.
    pub fn get(&self, id: LogpushJobId) -> Option<&LogpushJobRecord> {
        self.records.get(&id)
    }

    /// Every job that exists, by id (the order of creation).
    pub fn iter(&self) -> impl Iterator<Item = &LogpushJobRecord> {
        self.records.values()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The state of job `id`'s stream for deciding a command.
    pub fn state(&self, id: LogpushJobId) -> LogpushJobState {
        self.states.get(&id).cloned().unwrap_or_default()
    }

    /// The state of the id counter for reserving the next id.
    pub fn ids(&self) -> LogpushJobIds {
        self.ids.clone()
    }
}

impl Projection for LogpushJobs {
    const NAME: &'static str = "logpush_jobs";
    const VERSION: u32 = 2;

    fn apply(&mut self, recorded: &RecordedEvent) {
        let event = &recorded.event;
        let id = match event {
            Event::LogpushJobIdReserved(_) => {
                self.ids.apply(event);
                return;
            }
            Event::LogpushJobCreated(e) => e.job_id,
            Event::LogpushJobUpdated(e) => e.job_id,
            Event::LogpushJobDeleted(e) => e.job_id,
            Event::LogpushJobDelivered(e) => e.job_id,
            Event::LogpushJobFailed(e) => e.job_id,
            Event::LogpushJobBatchPlanned(e) => e.job_id,
            // Other events are not Logpush jobs'.
            _ => return,
        };
        let state = self.states.entry(id).or_default();
        state.apply(event);
        let Some(job) = &state.job else {
            self.records.remove(&id);
            return;
        };
        let (when, who) = (recorded.recorded_at, recorded.actor.clone());
        match self.records.get_mut(&id) {
            Some(record) if !matches!(event, Event::LogpushJobCreated(_)) => {
                record.job = job.clone();
                // A delivery report is the worker's, not a change of the job.
                if matches!(event, Event::LogpushJobUpdated(_)) {
                    record.updated_at = when;
                    record.updated_by = who;
                }
            }
            _ => {
                self.records.insert(
                    id,
                    LogpushJobRecord {
                        job: job.clone(),
                        created_at: when,
                        created_by: who.clone(),
                        updated_at: when,
                        updated_by: who,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use portico_core::domain::logpush_job::{
        LogpushJobCreated, LogpushJobDeleted, LogpushJobDelivered, LogpushJobIdReserved,
        LogpushJobSettings, LogpushJobUpdated,
    };

    use super::*;

    fn recorded(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: "logpush-job-1".into(),
            stream_version: position,
            event_id: uuid::Uuid::now_v7(),
            schema_version: 1,
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + chrono::TimeDelta::seconds(i64::try_from(position).unwrap()),
            actor: Actor::system("test"),
            correlation_id: portico_core::CorrelationId::new(),
            event,
        }
    }

    fn settings(enabled: bool) -> LogpushJobSettings {
        LogpushJobSettings {
            name: None,
            destination_conf: "https://siem.example.com/?header_Authorization=**********".into(),
            destination_secrets_version: Some(1),
            enabled,
            filter: None,
            output_options: None,
            max_upload_bytes: None,
            max_upload_records: None,
            max_upload_interval_seconds: None,
            frequency: None,
        }
    }

    #[test]
    fn jobs_through_their_life() {
        let id = LogpushJobId(1);
        let mut jobs = LogpushJobs::default();
        jobs.apply(&recorded(1, Event::LogpushJobIdReserved(LogpushJobIdReserved { job_id: id })));
        assert_eq!(jobs.ids().last_id, 1);
        jobs.apply(&recorded(
            2,
            Event::LogpushJobCreated(LogpushJobCreated {
                job_id: id,
                dataset: "mcp_portal_logs".into(),
                kind: String::new(),
                settings: settings(false),
            }),
        ));
        jobs.apply(&recorded(
            3,
            Event::LogpushJobUpdated(LogpushJobUpdated { job_id: id, settings: settings(true) }),
        ));
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
        jobs.apply(&recorded(
            4,
            Event::LogpushJobDelivered(LogpushJobDelivered {
                job_id: id,
                last_complete: at,
                batch: None,
            }),
        ));
        let record = jobs.get(id).unwrap();
        assert!(record.job.settings.enabled);
        assert_eq!(record.job.last_complete, Some(at));
        assert!(record.updated_at > record.created_at);
        assert_eq!(record.updated_at, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 3).unwrap());
        assert_eq!(
            record.destination_secrets(),
            Some(SecretRef::new("logpush-job:1", "destination_secrets", 1))
        );
        jobs.apply(&recorded(5, Event::LogpushJobDeleted(LogpushJobDeleted { job_id: id })));
        assert!(jobs.is_empty());
        assert_eq!(jobs.state(id).stream_version, 4);
    }
}
