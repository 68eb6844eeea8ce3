//! The state every request handler shares: the log, the vault, the read models.

use std::sync::Arc;
use std::time::Duration;

use portico_core::Event;
use portico_core::domain::account::AccountId;
use portico_core::log::Appended;
use portico_core::vault::Vault;
use portico_core::{Actor, EventLog, EventMetadata, ExpectedVersion, NewEvent};
use portico_projections::{ProjectionRunner, ReadModels};

use crate::api::error::{ApiError, Code};

/// How long a write waits for the read models to show it before answering 503.
pub const WRITE_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub log: Arc<dyn EventLog>,
    pub vault: Arc<Vault>,
    pub models: Arc<ProjectionRunner<ReadModels>>,
    pub account_id: AccountId,
    /// The compiled policy set and the cache of what principals see.
    pub authz: Arc<portico_gateway::authz::Authz>,
    /// The data plane: upstream connections, sync, sessions.
    pub gateway: Arc<portico_gateway::Gateway>,
    /// The MCP endpoint's service (one session manager for every worker).
    pub mcp: crate::mcp::McpService,
    /// Cancelled when the server stops: ends the MCP sessions.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// `serve --demo`: the built-in upstream MCP server.
    pub demo_upstream: Option<crate::demo::DemoService>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("account_id", &self.account_id).finish_non_exhaustive()
    }
}

impl AppState {
    /// The state over opened storage and running read models, with the data plane's default
    /// settings (private upstream addresses refused). Starts the data plane's background
    /// tasks, so it must be called inside a Tokio runtime.
    pub fn new(
        log: Arc<dyn EventLog>,
        vault: Arc<Vault>,
        models: Arc<ProjectionRunner<ReadModels>>,
        account_id: AccountId,
    ) -> Self {
        Self::with_gateway(
            log,
            vault,
            models,
            account_id,
            portico_gateway::GatewayConfig::default(),
        )
    }

    /// The state with the data plane configured by `gateway`.
    pub fn with_gateway(
        log: Arc<dyn EventLog>,
        vault: Arc<Vault>,
        models: Arc<ProjectionRunner<ReadModels>>,
        account_id: AccountId,
        gateway: portico_gateway::GatewayConfig,
    ) -> Self {
        let authz: Arc<portico_gateway::authz::Authz> = Arc::default();
        let gateway = portico_gateway::Gateway::start(
            Arc::clone(&log),
            Arc::clone(&vault),
            Arc::clone(&models),
            Arc::clone(&authz),
            gateway,
        );
        let shutdown = tokio_util::sync::CancellationToken::new();
        let mcp = crate::mcp::service(Arc::clone(&gateway), shutdown.clone());
        AppState {
            log,
            vault,
            models,
            account_id,
            authz,
            gateway,
            mcp,
            shutdown,
            demo_upstream: None,
        }
    }

    /// Runs `f` on the read models as they are now.
    pub fn read<R>(&self, f: impl FnOnce(&ReadModels) -> R) -> R {
        f(&self.models.read())
    }

    /// Answers 404 unless `account_id` is this instance's account.
    pub fn check_account(&self, account_id: &str) -> Result<(), ApiError> {
        if account_id == self.account_id.as_str() {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::NotFound,
                format!("account `{}` does not exist", truncate(account_id)),
            ))
        }
    }

    /// Appends the events of one command and waits until the read models show them, so the
    /// answer (and any later read) reflects the write.
    pub async fn write(
        &self,
        stream: &str,
        expected_version: u64,
        events: Vec<Event>,
        actor: Actor,
    ) -> Result<Appended, ApiError> {
        let expected = if expected_version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(expected_version)
        };
        let events = events.into_iter().map(NewEvent::new).collect();
        let appended =
            self.log.append(stream, expected, events, &EventMetadata::new(actor)).await?;
        self.models
            .wait_for(appended.last_position, WRITE_VISIBILITY_TIMEOUT)
            .await
            .map_err(ApiError::unavailable)?;
        Ok(appended)
    }
}

/// Shortens user input quoted in a message.
pub fn truncate(value: &str) -> String {
    const LIMIT: usize = 80;
    if value.chars().count() <= LIMIT {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(LIMIT).collect::<String>())
    }
}
