//! Test harness: opens a fresh log on each backend, and builds test events.
//!
//! PostgreSQL tests need `PORTICO_TEST_POSTGRES_URL` (the test script starts a throwaway cluster
//! and sets it). Each test gets a schema of its own in that database. Without the variable the
//! PostgreSQL tests fail, naming it, unless `PORTICO_SKIP_POSTGRES=1` says to skip them.

#![allow(dead_code)]

use std::sync::Arc;

use portico_core::domain::call::{AuditedMethod, CallStatus, PortalRequestHandled};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::server::ServerRemoved;
use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::{Actor, Event, EventLog, EventMetadata, NewEvent};

/// A log under test and what keeps its storage alive.
pub struct Harness {
    pub log: Arc<dyn EventLog>,
    pub storage: Storage,
}

pub enum Storage {
    Sqlite { dir: tempfile::TempDir, path: std::path::PathBuf },
    Postgres { config: Box<tokio_postgres::Config>, schema: String },
}

impl Harness {
    /// Opens a second handle on the same storage (another "instance").
    pub async fn reopen(&self) -> Arc<dyn EventLog> {
        match &self.storage {
            Storage::Sqlite { path, .. } => {
                Arc::new(SqliteLog::open(path, SqliteOptions::default()).unwrap())
            }
            Storage::Postgres { config, .. } => Arc::new(
                PostgresLog::connect((**config).clone(), PostgresOptions::default()).await.unwrap(),
            ),
        }
    }

    /// Runs raw SQL against the storage (to plant rows of an older schema version).
    pub async fn execute_raw(&self, sqlite_sql: &str, postgres_sql: &str) {
        match &self.storage {
            Storage::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sqlite_sql).unwrap();
            }
            Storage::Postgres { config, .. } => {
                let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(postgres_sql).await.unwrap();
            }
        }
    }
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let log = SqliteLog::open(&path, SqliteOptions::default()).unwrap();
    Harness { log: Arc::new(log), storage: Storage::Sqlite { dir, path } }
}

pub use portico_core::testing::postgres_config;

pub async fn postgres() -> Option<Harness> {
    let (config, schema) = postgres_config().await?;
    let log = PostgresLog::connect(config.clone(), PostgresOptions::default()).await.unwrap();
    Some(Harness {
        log: Arc::new(log),
        storage: Storage::Postgres { config: Box::new(config), schema },
    })
}

/// A small event; `n` makes it distinguishable.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new(Event::ServerRemoved(ServerRemoved {
        server_id: ServerId::parse(format!("s{n}")).unwrap(),
    }))
}

/// The record of a call (the log's high-volume event), numbered `n` as [`event`] numbers its
/// events.
pub fn call_record(n: u64) -> NewEvent {
    NewEvent::new(Event::PortalRequestHandled(PortalRequestHandled {
        portal_id: PortalId::parse("portal-a").unwrap(),
        portal_aud: None,
        method: AuditedMethod::ToolsCall,
        server_id: None,
        server_url: None,
        tool_call_name: Some("echo".into()),
        prompt_get_name: None,
        resource_read_uri: None,
        upstream_name: None,
        session_id: None,
        client_ip: None,
        user_id: "token-1".into(),
        user_email: None,
        status: CallStatus::Ok,
        error: None,
        policies: vec![],
        duration_ms: n,
        server_response_duration_ms: None,
        execution_id: None,
        code_execution: None,
    }))
}

/// The number an [`event`] or a [`call_record`] was built with.
pub fn number_of(event: &Event) -> u64 {
    match event {
        Event::ServerRemoved(e) => e.server_id.as_str()[1..].parse().unwrap(),
        Event::PortalRequestHandled(e) => e.duration_ms,
        other => panic!("not a test event: {other:?}"),
    }
}

pub fn metadata() -> EventMetadata {
    EventMetadata::new(Actor::ApiToken { id: "tok-1".into(), name: "tests".into() })
}

/// Instantiates each listed test once per backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let harness = crate::support::sqlite().await;
                    super::$name(harness).await;
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
