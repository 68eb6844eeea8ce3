//! The Logpush worker against a real log: how it follows the log when there is nothing to
//! deliver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use portico_app::logpush_jobs::DestinationConf;
use portico_app::logpush_jobs::worker::LogpushConfig;
use portico_app::testing::app_over;
use portico_core::domain::logpush_job::LogpushJobPatch;
use portico_core::event::{EventMetadata, NewEvent};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::log::{AppendError, Appended, ExpectedVersion};
use portico_core::{Actor, EventLog, LocalLeases, LogError, Position, RecordedEvent};
use tokio::sync::watch;

/// A log that counts the reads of [`EventLog::read_all`].
#[derive(Debug)]
struct CountingLog {
    inner: SqliteLog,
    reads: AtomicUsize,
}

#[async_trait]
impl EventLog for CountingLog {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
    ) -> Result<Appended, AppendError> {
        self.inner.append(stream_id, expected, events, metadata).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read_all(after, limit).await
    }

    async fn head_position(&self) -> Result<Position, LogError> {
        self.inner.head_position().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.watch_head()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_job_waits_for_the_log_instead_of_reading_it_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteLog::open(dir.path().join("portico.db"), SqliteOptions::default()).unwrap();
    let log = Arc::new(CountingLog { inner, reads: AtomicUsize::new(0) });
    let (app, _) = app_over(log.clone(), dir.path()).await.unwrap();
    let patch = LogpushJobPatch {
        dataset: Some("mcp_portal_logs".into()),
        enabled: Some(true),
        ..LogpushJobPatch::default()
    };
    // Nothing is ever sent: no call is made.
    let destination =
        DestinationConf::new("s3://logs/p?region=us-east-1&endpoint=127.0.0.1:9".into());
    app.create_logpush_job(patch, Some(destination), &Actor::system("test")).await.unwrap();
    let worker =
        app.start_logpush(LogpushConfig::default(), Arc::new(LocalLeases::new()), "test".into());
    // The supervisor takes the job's lease and starts it at once; give it a moment to follow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = log.reads.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reads = log.reads.load(Ordering::Relaxed) - before;
    worker.stop().await;
    // Caught up, the job (like the read models) reads when the log moves or at the
    // subscriptions' slow poll: a few reads in two seconds, not a loop.
    assert!(reads <= 40, "{reads} reads of an idle log in 2 s");
    assert!(app.read(|m| m.logpush_jobs.iter().count()) == 1);
}
