//! Capability sync: read an upstream's tools and prompts and record what was found.
//!
//! A sync connects (through the pool), lists every tool and prompt (all pages), and appends
//! one event to the server's stream: [`ServerSynced`] with the lists (or without them when
//! they equal the catalog's, so a periodic sync of an unchanged server stays small), or
//! [`ServerSyncFailed`] with error details in the API's shape. The catalog, and so every
//! `tools/list`, is rebuilt from those events like everything else.
//!
//! Syncs run on request (`POST .../servers/{id}/sync`, and after a server is created or its
//! URL or credential changes), when an upstream announces `list_changed`, and periodically.
//! Each server has its own lock, so two syncs of one server never overlap and a slow upstream
//! holds up only itself.
//!
//! [`ServerSynced`]: portico_core::domain::server::ServerSynced
//! [`ServerSyncFailed`]: portico_core::domain::server::ServerSyncFailed

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use portico_core::domain::ids::ServerId;
use portico_core::domain::server::{
    self, RecordSync, SyncError, SyncOutcome, SyncedCapabilities, sync_stream,
};
use portico_core::domain::upstream_auth::UpstreamGrantOwner;
use portico_core::{Actor, EventLog, EventMetadata, ExpectedVersion, NewEvent};
use portico_projections::catalog::{CatalogServer, SyncStatus};
use portico_projections::{ProjectionRunner, ReadModels};
use rmcp::service::ServiceError;
use tokio::sync::mpsc;

use crate::transport::ConnectError;
use crate::upstream::{AccessError, Connection, Upstreams};

/// How long a sync waits for the read models to show what it recorded.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the scheduler looks for servers due a sync.
const SCHEDULER_TICK: Duration = Duration::from_secs(30);
/// How soon a sync that failed in a way worth retrying is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// What a sync found, as `POST .../sync` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub status: SyncStatus,
    pub tools: usize,
    pub prompts: usize,
    pub error: Option<SyncError>,
}

/// Why a sync could not even be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    #[error("server `{0}` does not exist")]
    NoServer(ServerId),
    #[error("the sync result could not be recorded: {0}")]
    Record(String),
    /// An OAuth server with no grant to sync with.
    #[error("the server needs an OAuth authorization before it can be synced: {0}")]
    Unauthorized(String),
}

/// Why listing an upstream's capabilities failed.
enum Fetch {
    /// Recorded as the sync's failure.
    Failed(SyncError),
    /// No grant: nothing is recorded.
    Unauthorized(String),
}

/// Runs syncs and the schedule that triggers them.
#[derive(Debug)]
pub struct Syncer {
    log: Arc<dyn EventLog>,
    models: Arc<ProjectionRunner<ReadModels>>,
    upstreams: Arc<Upstreams>,
    locks: Mutex<HashMap<ServerId, Arc<tokio::sync::Mutex<()>>>>,
    requests: mpsc::UnboundedSender<ServerId>,
}

impl Syncer {
    /// A syncer; `requests` is the sender side of the queue [`Syncer::run`] serves.
    pub fn new(
        log: Arc<dyn EventLog>,
        models: Arc<ProjectionRunner<ReadModels>>,
        upstreams: Arc<Upstreams>,
        requests: mpsc::UnboundedSender<ServerId>,
    ) -> Self {
        Syncer { log, models, upstreams, locks: Mutex::default(), requests }
    }

    /// Asks for a sync of `server_id` soon, in the background.
    pub fn request(&self, server_id: ServerId) {
        let _ = self.requests.send(server_id);
    }

    /// Syncs `server_id` now and reports what was recorded.
    pub async fn sync(&self, server_id: &ServerId) -> Result<SyncReport, SyncFailure> {
        self.sync_as(server_id, None).await
    }

