//! The Logpush worker: delivers the batches of every enabled job, inside `portico serve`.
//!
//! A supervisor starts one task per enabled job whose lease this instance holds, and restarts
//! it when the job's settings change (or stops it when the job is disabled or deleted, or its
//! lease is lost). With PostgreSQL and several instances, the lease ([`portico_core::lease`])
//! gives each job to exactly one instance at a time: it is renewed every few seconds, given up
//! when the instance stops, and taken over by another instance [`LEASE_TTL`] after an instance
//! died. A job's task repeats:
//!
//! 1. **Plan.** If the job has a planned batch, that is the batch. Otherwise it follows the log
//!    after the job's checkpoint (the last delivered position, or the job's creation) with a
//!    subscription, feeding every event to a [`BatchBuilder`] until the first of the job's
//!    limits (records, bytes, interval since the first record), and records the range as
//!    planned ([`PlanLogpushBatch`]): from then on that range is the batch, whatever happens.
//! 2. **Deliver.** It takes the records of exactly that range that the job's filter and sampling
//!    keep (those it just saw, or, for a batch planned earlier, read back from the log),
//!    encodes them and sends the object, named after the range, to the
//!    destination. Only once the destination acknowledged it does the job's checkpoint move
//!    ([`RecordLogpushDelivery`] with the batch). A failure is recorded (`last_error`,
//!    `error_message`) and the same batch is sent again after a backoff that doubles up to
//!    [`LogpushConfig::max_backoff`]; a success clears `error_message`.
//!
//! After a crash, the planned batch is rebuilt from the same range of the log: the same
//! records, encoded to the same bytes, under the same name. An object store overwrites the
//! object with itself; an HTTP receiver gets the same `Idempotency-Key` again. Every record is
//! in exactly one batch, since batches follow each other without gaps or overlaps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use portico_core::domain::account::{ACCOUNT_STREAM, AccountState};
use portico_core::domain::logpush_job::{
    DeliveredBatch, Destination, LogpushJob, LogpushJobId, LogpushJobSettings, PlanLogpushBatch,
    RecordLogpushDelivery, logpush_job_stream,
};
use portico_core::log::Subscription;
use portico_core::{Actor, Leases, Position, RecordedEvent};
use portico_gateway::ssrf::UpstreamPolicy;
use portico_gateway::transport::http_client;
use portico_logpush::batch::{BatchBuilder, Limits, Selection, records_of};
use portico_logpush::sink::{self, Clients, Delivery, HttpSend, PlainHttp, Sink};
use portico_logpush::{Encoder, Filter, Record, Row, fill_values};

use super::{LogpushChecks, dataset_of, output_format};
use crate::{App, AppError, decide};

/// The worker's settings (`portico serve` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogpushConfig {
    /// The batch interval of jobs that set no `max_upload_interval_seconds` (default 30 s).
    pub default_interval: Duration,
    /// The longest wait before a failed batch is sent again (default 5 min).
    pub max_backoff: Duration,
}

