//! The Logpush worker against a real log: how it follows the log when there is nothing to
//! deliver.

use std::sync::Arc;
use std::time::Duration;

use portico_app::logpush_jobs::DestinationConf;
use portico_app::logpush_jobs::worker::LogpushConfig;
use portico_app::testing::app_over;
use portico_core::domain::logpush_job::LogpushJobPatch;
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::testing::CountingReads;
use portico_core::{Actor, LocalLeases};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_job_waits_for_the_log_instead_of_reading_it_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteLog::open(dir.path().join("portico.db"), SqliteOptions::default()).unwrap();
    let log = Arc::new(CountingReads::new(Arc::new(inner)));
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
    let before = log.reads();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reads = log.reads() - before;
    worker.stop().await;
    // Caught up, the job (like the read models) reads when the log moves or at the
    // subscriptions' slow poll: a few reads in two seconds, not a loop.
    assert!(reads <= 40, "{reads} reads of an idle log in 2 s");
    assert!(app.read(|m| m.logpush_jobs.iter().count()) == 1);
}