    /// Syncs `server_id` with the OAuth grant of `owner` (an OAuth server no admin authorized
    /// is synced with the grant of the first person who authorizes it). Servers that are not
    /// OAuth ignore `owner`.
    pub async fn sync_as(
        &self,
        server_id: &ServerId,
        owner: Option<&UpstreamGrantOwner>,
    ) -> Result<SyncReport, SyncFailure> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(locks.entry(server_id.clone()).or_default())
        };
        let _one_at_a_time = lock.lock().await;
        let server = self.catalog_entry(server_id)?;
        let outcome = match self.fetch(&server, owner).await {
            Ok(capabilities) => SyncOutcome::Synced(capabilities),
            Err(Fetch::Failed(error)) => SyncOutcome::Failed(error),
            // Nothing to record: the server waits for an authorization (its
            // `authentication_status` says so), keeping what an earlier sync found.
            Err(Fetch::Unauthorized(reason)) => {
                crate::metrics::synced(server_id, "unauthorized");
                return Err(SyncFailure::Unauthorized(reason));
            }
        };
        // Counted only for servers in the catalog: the id is one the admin configured.
        match self.record(server_id, outcome).await {
            Ok(recorded) => crate::metrics::synced(server_id, recorded),
            Err(failure) => {
                crate::metrics::synced(server_id, "not_recorded");
                return Err(failure);
            }
        }
        let server = self.catalog_entry(server_id)?;
        Ok(SyncReport {
            status: server.sync.status,
            tools: server.sync.tools.len(),
            prompts: server.sync.prompts.len(),
            error: server.sync.error.clone(),
        })
    }

    fn catalog_entry(&self, server_id: &ServerId) -> Result<CatalogServer, SyncFailure> {
        self.models
            .read()
            .catalog
            .get(server_id)
            .cloned()
            .ok_or_else(|| SyncFailure::NoServer(server_id.clone()))
    }

    /// Lists the upstream's tools and prompts. A pooled connection that turns out dead (the
    /// upstream restarted) is replaced once.
    async fn fetch(
        &self,
        server: &CatalogServer,
        owner: Option<&UpstreamGrantOwner>,
    ) -> Result<SyncedCapabilities, Fetch> {
        let mut retried = false;
        loop {
            let connection = match self.upstreams.connection(server, owner).await {
                Ok(connection) => connection,
                Err(AccessError::Connect(error)) => {
                    return Err(Fetch::Failed(connect_error(&error)));
                }
                Err(AccessError::Authorization { reason, .. }) => {
                    return Err(Fetch::Unauthorized(reason));
                }
            };
            match self.list(&connection).await {
                Ok(capabilities) => return Ok(capabilities),
                Err(error) => {
                    let dead = matches!(
                        error,
                        ServiceError::TransportClosed | ServiceError::TransportSend(_)
                    );
                    if dead {
                        self.upstreams.discard(&connection).await;
                    }
                    if dead && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(Fetch::Failed(service_error(&error)));
                }
            }
        }
    }

    async fn list(&self, connection: &Connection) -> Result<SyncedCapabilities, ServiceError> {
        let timeout = self.upstreams.config().call_timeout;
        let peer = connection.peer();
        let capabilities =
            peer.peer_info().map(|info| info.capabilities.clone()).unwrap_or_default();
        let tools = if capabilities.tools.is_some() {
            bounded(timeout, peer.list_all_tools()).await?
        } else {
            Vec::new()
        };
        let prompts = if capabilities.prompts.is_some() {
            bounded(timeout, peer.list_all_prompts()).await?
        } else {
            Vec::new()
        };
        Ok(SyncedCapabilities {
            tools: tools.iter().filter_map(|t| serde_json::to_value(t).ok()).collect(),
            prompts: prompts.iter().filter_map(|p| serde_json::to_value(p).ok()).collect(),
        })
    }

    /// Decides and appends the sync's event (to the server's sync stream, which admin writes
    /// never conflict with) and waits until the read models show it.
    /// Returns what was recorded: `synced`, `unchanged` or `failed`.
    async fn record(
        &self,
        server_id: &ServerId,
        outcome: SyncOutcome,
    ) -> Result<&'static str, SyncFailure> {
        let (state, unchanged) = {
            let models = self.models.read();
            let state = models.aggregates.server(server_id);
            let unchanged = match (&outcome, models.catalog.get(server_id)) {
                (SyncOutcome::Synced(found), Some(entry)) => {
                    state.ever_synced
                        && *entry.sync.tools == found.tools
                        && *entry.sync.prompts == found.prompts
                }
                _ => false,
            };
            (state, unchanged)
        };
        let outcome = if unchanged { SyncOutcome::Unchanged } else { outcome };
        let recorded = match &outcome {
            SyncOutcome::Synced(_) => "synced",
            SyncOutcome::Unchanged => "unchanged",
            SyncOutcome::Failed(_) => "failed",
        };
        let command = RecordSync { server_id: server_id.clone(), outcome };
        let events = server::decide(&state, command.into()).map_err(|e| {
            if state.exists() {
                SyncFailure::Record(e.to_string())
            } else {
                SyncFailure::NoServer(server_id.clone())
            }
        })?;
        let events = events.into_iter().map(NewEvent::new).collect();
        let metadata = EventMetadata::new(Actor::system("sync"));
        let appended = self
            .log
            .append(&sync_stream(server_id), ExpectedVersion::Any, events, &metadata)
            .await
            .map_err(|e| SyncFailure::Record(e.to_string()))?;
        self.models
            .wait_for(appended.last_position, VISIBILITY_TIMEOUT)
            .await
            .map_err(|e| SyncFailure::Record(e.to_string()))?;
        Ok(recorded)
    }

    /// Serves sync requests and, with an `interval`, syncs servers that are due: never synced,
    /// URL or credential changed since the last attempt, or last synced more than `interval`
    /// ago. Runs until `requests` closes.
    pub async fn run(
        self: Arc<Self>,
        mut requests: mpsc::UnboundedReceiver<ServerId>,
        schedule: Option<Duration>,
    ) {
        let scheduled = schedule.is_some();
        let interval = schedule.unwrap_or(Duration::MAX);
        let mut tick = tokio::time::interval(SCHEDULER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What each server looked like at our last attempt, to notice changes.
        let mut attempted: HashMap<ServerId, (String, Option<u32>, chrono::DateTime<Utc>)> =
            HashMap::new();
        loop {
            let due: Vec<ServerId> = tokio::select! {
                request = requests.recv() => match request {
                    Some(id) => vec![id],
                    None => return,
                },
                _ = tick.tick(), if scheduled => {
                    let now = Utc::now();
                    let models = self.models.read();
                    attempted.retain(|id, _| models.catalog.get(id).is_some());
                    models
                        .catalog
                        .iter()
                        .filter(|s| {
                            let credential = s.credentials.get(&portico_core::domain::server::CredentialKind::AuthCredentials).copied();
                            match attempted.get(&s.server_id) {
                                None => s.sync.status == SyncStatus::Waiting
                                    || s.sync.last_synced.is_none_or(|at| now - at >= to_chrono(interval)),
                                Some((url, version, at)) => *url != s.hostname
                                    || *version != credential
                                    || now - *at >= to_chrono(interval)
                                    // A failure worth retrying is retried sooner.
                                    || (s.sync.status == SyncStatus::Error
                                        && s.sync.error.as_ref().is_some_and(|e| e.retryable)
                                        && now - *at >= to_chrono(RETRY_INTERVAL.min(interval))),
                            }
                        })
                        .map(|s| s.server_id.clone())
                        .collect()
                }
            };
            for id in due {
                if let Ok(server) = self.catalog_entry(&id) {
                    let credential = server
                        .credentials
                        .get(&portico_core::domain::server::CredentialKind::AuthCredentials)
                        .copied();
                    attempted.insert(id.clone(), (server.hostname.clone(), credential, Utc::now()));
                }
                let syncer = Arc::clone(&self);
                tokio::spawn(async move {
                    match syncer.sync(&id).await {
                        Ok(report) => tracing::info!(
                            server = %id,
                            status = report.status.as_str(),
                            tools = report.tools,
                            prompts = report.prompts,
                            error = report.error.as_ref().map(|e| e.cause.as_str()),
                            "synced"
                        ),
                        Err(SyncFailure::NoServer(_)) => {}
                        Err(SyncFailure::Unauthorized(reason)) => {
                            tracing::info!(server = %id, %reason, "not synced: waiting for an OAuth authorization");
                        }
                        Err(error) => tracing::warn!(server = %id, %error, "sync not recorded"),
                    }
                });
            }
        }
    }
}