impl Default for LogpushConfig {
    fn default() -> Self {
        LogpushConfig {
            default_interval: portico_logpush::batch::DEFAULT_MAX_INTERVAL,
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// How often the supervisor looks for jobs to start, stop or restart.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
/// How long a job's lease lives without renewal: how long the other instances wait before
/// they take a job over from an instance that died without giving its leases up.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the supervisor renews its leases and tries to take those of jobs nobody runs.
const CHECK_LEASES_EVERY: Duration = Duration::from_secs(3);
/// How long before its lease expires an instance stops a job whose lease it could not renew,
/// so that it has stopped before another instance can take the job.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How long one request to a destination may take (an object may be up to 1 GB).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest answer read from a destination.
const MAX_ANSWER: usize = 1024 * 1024;
/// How many events are read from the log at a time when a batch is rebuilt.
const READ_PAGE: usize = 1_000;
/// How long a job following the log waits after a short read before it reads again, so that a
/// busy log is read a few times a second rather than once per commit.
const FOLLOW_PAUSE: Duration = Duration::from_millis(200);
/// How many times a report is recorded again when a concurrent change of the job's stream
/// (an admin's update) made its append conflict.
const REPORT_ATTEMPTS: usize = 5;

/// Waits for the next events of the log: the next one, and those already read with it.
async fn next_events(subscription: &mut Subscription) -> Result<Vec<RecordedEvent>, Failure> {
    let first = subscription.next().await.map_err(Failure::log)?;
    let mut events = vec![first];
    events.extend(subscription.drain_buffered());
    Ok(events)
}

/// The actor of the worker's reports.
fn worker() -> Actor {
    Actor::system("logpush")
}

impl App {
    /// Starts the Logpush worker. It runs the jobs whose lease `holder` (this instance) holds in
    /// `leases` (every job, with [`portico_core::LocalLeases`]) until [`LogpushWorker::stop`].
    pub fn start_logpush(
        self: &Arc<Self>,
        config: LogpushConfig,
        leases: Arc<dyn Leases>,
        holder: String,
    ) -> LogpushWorker {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let supervisor = Supervisor {
            app: Arc::clone(self),
            config,
            leases,
            holder,
            held: HashMap::new(),
            running: HashMap::new(),
        };
        LogpushWorker { stop, task: tokio::spawn(supervisor.run(stopped)) }
    }
}

/// The running Logpush worker of an instance.
#[derive(Debug)]
pub struct LogpushWorker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LogpushWorker {
    /// Stops every job's task and gives up this instance's leases, so that another instance
    /// takes the jobs over at once rather than after [`LEASE_TTL`]. A batch cut off mid-upload
    /// stays planned; whoever runs the job next sends it again.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the Logpush worker did not stop cleanly");
        }
    }
}

/// The name of a job's lease.
fn lease_name(id: LogpushJobId) -> String {
    format!("logpush-job:{id}")
}

/// The HTTP clients of the destinations: the gateway's SSRF-guarded one, and a plain one for
/// the AWS default credential chain.
pub(crate) fn clients(app: &App) -> Result<Clients, String> {
    let policy = app.gateway.upstreams.config().policy;
    Ok(Clients {
        guarded: Arc::new(GuardedHttp { policy }),
        aws_credentials: Arc::new(PlainHttp::new(REQUEST_TIMEOUT)?),
    })
}

/// Starts, stops and restarts the jobs' tasks, and keeps their leases.
struct Supervisor {
    app: Arc<App>,
    config: LogpushConfig,
    leases: Arc<dyn Leases>,
    /// This instance's name in the leases.
    holder: String,
    /// The jobs whose lease this instance holds, with the moment it must stop running them
    /// unless the lease is renewed.
    held: HashMap<LogpushJobId, Instant>,
    running: HashMap<LogpushJobId, (LogpushJobSettings, tokio::task::JoinHandle<()>)>,
}

impl Supervisor {
    async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let clients = match clients(&self.app) {
            Ok(clients) => clients,
            Err(error) => {
                tracing::error!(%error, "the Logpush worker cannot start: no HTTP client");
                return;
            }
        };
        let mut leases_checked: Option<Instant> = None;
        loop {
            let enabled: Vec<(LogpushJobId, LogpushJobSettings)> = self.app.read(|m| {
                m.logpush_jobs
                    .iter()
                    .filter(|r| r.job.settings.enabled)
                    .map(|r| (r.id(), r.job.settings.clone()))
                    .collect()
            });
            if leases_checked.is_none_or(|at| at.elapsed() >= CHECK_LEASES_EVERY) {
                leases_checked = Some(Instant::now());
                self.check_leases(&enabled).await;
            }
            let now = Instant::now();
            self.held.retain(|id, until| {
                let valid = *until > now;
                if !valid {
                    tracing::warn!(job_id = %id, "the lease of a Logpush job could not be renewed in time; this instance stops running it");
                }
                valid
            });
            let held = &self.held;
            self.running.retain(|id, (settings, task)| {
                let current =
                    held.contains_key(id) && enabled.iter().any(|(i, s)| i == id && s == settings);
                if !current {
                    // A batch cut off mid-upload is planned: the next run sends it again.
                    task.abort();
                }
                current && !task.is_finished()
            });
            for (id, settings) in enabled {
                if !self.held.contains_key(&id) {
                    continue;
                }
                if let std::collections::hash_map::Entry::Vacant(entry) = self.running.entry(id) {
                    let job = JobRunner {
                        app: Arc::clone(&self.app),
                        id,
                        settings: settings.clone(),
                        config: self.config,
                        clients: clients.clone(),
                    };
                    entry.insert((settings, tokio::spawn(job.run())));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(SUPERVISE_EVERY) => {}
                _ = stop.changed() => break,
            }
        }
        for (_, (_, task)) in self.running.drain() {
            task.abort();
        }
        for (id, _) in std::mem::take(&mut self.held) {
            self.release(id).await;
        }
    }

