//! An [`App`] over a fresh log on each backend.
//!
//! PostgreSQL tests need `PORTICO_TEST_POSTGRES_URL` (`scripts/test` starts a throwaway cluster
//! and sets it); each test gets a schema of its own. Without the variable they fail, naming it,
//! unless `PORTICO_SKIP_POSTGRES=1` says to skip them. The vault is SQLite on both: these tests
//! are about the log, and the vault's backends have their own conformance suite in `core`.

use std::sync::Arc;

use portico_app::App;
use portico_core::EventLog;
use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use tempfile::TempDir;

/// An app and what keeps its storage alive.
pub struct Harness {
    pub app: Arc<App>,
    _dir: TempDir,
}

async fn start(log: Arc<dyn EventLog>, dir: TempDir) -> Harness {
    let (app, _) = portico_app::testing::app_over(log, dir.path()).await.unwrap();
    Harness { app, _dir: dir }
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = portico_app::testing::sqlite_app(dir.path()).await.unwrap();
    Harness { app, _dir: dir }
}

/// An app on a fresh PostgreSQL schema, or `None` when PostgreSQL tests are skipped.
pub async fn postgres() -> Option<Harness> {
    let (config, _schema) = portico_core::testing::postgres_config().await?;
    let log = PostgresLog::connect(config, PostgresOptions::default()).await.unwrap();
    Some(start(Arc::new(log), tempfile::tempdir().unwrap()).await)
}

/// Instantiates each listed test once per backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::support::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(harness) = crate::support::postgres().await else { return };
                    super::$name(harness).await;
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;
