//! The crash test: a child process appends in a loop and prints each acknowledged append; it is
//! killed with SIGKILL mid-stream; after reopening the log, every acknowledged event is there and
//! no append is present in part.
//!
//! The child is this same test binary, started with `--ignored --exact crash::crash_child` and
//! told by environment variables which log to write to.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::{EventLog, ExpectedVersion};

use crate::support::{event, metadata};

const CHILD_ENV: &str = "PORTICO_CRASH_CHILD";
/// Appends acknowledged before the child is killed.
const ACKS_BEFORE_KILL: usize = 400;
/// Events per append: an append is all or nothing, so each correlation id must have exactly
/// this many events after the crash.
const EVENTS_PER_APPEND: u64 = 3;
const CHILD_WRITERS: u64 = 4;

/// Not a test on its own: the body of the child process of the crash tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the crash tests as their child process"]
async fn crash_child() {
    let Ok(target) = std::env::var(CHILD_ENV) else { return };
    let log: Arc<dyn EventLog> = if let Some(path) = target.strip_prefix("sqlite:") {
        Arc::new(SqliteLog::open(path, SqliteOptions::default()).unwrap())
    } else if let Some(rest) = target.strip_prefix("postgres:") {
        let (schema, url) = rest.split_once('|').unwrap();
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.options(format!("-c search_path={schema}"));
        Arc::new(PostgresLog::connect(config, PostgresOptions::default()).await.unwrap())
    } else {
        panic!("unknown crash target {target}");
    };
    let mut writers = Vec::new();
    for w in 0..CHILD_WRITERS {
        let log = Arc::clone(&log);
        writers.push(tokio::spawn(async move {
            let stream = format!("crash-{w}");
            for i in 0u64.. {
                let meta = metadata();
                let events = (0..EVENTS_PER_APPEND).map(|k| event(i * 10 + k)).collect();
                let expected = if i == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(i * EVENTS_PER_APPEND)
                };
                let appended = log.append(&stream, expected, events, &meta).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "ack {} {} {}",
                    appended.first_position, appended.last_position, meta.correlation_id
                )
                .unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
}

/// Runs the child against `target`, kills it after enough acknowledgements, and returns them
/// as `(first, last, correlation id)`.
fn run_and_kill(target: &str) -> Vec<(u64, u64, String)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash::crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, target)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acks = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("ack ") else { continue };
        let mut parts = rest.split(' ');
        let first = parts.next().unwrap().parse().unwrap();
        let last = parts.next().unwrap().parse().unwrap();
        let correlation = parts.next().unwrap().to_owned();
        acks.push((first, last, correlation));
        if acks.len() == ACKS_BEFORE_KILL && !killed {
            // SIGKILL: no destructor, no flush, no graceful anything.
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "the child stopped on its own: {status}");
    assert!(!status.success(), "the child was killed");
    acks
}

async fn verify(log: Arc<dyn EventLog>, acks: &[(u64, u64, String)]) {
    let head = log.head_position().await.unwrap();
    // Every event decodes and positions are contiguous.
    let all = log.read_all(0, head as usize + 1).await.unwrap();
    assert_eq!(all.len() as u64, head);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1);
    }
    // Every acknowledged append is there, whole, at the positions it was acknowledged at.
    assert!(acks.len() >= ACKS_BEFORE_KILL);
    for (first, last, correlation) in acks {
        assert_eq!(last - first + 1, EVENTS_PER_APPEND);
        for p in *first..=*last {
            let e = &all[(p - 1) as usize];
            assert_eq!(e.correlation_id.to_string(), *correlation, "position {p}");
        }
    }
    // No append is present in part, acknowledged or not.
    let mut per_append: BTreeMap<String, u64> = BTreeMap::new();
    for e in &all {
        *per_append.entry(e.correlation_id.to_string()).or_default() += 1;
    }
    assert!(per_append.values().all(|n| *n == EVENTS_PER_APPEND), "{per_append:?}");
    // Streams continue where they stopped.
    for w in 0..CHILD_WRITERS {
        let stream = format!("crash-{w}");
        let events = log.read_stream(&stream, 1, 1_000_000).await.unwrap();
        let version = events.len() as u64;
        assert_eq!(version % EVENTS_PER_APPEND, 0);
        log.append(&stream, ExpectedVersion::Exact(version), vec![event(1)], &metadata())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let target = format!("sqlite:{}", path.display());
    let acks = tokio::task::spawn_blocking(move || run_and_kill(&target)).await.unwrap();
    let log = SqliteLog::open(&path, SqliteOptions::default()).unwrap();
    verify(Arc::new(log), &acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill() {
    let Some((config, schema)) = crate::support::postgres_config().await else { return };
    let url = std::env::var("PORTICO_TEST_POSTGRES_URL").unwrap();
    let target = format!("postgres:{schema}|{url}");
    let acks = tokio::task::spawn_blocking(move || run_and_kill(&target)).await.unwrap();
    let log = PostgresLog::connect(config, PostgresOptions::default()).await.unwrap();
    verify(Arc::new(log), &acks).await;
}
