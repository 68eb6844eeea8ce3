//! Portico's application services: the one place where a write to any resource happens.
//!
//! Every frontend (the admin API, the CLI, the demo) calls these command functions instead of
//! touching the log or the vault: each validates its input, decides the command with its
//! aggregate's rules ([`Aggregate::decide`]), stages secrets in the vault (and removes them if
//! the write does not happen), appends with the expected stream version, waits until the read
//! models show the write (read-your-writes), and triggers the side effects (a server sync).
//!
//! - [`servers`], [`portals`], [`service_tokens`], [`policies`]: the admin resources.
//! - [`identity_providers`], [`access_apps`]: how people sign in, and each portal's sign-in
//!   settings.
//! - [`logpush_jobs`]: where the portal logs are pushed: the jobs, their ownership challenges,
//!   and the worker that delivers them.
//! - [`api_tokens`], [`account`]: the admin API's own tokens and the first-start bootstrap.
//! - [`sign_in`]: people signing in to portals, and the OAuth authorization server.
//! - [`clock`]: the time expiries are decided by.
//! - [`error`]: what can go wrong, in terms a frontend maps to its own protocol.

pub mod access_apps;
pub mod account;
pub mod api_tokens;
pub mod clock;
pub mod error;
pub mod identity_providers;
pub mod logpush_jobs;
pub mod policies;
pub mod portals;
pub mod servers;
pub mod service_tokens;
pub mod sign_in;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upstream_auth;

use std::sync::Arc;
use std::time::Duration;

use portico_core::domain::Aggregate;
use portico_core::log::Appended;
use portico_core::vault::Vault;
use portico_core::{Actor, Event, EventLog, EventMetadata, ExpectedVersion, NewEvent};
use portico_gateway::authz::Authz;
use portico_gateway::{Gateway, GatewayConfig};
use portico_projections::call_log::CallLog;
use portico_projections::metrics::projection_lag;
use portico_projections::{Projection, ProjectionRunner, ReadModels};

pub use error::AppError;

/// How long a write waits for the read models to show it before it fails as unavailable.
pub const WRITE_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(10);

/// The application: storage, read models and the data plane, and the commands on them.
#[derive(Debug)]
pub struct App {
    pub log: Arc<dyn EventLog>,
    pub vault: Arc<Vault>,
    pub models: Arc<ProjectionRunner<ReadModels>>,
    /// The compiled policy set and the cache of what principals see.
    pub authz: Arc<Authz>,
    /// The data plane: upstream connections, sync, sessions.
    pub gateway: Arc<Gateway>,
    /// One-time PINs in flight, their rate limits and the mailer.
    pub pins: sign_in::OneTimePins,
    /// Client ID Metadata Documents fetched lately.
    pub cimd_cache: sign_in::CimdCache,
    /// OpenID Connect logins waiting for the provider's answer.
    pub oidc_logins: sign_in::oidc::OidcLogins,
    /// The time expiries are decided by.
    pub clock: clock::Clock,
    /// Every call through a portal, indexed by portal and time (the logs API's read model).
    pub calls: Arc<CallLog>,
    calls_follower: tokio::task::AbortHandle,
}

impl App {
    /// The application over opened storage and running read models. Starts the data plane's
    /// background tasks, so it must be called inside a Tokio runtime.
    pub fn start(
        log: Arc<dyn EventLog>,
        vault: Arc<Vault>,
        models: Arc<ProjectionRunner<ReadModels>>,
        calls: Arc<CallLog>,
        config: GatewayConfig,
    ) -> Arc<App> {
        let calls_follower = calls.follow(Arc::clone(&log)).abort_handle();
        let authz: Arc<Authz> = Arc::default();
        let gateway = Gateway::start(
            Arc::clone(&log),
            Arc::clone(&vault),
            Arc::clone(&models),
            Arc::clone(&authz),
            config,
        );
        Arc::new(App {
            log,
            vault,
            models,
            authz,
            gateway,
            pins: Default::default(),
            cimd_cache: Default::default(),
            oidc_logins: Default::default(),
            clock: Default::default(),
            calls,
            calls_follower,
        })
    }

