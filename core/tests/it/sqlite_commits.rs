//! Which thread commits a SQLite append: on an idle log in `process` durability the appender
//! commits its own append (no hand-off to the writer thread and back), together with the
//! appends made while it let the other ready tasks run; in `power` durability, where every
//! commit waits for the disk, the writer thread always does. Observed through
//! `portico_log_commits_total{thread="appender"}`, recorded on the appender's thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

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

/// Runs `appending` on a log of `durability` on a current-thread runtime, and returns how many
/// commits ran on an appender's thread.
fn appender_commits_of<F: Future<Output = ()>>(
    durability: Durability,
    appending: impl FnOnce(Arc<SqliteLog>) -> F,
) -> u64 {
    let recorder = AppenderCommits::default();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = SqliteLog::open(dir.path().join("portico.db"), SqliteOptions { durability })
                .unwrap();
            appending(Arc::new(log)).await;
        });
    });
    recorder.0.load(Ordering::SeqCst)
}

/// Appends `appends` events one at a time (each awaited: the log is idle before each), checks
/// they are all in the log, and returns how many commits ran on the appender's thread.
fn appender_commits(durability: Durability, appends: u64) -> u64 {
    appender_commits_of(durability, |log| async move {
        for n in 0..appends {
            let stream = format!("server-{n}");
            log.append(&stream, ExpectedVersion::NoStream, vec![event(n)], &metadata())
                .await
                .unwrap();
        }
        let stored = log.read_all(0, 100).await.unwrap();
        assert_eq!(stored.len() as u64, appends);
        assert_eq!(log.head_position().await.unwrap(), appends);
    })
}

/// Appends to `stream` on `log`, boxed so that a test can poll and drop it by hand.
fn append(log: &Arc<SqliteLog>, n: u64) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
    Box::pin(async move {
        let (stream, metadata) = (format!("server-{n}"), metadata());
        let appended = log.append(&stream, ExpectedVersion::NoStream, vec![event(n)], &metadata);
        appended.await.unwrap().last_position
    })
}

/// Polls `future` once.
async fn poll_once<T>(future: &mut Pin<Box<dyn Future<Output = T> + Send + '_>>) -> Poll<T> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

#[test]
fn an_idle_log_commits_each_append_on_its_appenders_thread() {
    assert_eq!(appender_commits(Durability::Process, 5), 5);
}

#[test]
fn in_power_durability_the_writer_thread_commits_every_append() {
    assert_eq!(appender_commits(Durability::Power, 5), 0);
}

#[test]
fn appends_ready_together_share_one_commit_on_the_appenders_thread() {
    let commits = appender_commits_of(Durability::Process, |log| async move {
        let mut appends = tokio::task::JoinSet::new();
        for n in 0..8 {
            let log = Arc::clone(&log);
            appends.spawn(async move { append(&log, n).await });
        }
        let mut positions = appends.join_all().await;
        positions.sort_unstable();
        assert_eq!(positions, (1..=8).collect::<Vec<_>>(), "each append answered, once");
        assert_eq!(log.read_all(0, 100).await.unwrap().len(), 8);
    });
    assert_eq!(commits, 1, "the first append gathered the seven others");
}

/// The append that gathers others may be dropped while it lets the others run (its request's
/// client went away): its commit still runs, with theirs.
#[test]
fn appends_that_joined_are_committed_when_the_gathering_one_is_dropped() {
    let commits = appender_commits_of(Durability::Process, |log| async move {
        let mut gathering = append(&log, 0);
        assert!(poll_once(&mut gathering).await.is_pending(), "it yields before committing");
        let mut joined = append(&log, 1);
        assert!(poll_once(&mut joined).await.is_pending(), "it waits for the first's commit");
        drop(gathering);
        assert_eq!(poll_once(&mut joined).await, Poll::Ready(2), "answered by then");
        let stored = log.read_all(0, 100).await.unwrap();
        let streams: Vec<&str> = stored.iter().map(|e| e.stream_id.as_str()).collect();
        assert_eq!(streams, ["server-0", "server-1"]);
    });
    assert_eq!(commits, 1);
}
