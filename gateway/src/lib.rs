//! Portico's MCP data plane.
//!
//! - [`ssrf`]: which upstream addresses Portico may connect to.
//! - [`transport`]: connecting to an upstream over streamable HTTP or the legacy HTTP+SSE
//!   transport, chosen as the product does (URL suffix, then fallback on 404/405/406).
//! - [`upstream`]: the pool of upstream connections, and progress relaying.
//! - [`sync`]: reading upstreams' tools and prompts into the log.
//! - [`authz`]: what a principal sees in a portal and may call there.
//! - [`exposed`]: namespacing, overrides and Cedar filtering of a portal's tools and prompts.
//! - [`session`]: one client's MCP session with a portal (rmcp's server handler).
//! - [`audit`]: recording every call, failing closed when the log refuses the record.
//! - [`metrics`]: what the data plane counts and measures.

pub mod authz;
pub mod selection;
pub mod ssrf;
pub mod sync;
pub mod transport;
pub mod upstream;
pub mod upstream_grants;
pub mod upstream_oauth;

pub mod context;
pub mod exposed;
pub mod session;

pub mod audit;
pub mod message;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use portico_codemode::quickjs::QuickJs;
use portico_codemode::{Limits, Sandbox};
use portico_core::domain::call::{PortalRequestHandled, calls_stream};
use portico_core::domain::ids::ServerId;
use portico_core::vault::Vault;
use portico_core::{Actor, Event, EventLog, EventMetadata, ExpectedVersion, NewEvent};
use portico_policies::Decision;
use portico_projections::{ProjectionRunner, ReadModels};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::audit::{AuditError, AuditHealth};
use crate::authz::{Authz, AuthzError};
use crate::exposed::{Exposed, ExposedCache};
use crate::selection::{GrantToggles, Selections};
use crate::session::PortalCaller;
use crate::sync::Syncer;
use crate::upstream::{UpstreamConfig, Upstreams};
use crate::upstream_grants::{UpstreamClientConfig, UpstreamGrants};

/// The data plane's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub upstream: UpstreamConfig,
    /// How often every server is synced again.
    pub sync_interval: Duration,
    /// Whether servers are synced on a schedule (new, changed, due ones); off for one-shot
    /// commands such as `portico policies push --local`, which must not reach upstreams.
    /// Explicit sync requests are served either way.
    pub scheduled_sync: bool,
    /// Code mode's engine and limits.
    pub codemode: CodeModeConfig,
    /// Who Portico says it is to upstream OAuth authorization servers.
    pub upstream_client: UpstreamClientConfig,
}

/// How code mode runs JavaScript.
#[derive(Debug, Clone)]
pub struct CodeModeConfig {
    /// The engine every execution runs on.
    pub sandbox: Arc<dyn Sandbox>,
    /// What one execution may use.
    pub limits: Limits,
}

/// Executions QuickJS runs at once by default (each holds a thread while it runs; the others
/// wait their turn within their deadline).
pub const DEFAULT_QUICKJS_CONCURRENCY: usize = 32;

impl Default for CodeModeConfig {
    fn default() -> Self {
        CodeModeConfig {
            sandbox: Arc::new(QuickJs::new(DEFAULT_QUICKJS_CONCURRENCY)),
            limits: Limits::default(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            upstream: UpstreamConfig::default(),
            sync_interval: Duration::from_secs(2 * 3600),
            scheduled_sync: true,
            codemode: CodeModeConfig::default(),
            upstream_client: UpstreamClientConfig::default(),
        }
    }
}

/// Everything the portal sessions share.
#[derive(Debug)]
pub struct Gateway {
    pub log: Arc<dyn EventLog>,
    pub models: Arc<ProjectionRunner<ReadModels>>,
    pub authz: Arc<Authz>,
    pub upstreams: Arc<Upstreams>,
    /// Portico's OAuth grants at upstream servers.
    pub grants: Arc<UpstreamGrants>,
    /// Server selections in progress (the `/authorize?elicitationId=…` links).
    pub selections: Selections,
    /// Stateless clients' server toggles, per portal grant.
    pub grant_toggles: GrantToggles,
    /// Who Portico says it is to upstream authorization servers.
    pub upstream_client: UpstreamClientConfig,
    pub syncer: Arc<Syncer>,
    pub codemode: CodeModeConfig,
    /// The MCP sessions that answer `tools/call` in place.
    pub sessions: Arc<crate::session::SessionRegistry>,
    exposed: ExposedCache,
    changes: watch::Receiver<u64>,
    audit_health: AuditHealth,
}

impl Gateway {
    /// Starts the data plane: the sync scheduler and the watcher that tells sessions when what
    /// they see may have changed. Must be called inside a Tokio runtime.
    pub fn start(
        log: Arc<dyn EventLog>,
        vault: Arc<Vault>,
        models: Arc<ProjectionRunner<ReadModels>>,
        authz: Arc<Authz>,
        config: GatewayConfig,
    ) -> Arc<Self> {
        let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<ServerId>();
        let (sync_tx, sync_rx) = mpsc::unbounded_channel::<ServerId>();
        let grants = Arc::new(UpstreamGrants::new(
            Arc::clone(&log),
            Arc::clone(&vault),
            Arc::clone(&models),
            config.upstream.policy,
            config.upstream_client.clone(),
        ));
        let upstreams = Arc::new(Upstreams::new(
            config.upstream.clone(),
            vault,
            Arc::clone(&grants),
            changed_tx,
        ));
        let syncer = Arc::new(Syncer::new(
            Arc::clone(&log),
            Arc::clone(&models),
            Arc::clone(&upstreams),
            sync_tx.clone(),
        ));
        let schedule = config.scheduled_sync.then_some(config.sync_interval);
        tokio::spawn(Arc::clone(&syncer).run(sync_rx, schedule));
        // An upstream's `list_changed` is a sync request.
        tokio::spawn(async move {
            while let Some(id) = changed_rx.recv().await {
                if sync_tx.send(id).is_err() {
                    return;
                }
            }
        });
        let (changes_tx, changes) = watch::channel(0);
        tokio::spawn(watch_config(Arc::clone(&models), changes_tx));
        tokio::spawn(close_idle_personal(Arc::downgrade(&upstreams), Arc::downgrade(&grants)));
        Arc::new(Gateway {
            log,
            models,
            authz,
            upstreams,
            grants,
            selections: Selections::default(),
            grant_toggles: GrantToggles::default(),
            upstream_client: config.upstream_client,
            syncer,
            codemode: config.codemode,
            sessions: Arc::default(),
            exposed: ExposedCache::default(),
            changes,
            audit_health: AuditHealth::default(),
        })
    }