    /// Sets the gauges read from the application's state rather than counted as things happen:
    /// servers by sync status, and each projection's lag behind the log. Call it before
    /// rendering the metrics.
    pub fn observe_metrics(&self) {
        self.gateway.observe_metrics();
        let head = *self.log.watch_head().borrow();
        projection_lag(ReadModels::NAME, head, self.models.position());
        projection_lag(CallLog::NAME, head, self.calls.position());
    }

    /// Lets go of the upstreams when the process stops (after the client sessions ended).
    pub async fn close(&self) {
        self.calls_follower.abort();
        self.gateway.close().await;
    }

    /// Runs `f` on the read models as they are now.
    pub fn read<R>(&self, f: impl FnOnce(&ReadModels) -> R) -> R {
        f(&self.models.read())
    }

    /// The one write path of every aggregate kept in the read models: `decide` reads the
    /// aggregate's state and services from the read models and decides (under the read lock,
    /// so it never awaits); the events are appended expecting the state's version (a concurrent
    /// write makes this a conflict, never a lost update), and the answer waits until the read
    /// models show them. A decision with no events appends nothing.
    pub(crate) async fn execute(
        &self,
        stream: &str,
        actor: &Actor,
        decide: impl FnOnce(&ReadModels) -> Result<Decided, AppError>,
    ) -> Result<Option<Appended>, AppError> {
        let decided = self.read(decide)?;
        let Some(appended) = append(self.log.as_ref(), stream, decided, actor).await? else {
            return Ok(None);
        };
        self.models
            .wait_for(appended.last_position, WRITE_VISIBILITY_TIMEOUT)
            .await
            .map_err(AppError::unavailable)?;
        Ok(Some(appended))
    }
}

/// A decided command: the events to append and the stream version they expect.
#[derive(Debug)]
pub(crate) struct Decided {
    version: u64,
    events: Vec<Event>,
}

/// Decides `command` against `state` with the aggregate's rules.
pub(crate) fn decide<A: Aggregate>(
    state: &A,
    command: A::Command,
    services: &A::Services,
) -> Result<Decided, AppError> {
    let events = state.decide(command, services)?;
    Ok(Decided { version: state.version(), events })
}

/// The write path of the aggregates not kept in a read model (the account and the API tokens,
/// written before the read models start): folds the stream from the log, decides, appends.
pub(crate) async fn execute_on_log<A: Aggregate>(
    log: &dyn EventLog,
    stream: &str,
    command: A::Command,
    services: &A::Services,
    actor: &Actor,
) -> Result<Option<Appended>, AppError> {
    let state: A = load(log, stream).await?;
    let decided = decide(&state, command, services)?;
    append(log, stream, decided, actor).await
}

/// The most events read to fold one stream that is not kept in a read model (an account or
/// API token stream has one or two).
const MAX_FOLDED_EVENTS: usize = 1_000;

/// Folds aggregate `A` from its stream in the log (for the aggregates not kept in a read
/// model, and for reading one before the read models run).
pub async fn load<A: Aggregate>(log: &dyn EventLog, stream: &str) -> Result<A, AppError> {
    let events = log.read_stream(stream, 1, MAX_FOLDED_EVENTS).await?;
    Ok(A::fold(events.iter().map(|e| &e.event)))
}

async fn append(
    log: &dyn EventLog,
    stream: &str,
    decided: Decided,
    actor: &Actor,
) -> Result<Option<Appended>, AppError> {
    if decided.events.is_empty() {
        return Ok(None);
    }
    let expected = match decided.version {
        0 => ExpectedVersion::NoStream,
        n => ExpectedVersion::Exact(n),
    };
    let events = decided.events.into_iter().map(NewEvent::new).collect();
    let metadata = EventMetadata::new(actor.clone());
    Ok(Some(log.append(stream, expected, events, &metadata).await?))
}

/// Random bytes from the OS, hex-encoded.
pub(crate) fn random_hex<const N: usize>() -> Result<String, AppError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(AppError::internal)?;
    Ok(hex::encode(bytes))
}
