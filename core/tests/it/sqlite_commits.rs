//! Which thread commits a SQLite append: on an idle log in `process` durability the appender
//! commits its own append (no hand-off to the writer thread and back); in `power` durability,
//! where every commit waits for the disk, the writer thread always does. Observed through
//! `portico_log_commits_total{thread="appender"}`, recorded on the appender's thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::{Durability, EventLog, ExpectedVersion};

use crate::support::{event, metadata};

/// Counts the commits labelled `thread="appender"`; ignores every other metric.
#[derive(Default)]
struct AppenderCommits(Arc<AtomicU64>);

impl Recorder for AppenderCommits {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let on_appender = key.name() == portico_core::metrics::LOG_COMMITS
            && key.labels().any(|label| label.key() == "thread" && label.value() == "appender");
        if on_appender { Counter::from_arc(Arc::clone(&self.0)) } else { Counter::noop() }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Appends `appends` events one at a time (each awaited: the log is idle before each) on a
/// current-thread runtime, checks they are all in the log, and returns how many commits ran
/// on the appender's thread.
fn appender_commits(durability: Durability, appends: u64) -> u64 {
    let recorder = AppenderCommits::default();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = SqliteLog::open(dir.path().join("portico.db"), SqliteOptions { durability })
                .unwrap();
            for n in 0..appends {
                let stream = format!("server-{n}");
                log.append(&stream, ExpectedVersion::NoStream, vec![event(n)], &metadata())
                    .await
                    .unwrap();
            }
            let stored = log.read_all(0, 100).await.unwrap();
            assert_eq!(stored.len() as u64, appends);
            assert_eq!(log.head_position().await.unwrap(), appends);
        });
    });
    recorder.0.load(Ordering::SeqCst)
}

#[test]
fn an_idle_log_commits_each_append_on_its_appenders_thread() {
    assert_eq!(appender_commits(Durability::Process, 5), 5);
}

#[test]
fn in_power_durability_the_writer_thread_commits_every_append() {
    assert_eq!(appender_commits(Durability::Power, 5), 0);
}