    /// Takes or renews the lease of every enabled job, and gives up those of jobs no longer
    /// enabled.
    async fn check_leases(&mut self, enabled: &[(LogpushJobId, LogpushJobSettings)]) {
        let gone: Vec<LogpushJobId> =
            self.held.keys().filter(|id| !enabled.iter().any(|(i, _)| i == *id)).copied().collect();
        for id in gone {
            self.held.remove(&id);
            self.release(id).await;
        }
        for (id, _) in enabled {
            let asked = Instant::now();
            match self.leases.hold(&lease_name(*id), &self.holder, LEASE_TTL).await {
                Ok(true) => {
                    if self.held.insert(*id, asked + LEASE_TTL - LEASE_MARGIN).is_none() {
                        tracing::info!(job_id = %id, holder = %self.holder, "this instance runs the Logpush job");
                    }
                }
                Ok(false) => {
                    if self.held.remove(id).is_some() {
                        tracing::warn!(job_id = %id, "another instance took the Logpush job over");
                    }
                }
                // Keep running until the lease would expire: the next check may renew it.
                Err(error) => {
                    tracing::warn!(job_id = %id, %error, "could not renew a Logpush job's lease");
                }
            }
        }
        metrics::gauge!("portico_logpush_jobs_held").set(self.held.len() as f64);
    }

