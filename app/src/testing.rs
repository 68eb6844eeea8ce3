//! Apps for tests (the `testing` feature): a fresh SQLite log and vault in a directory,
//! bootstrapped with a known account and admin token, the read models running. Used by the
//! integration tests of this crate and of the frontends, so that they all start Portico the same
//! way.

use std::path::Path;
use std::sync::Arc;

use portico_core::EventLog;
use portico_core::domain::account::AccountId;
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::vault::sqlite::SqliteVaultStore;
use portico_core::vault::{KeySource, MasterKey, Vault};
use portico_projections::call_log::CallLog;
use portico_projections::{NoCheckpoints, ProjectionRunner, ReadModels, RunnerOptions};

use crate::App;

/// The account of every test app.
pub const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The bootstrap admin token of every test app (edit scope).
pub const ADMIN_TOKEN: &str = "AdminTestToken0123456789abcdefghijklmnop";

/// What a test app failed on (tests unwrap it).
pub type TestResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// An app over `log`, with its vault (SQLite) in `dir`, bootstrapped with [`ACCOUNT_ID`] and
/// [`ADMIN_TOKEN`], once its read models have caught up.
pub async fn app_over(log: Arc<dyn EventLog>, dir: &Path) -> TestResult<(Arc<App>, AccountId)> {
    app_with(log, dir, Default::default()).await
}

/// [`app_over`] with the data plane configured by `gateway`.
pub async fn app_with(
    log: Arc<dyn EventLog>,
    dir: &Path,
    gateway: portico_gateway::GatewayConfig,
) -> TestResult<(Arc<App>, AccountId)> {
    let store = Arc::new(SqliteVaultStore::open(dir.join("vault.db")).await?);
    let vault = Vault::open(MasterKey::from_bytes([7; 32]), KeySource::Config, store).await?;
    let account = AccountId::parse(ACCOUNT_ID)?;
    let boot = crate::account::bootstrap(log.as_ref(), Some(account), Some(ADMIN_TOKEN)).await?;
    let models = Arc::new(
        ProjectionRunner::<ReadModels>::start(
            Arc::clone(&log),
            Arc::new(NoCheckpoints),
            RunnerOptions::default(),
        )
        .await?,
    );
    let head = log.head_position().await?;
    models.wait_for(head, crate::WRITE_VISIBILITY_TIMEOUT).await?;
    let calls = Arc::new(CallLog::open(&dir.join("calls.db"))?);
    Ok((App::start(log, Arc::new(vault), models, calls, gateway), boot.account_id))
}

/// An app on a fresh SQLite log in `dir`.
pub async fn sqlite_app(dir: &Path) -> TestResult<(Arc<App>, AccountId)> {
    let log = SqliteLog::open(dir.join("portico.db"), SqliteOptions::default())?;
    app_over(Arc::new(log), dir).await
}