    /// Closes the upstream connections: called when the process stops, after the sessions
    /// ended.
    pub async fn close(&self) {
        self.upstreams.close_all().await;
    }

    /// A receiver that moves when anything but a call changed in the read models (at most a
    /// few times a second).
    pub fn config_changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// What `caller` sees in its portal now.
    pub fn exposed(&self, caller: &PortalCaller) -> Result<Arc<Exposed>, AuthzError> {
        let models = self.models.read();
        let access = self.authz.access(
            &models,
            &caller.principal,
            &caller.portal_id,
            &session::context_of(caller),
        )?;
        Ok(self.exposed.get(&access, &models, &session::BUILTINS))
    }

    /// Whether `caller` may call the exposed tool `name` (of `server_id`, synced as `tool`).
    pub fn decide_call(
        &self,
        caller: &PortalCaller,
        exposed: &Exposed,
        server_id: &ServerId,
        name: &str,
        tool: &Value,
    ) -> Result<Decision, portico_policies::EntityError> {
        let models = self.models.read();
        let (_, engine) = self
            .authz
            .engine(&models)
            .map_err(|e| portico_policies::EntityError::Schema(e.to_string()))?;
        let reusable = !engine.reads_context();
        if reusable {
            let cached = exposed
                .call_decisions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(name)
                .cloned();
            if let Some(decision) = cached {
                return Ok(decision);
            }
        }
        let decision = authz::decide_call(
            &engine,
            &models,
            &caller.principal,
            server_id,
            tool,
            &session::context_of(caller),
        )?;
        if reusable {
            exposed
                .call_decisions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(name.to_owned(), decision.clone());
        }
        Ok(decision)
    }

    /// Appends a call's audit event. Many concurrent calls share one commit (group commit);
    /// the call's answer waits for its event to be in the log, and a call whose event cannot be
    /// appended gets an error instead of its answer, so an answered call is always audited.
    /// A failure is counted and marks the audit log unhealthy until an append succeeds again.
    pub async fn audit(&self, actor: Actor, event: PortalRequestHandled) -> Result<(), AuditError> {
        let stream = calls_stream(&event.portal_id);
        let portal_id = event.portal_id.clone();
        let events = vec![NewEvent::new(Event::PortalRequestHandled(event))];
        match self
            .log
            .append(&stream, ExpectedVersion::Any, events, &EventMetadata::new(actor))
            .await
        {
            Ok(_) => {
                self.audit_health.succeeded();
                Ok(())
            }
            Err(error) => {
                tracing::error!(portal = %portal_id, %error, "a call's audit event could not be appended; the call is answered with an error");
                self.audit_health.failed(chrono::Utc::now());
                metrics::audit_failed(&portal_id);
                Err(AuditError(error))
            }
        }
    }

    /// Whether audit appends are failing now (see [`AuditHealth`]).
    pub fn audit_health(&self) -> &AuditHealth {
        &self.audit_health
    }

    /// Sets the gauges that are read from the read models rather than counted as things happen
    /// (servers by sync status). Call it before rendering the metrics.
    pub fn observe_metrics(&self) {
        let models = self.models.read();
        metrics::servers_by_status(models.catalog.iter().map(|server| server.sync.status));
    }
}

/// Publishes the read models' configuration position when it moves, at most every 100 ms.
async fn watch_config(models: Arc<ProjectionRunner<ReadModels>>, changes: watch::Sender<u64>) {
    let mut positions = models.watch_position();
    let mut last = models.read().config_position;
    while positions.changed().await.is_ok() {
        let now = models.read().config_position;
        if now != last {
            last = now;
            if changes.send(now).is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long a person's upstream connection (and their grant in memory) may sit unused before
/// it is closed: each person has their own, so idle ones would otherwise add up.
pub const PERSONAL_IDLE: Duration = Duration::from_secs(30 * 60);

/// Closes people's idle upstream connections and forgets their idle grants, every few
/// minutes, until the gateway is gone.
async fn close_idle_personal(
    upstreams: std::sync::Weak<Upstreams>,
    grants: std::sync::Weak<UpstreamGrants>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Some(upstreams), Some(grants)) = (upstreams.upgrade(), grants.upgrade()) else {
            return;
        };
        let closed = upstreams.close_idle_personal(PERSONAL_IDLE);
        let forgotten = grants.forget_idle(PERSONAL_IDLE);
        if closed + forgotten > 0 {
            tracing::debug!(closed, forgotten, "closed idle personal upstream connections");
        }
    }
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character
/// boundary: bounding messages without splitting a character.
pub(crate) fn prefix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
