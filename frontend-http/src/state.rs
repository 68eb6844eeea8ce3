//! The state every request handler shares: the application layer (which owns the log, the
//! vault, the read models and the data plane), the account, and the MCP endpoint's service.

use std::sync::Arc;

use actix_web::web;
use portico_app::App;
use portico_core::domain::account::AccountId;
use portico_projections::ReadModels;

use crate::api::error::{ApiError, Code};

/// Routes a binary mounts beside Portico's own (the demo's built-in upstream, say).
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// Every write goes through it; handlers only read the read models directly.
    pub app: Arc<App>,
    pub account_id: AccountId,
    /// The MCP endpoint's service and its session manager (one for every worker).
    pub mcp: crate::mcp::Mcp,
    /// Cancelled when the server stops: ends the MCP sessions.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Mounted by `create_app` after Portico's own routes.
    pub extra_routes: Option<ExtraRoutes>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("account_id", &self.account_id).finish_non_exhaustive()
    }
}

impl AppState {
    /// The HTTP front end over `app`, serving `account_id`.
    pub fn new(app: Arc<App>, account_id: AccountId) -> Self {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let mcp = crate::mcp::service(Arc::clone(&app.gateway), shutdown.clone());
        AppState { app, account_id, mcp, shutdown, extra_routes: None }
    }

    /// The same, MCP sessions ending after `idle` without a request (tests).
    pub fn with_session_idle_timeout(mut self, idle: std::time::Duration) -> Self {
        self.mcp = crate::mcp::service_with_idle_timeout(
            Arc::clone(&self.app.gateway),
            self.shutdown.clone(),
            idle,
        );
        self
    }

    /// Runs `f` on the read models as they are now.
    pub fn read<R>(&self, f: impl FnOnce(&ReadModels) -> R) -> R {
        self.app.read(f)
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