    async fn release(&self, id: LogpushJobId) {
        if let Err(error) = self.leases.release(&lease_name(id), &self.holder).await {
            tracing::warn!(job_id = %id, %error, "could not give up a Logpush job's lease");
        }
    }
}

/// Portico's SSRF-guarded client, as the sinks' [`HttpSend`].
#[derive(Debug)]
struct GuardedHttp {
    policy: UpstreamPolicy,
}

#[async_trait::async_trait]
impl HttpSend for GuardedHttp {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, String> {
        http_client::send(self.policy, request, MAX_ANSWER, REQUEST_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }
}

/// One job's task.
struct JobRunner {
    app: Arc<App>,
    id: LogpushJobId,
    settings: LogpushJobSettings,
    config: LogpushConfig,
    clients: Clients,
}

/// What a job delivers with, built once per run of its task.
struct Pipeline {
    sink: Box<dyn Sink>,
    selection: Selection,
    encoder: Encoder,
    limits: Limits,
}

/// Why an attempt ended.
#[derive(Debug)]
enum Failure {
    /// The job is gone: its task ends.
    Stop,
    /// The attempt failed: the failure is recorded and the work tried again after a backoff.
    Retry(String),
}

impl Failure {
    fn log(error: portico_core::LogError) -> Failure {
        Failure::Retry(format!("the event log could not be read: {error}"))
    }
}

impl JobRunner {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        let mut pipeline = None;
        loop {
            let result = match &pipeline {
                Some(pipeline) => self.round(pipeline).await,
                None => self.pipeline().await.map(|built| pipeline = Some(built)),
            };
            let message = match result {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                Err(Failure::Stop) => return,
                Err(Failure::Retry(message)) => message,
            };
            tracing::warn!(job_id = %self.id, error = %message, retry_in = ?backoff, "Logpush delivery failed");
            let failed =
                RecordLogpushDelivery { job_id: self.id, outcome: Err((Utc::now(), message)) };
            if let Err(Failure::Stop) = self.report(failed).await {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    /// The job's sink, selection, encoder and limits.
    async fn pipeline(&self) -> Result<Pipeline, Failure> {
        let settings = &self.settings;
        let destination = Destination::parse(&settings.destination_conf)
            .map_err(|e| Failure::Retry(format!("the destination is not valid: {e}")))?;
        let secrets = match settings.destination_secrets(self.id) {
            Some(secret) => self
                .app
                .logpush_destination_secrets(&secret)
                .await
                .map_err(|e| Failure::Retry(format!("the destination's secrets: {e}")))?,
            None => Default::default(),
        };
        let sink =
            sink::open(&destination, &secrets, &self.clients).await.map_err(Failure::Retry)?;
        let Some(dataset) =
            self.app.read(|m| m.logpush_jobs.get(self.id).map(|r| r.job.dataset.clone()))
        else {
            return Err(Failure::Stop);
        };
        let dataset = dataset_of(&dataset).map_err(Failure::Retry)?;
        let account: AccountState = crate::load(&*self.app.log, ACCOUNT_STREAM)
            .await
            .map_err(|e| Failure::Retry(format!("the account could not be read: {e}")))?;
        let owner_id = account.account_id.map(|a| a.to_string()).unwrap_or_default();
        let filter = Filter::parse_optional(dataset, settings.filter.as_deref())
            .map_err(|e| Failure::Retry(format!("the filter is not valid: {e}")))?;
        let format = output_format(dataset, settings.output_options.as_ref()).map_err(
            |(key, message)| match key.as_str() {
                "" => Failure::Retry(format!("output_options: {message}")),
                key => Failure::Retry(format!("output_options.{key}: {message}")),
            },
        )?;
        let limits = Limits::of_job(
            settings.max_upload_records,
            settings.max_upload_bytes,
            settings.max_upload_interval_seconds,
            self.config.default_interval,
        );
        Ok(Pipeline {
            sink,
            selection: Selection { job_id: self.id.0, filter, format: format.clone(), owner_id },
            encoder: Encoder::new(format, self.id.0),
            limits,
        })
    }

    /// Plans the next batch if none is planned, and delivers the planned one.
    async fn round(&self, pipeline: &Pipeline) -> Result<(), Failure> {
        let Some(job) = self.app.read(|m| m.logpush_jobs.get(self.id).map(|r| r.job.clone()))
        else {
            return Err(Failure::Stop);
        };
        let (first, last, kept) = match job.planned {
            Some((first, last)) => (first, last, None),
            None => {
                let after = self.checkpoint(&job).await?;
                let (first, last, kept) = self.fill(pipeline, after).await?;
                self.report(PlanLogpushBatch { job_id: self.id, first, last }).await?;
                (first, last, Some(kept))
            }
        };
        self.deliver(pipeline, first, last, kept).await
    }

    /// The last position delivered, or the job's creation.
    async fn checkpoint(&self, job: &LogpushJob) -> Result<Position, Failure> {
        if let Some(through) = job.delivered_through {
            return Ok(through);
        }
        let stream = logpush_job_stream(self.id);
        let created = self.app.log.read_stream(&stream, 1, 1).await.map_err(Failure::log)?;
        created.first().map(|e| e.position).ok_or(Failure::Stop)
    }

    /// Follows the log after `after` until a batch is full; its range, and the records the job
    /// keeps in it.
    async fn fill(
        &self,
        pipeline: &Pipeline,
        after: Position,
    ) -> Result<(Position, Position, Vec<Record>), Failure> {
        let mut subscription = Subscription::new(Arc::clone(&self.app.log), after);
        let mut batch = BatchBuilder::new(pipeline.limits, after + 1);
        let mut records = Vec::new();
        loop {
            let events = match batch.deadline() {
                Some(deadline) => tokio::select! {
                    events = next_events(&mut subscription) => events?,
                    () = tokio::time::sleep_until(deadline) => break,
                },
                None => next_events(&mut subscription).await?,
            };
            let mut full = false;
            for event in &events {
                let kept = pipeline.selection.keep(event);
                batch.push(event, kept.as_ref());
                records.extend(kept);
                if batch.is_full() || batch.is_long_and_empty() {
                    full = true;
                    break;
                }
            }
            if full {
                break;
            }
            // Let appends gather: one read of the log per pause, not one per commit.
            if events.len() < READ_PAGE {
                let pause = tokio::time::Instant::now() + FOLLOW_PAUSE;
                let until = batch.deadline().map_or(pause, |deadline| deadline.min(pause));
                tokio::time::sleep_until(until).await;
            }
        }
        let (first, last) = batch
            .range()
            .ok_or_else(|| Failure::Retry("a batch ended with no event".to_owned()))?;
        Ok((first, last, records))
    }

    /// Sends the planned batch `first..=last` and moves the checkpoint past it. `kept` are its
    /// records when this run just planned it (the same the range gives, read by the same
    /// selection); otherwise (a retry, a batch planned before a restart or a takeover) they are
    /// read back from the log.
    async fn deliver(
        &self,
        pipeline: &Pipeline,
        first: Position,
        last: Position,
        kept: Option<Vec<Record>>,
    ) -> Result<(), Failure> {
        let mut records = match kept {
            Some(records) => records,
            None => records_of(&pipeline.selection, &self.read_range(first, last).await?),
        };
        fill_values(&mut records, &*self.app.log).await.map_err(Failure::Retry)?;
        // Encoding a batch takes tens of milliseconds of CPU: off the async runtime, which
        // also carries the calls' upstream traffic.
        let encoder = pipeline.encoder.clone();
        let (records, encoded) = tokio::task::spawn_blocking(move || {
            let encoded = (!records.is_empty()).then(|| encoder.encode(&records));
            (records, encoded)
        })
        .await
        .map_err(|e| Failure::Retry(format!("the batch encoder stopped: {e}")))?;
        let batch = match (records.first(), encoded) {
            (Some(head), Some(encoded)) => {
                let object = encoded
                    .map_err(|e| Failure::Retry(format!("the batch could not be encoded: {e}")))?;
                let delivery = Delivery {
                    job_id: self.id.0,
                    first,
                    last,
                    date: head.datetime().date_naive(),
                    records: &records,
                    format: &pipeline.selection.format,
                    object: &object,
                };
                let name = pipeline.sink.deliver(&delivery).await.map_err(Failure::Retry)?;
                tracing::info!(job_id = %self.id, first, last, records = records.len(), bytes = object.body.len(), object = %name, "Logpush batch delivered");
                metrics::counter!("portico_logpush_records_delivered_total", "job" => self.id.to_string())
                    .increment(records.len() as u64);
                delivery.report(name)
            }
            _ => DeliveredBatch { first, last, records: 0, bytes: 0, object: None },
        };
        let at = Utc::now();
        self.report(RecordLogpushDelivery { job_id: self.id, outcome: Ok((at, Some(batch))) }).await
    }

    /// The events at positions `first..=last`.
    async fn read_range(
        &self,
        first: Position,
        last: Position,
    ) -> Result<Vec<RecordedEvent>, Failure> {
        let mut events = Vec::new();
        let mut after = first - 1;
        while after < last {
            let page = self.app.log.read_all(after, READ_PAGE).await.map_err(Failure::log)?;
            let Some(end) = page.last().map(|e| e.position) else {
                return Err(Failure::Retry(format!(
                    "the log ends at {after}, before the batch's last position {last}"
                )));
            };
            events.extend(page.into_iter().take_while(|e| e.position <= last));
            after = end;
        }
        Ok(events)
    }

    /// Records one of the worker's reports on the job's stream.
    async fn report(
        &self,
        command: impl Into<portico_core::domain::logpush_job::LogpushJobCommand> + Clone,
    ) -> Result<(), Failure> {
        let stream = logpush_job_stream(self.id);
        for _ in 0..REPORT_ATTEMPTS {
            let command = command.clone().into();
            let result = self
                .app
                .execute(&stream, &worker(), |m| {
                    decide(
                        &m.logpush_jobs.state(self.id),
                        command,
                        &LogpushChecks::WITHOUT_CHALLENGE,
                    )
                })
                .await;
            match result {
                Ok(_) => return Ok(()),
                // An admin changed the job meanwhile: decide again on its new state.
                Err(AppError::Conflict(_)) => continue,
                Err(AppError::Rule(portico_core::domain::DomainError::NotFound { .. })) => {
                    return Err(Failure::Stop);
                }
                Err(error) => {
                    return Err(Failure::Retry(format!(
                        "the report could not be recorded: {error}"
                    )));
                }
            }
        }
        Err(Failure::Retry(
            "the job's stream kept changing; the report will be recorded again".to_owned(),
        ))
    }
}