async fn bounded<T>(
    timeout: Duration,
    request: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    tokio::time::timeout(timeout, request).await.unwrap_or(Err(ServiceError::Timeout { timeout }))
}

fn to_chrono(interval: Duration) -> chrono::Duration {
    chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX)
}

/// A connection failure as error details.
pub fn connect_error(error: &ConnectError) -> SyncError {
    SyncError {
        cause: error.cause.clone(),
        is_upstream: error.is_upstream,
        mcp_code: error.mcp_code.map(i64::from),
        retryable: error.retryable,
        status_code: error.status_code,
    }
}

/// A failed request on an open connection as error details.
pub fn service_error(error: &ServiceError) -> SyncError {
    match error {
        ServiceError::McpError(e) => SyncError {
            cause: format!("the upstream answered with an error: {}", e.message),
            is_upstream: true,
            mcp_code: Some(i64::from(e.code.0)),
            retryable: false,
            status_code: None,
        },
        ServiceError::Timeout { timeout } => SyncError {
            cause: format!("the upstream did not answer within {} s", timeout.as_secs_f64()),
            is_upstream: true,
            mcp_code: None,
            retryable: true,
            status_code: None,
        },
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => SyncError {
            cause: "the connection to the upstream closed".to_owned(),
            is_upstream: true,
            mcp_code: None,
            retryable: true,
            status_code: None,
        },
        other => SyncError {
            cause: other.to_string(),
            is_upstream: true,
            mcp_code: None,
            retryable: true,
            status_code: None,
        },
    }
}
