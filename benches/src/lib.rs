//! Shared set-up for Portico's benchmarks: opening a log on either backend and building
//! realistic events. Benchmarks are not library code: they unwrap freely.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

/// The allocator the `portico` binary uses; the benchmarks measure with the same one.
pub type Allocator = mimalloc::MiMalloc;

use portico_core::domain::ids::ServerId;
use portico_core::domain::server::ServerRemoved;
use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::{Actor, Durability, Event, EventLog, EventMetadata, NewEvent};

/// A log to benchmark, and the directory that holds it (SQLite).
#[derive(Debug)]
pub struct BenchLog {
    pub log: Arc<dyn EventLog>,
    pub dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite log in a temporary directory.
pub fn sqlite(durability: Durability) -> BenchLog {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path().join("bench.db"), SqliteOptions { durability }).unwrap();
    BenchLog { log: Arc::new(log), dir: Some(dir) }
}

/// A fresh PostgreSQL log in a new schema, when `PORTICO_BENCH_POSTGRES_URL` is set.
pub async fn postgres(durability: Durability) -> Option<BenchLog> {
    let url = std::env::var("PORTICO_BENCH_POSTGRES_URL").ok()?;
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    config.options(format!("-c search_path={schema}"));
    let log = PostgresLog::connect(config, PostgresOptions { durability }).await.unwrap();
    Some(BenchLog { log: Arc::new(log), dir: None })
}

/// One small event, the size of a typical admin fact.
pub fn small_event(n: u64) -> NewEvent {
    let server_id = ServerId::parse(format!("server-{}", n % 1000)).unwrap();
    NewEvent::new(Event::ServerRemoved(ServerRemoved { server_id }))
}

pub fn metadata() -> EventMetadata {
    EventMetadata::new(Actor::system("bench"))
}
