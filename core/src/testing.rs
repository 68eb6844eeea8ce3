//! Test support (the `testing` feature), shared by the integration tests of this crate and the
//! crates above it.
//!
//! PostgreSQL tests need `PORTICO_TEST_POSTGRES_URL` (`scripts/test` starts a throwaway cluster
//! and sets it); each test gets a schema of its own in that database. Without the variable they
//! fail, naming it, unless `PORTICO_SKIP_POSTGRES=1` says to skip them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// A fresh schema in the test database (the connection configuration selects it), or `None`
/// when PostgreSQL tests are skipped.
pub async fn postgres_config() -> Option<(tokio_postgres::Config, String)> {
    let url = match std::env::var("PORTICO_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) if std::env::var("PORTICO_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("skipped: PORTICO_SKIP_POSTGRES=1");
            return None;
        }
        Err(_) => panic!(
            "PORTICO_TEST_POSTGRES_URL is not set: run `scripts/test`, which starts PostgreSQL, \
             or set PORTICO_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
        ),
    };
    let mut config: tokio_postgres::Config = url.parse().expect("PORTICO_TEST_POSTGRES_URL");
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create schema");
    config.options(format!("-c search_path={schema}"));
    Some((config, schema))
}

/// An event log that counts the reads of [`crate::EventLog::read_all`] on another log: how
/// often a follower reads the log.
#[derive(Debug)]
pub struct CountingReads {
    inner: std::sync::Arc<dyn crate::EventLog>,
    reads: std::sync::atomic::AtomicUsize,
}

impl CountingReads {
    pub fn new(inner: std::sync::Arc<dyn crate::EventLog>) -> Self {
        CountingReads { inner, reads: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// How many times `read_all` was called.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl crate::EventLog for CountingReads {
    async fn append(
        &self,
        stream_id: &str,
        expected: crate::ExpectedVersion,
        events: Vec<crate::NewEvent>,
        metadata: &crate::EventMetadata,
    ) -> Result<crate::log::Appended, crate::AppendError> {
        self.inner.append(stream_id, expected, events, metadata).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<crate::RecordedEvent>, crate::LogError> {
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_all(
        &self,
        after: crate::Position,
        limit: usize,
    ) -> Result<Vec<crate::RecordedEvent>, crate::LogError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.read_all(after, limit).await
    }

    async fn head_position(&self) -> Result<crate::Position, crate::LogError> {
        self.inner.head_position().await
    }

    fn watch_head(&self) -> tokio::sync::watch::Receiver<crate::Position> {
        self.inner.watch_head()
    }

    fn watch_changes(&self) -> tokio::sync::watch::Receiver<crate::Position> {
        self.inner.watch_changes()
    }
}
