//! The runner against a real SQLite log: catch-up, live following, read-your-writes,
//! checkpoints that are used, and checkpoints that must be discarded.

use std::sync::Arc;
use std::time::Duration;

use portico_core::domain::call::CallStatus;
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::{Actor, EventLog, EventMetadata, NewEvent};
use portico_projections::{
    CheckpointStore, FileCheckpointStore, NoCheckpoints, ProjectionRunner, ReadModels,
    RunnerOptions,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::call_log::{append, call};
use crate::scenario::{History, op};

const WAIT: Duration = Duration::from_secs(30);

struct Fixture {
    dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path().join("portico.db"), SqliteOptions::default()).unwrap();
    Fixture { dir, log: Arc::new(log) }
}

/// Appends a random but valid admin history through the log; returns the last position.
async fn append_history(log: &dyn EventLog, seed_ops: usize, runner: &mut TestRunner) -> u64 {
    append_more(log, &mut History::default(), seed_ops, runner).await
}

/// Appends more commands to a log whose history so far is `history`.
async fn append_more(
    log: &dyn EventLog,
    history: &mut History,
    seed_ops: usize,
    runner: &mut TestRunner,
) -> u64 {
    let ops = proptest::collection::vec(op(), seed_ops).new_tree(runner).unwrap().current();
    let mut last = log.head_position().await.unwrap();
    for op in &ops {
        let Some(decided) = history.decide(op) else { continue };
        let events = decided.events.into_iter().map(NewEvent::new).collect();
        let meta = EventMetadata::new(Actor::system("tests"));
        let appended = log.append(&decided.stream, decided.expected, events, &meta).await.unwrap();
        last = appended.last_position;
    }
    last
}

fn options(checkpoint_every: u64) -> RunnerOptions {
    RunnerOptions {
        batch: 7,
        checkpoint_every,
        checkpoint_interval: Duration::ZERO,
        retry_delay: Duration::from_millis(50),
        poll_interval: Duration::from_millis(500),
    }
}

async fn replay_from_zero(log: &Arc<dyn EventLog>) -> ReadModels {
    let runner: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(log), Arc::new(NoCheckpoints), options(u64::MAX))
            .await
            .unwrap();
    runner.read().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_following_equals_replay_and_reads_your_writes() {
    let f = fixture();
    let mut rng = TestRunner::deterministic();
    let mut history = History::default();
    let first = append_more(f.log.as_ref(), &mut history, 40, &mut rng).await;
    let store = Arc::new(FileCheckpointStore::new(f.dir.path().join("projections")).unwrap());
    let runner: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(&f.log), store, options(25)).await.unwrap();
    assert_eq!(runner.position(), first, "start returns caught up");

    // Live: every write is visible once wait_for returns.
    for _ in 0..5 {
        let last = append_more(f.log.as_ref(), &mut history, 30, &mut rng).await;
        runner.wait_for(last, WAIT).await.unwrap();
        assert!(runner.position() >= last);
        let live = runner.read().clone();
        let replayed = replay_from_zero(&f.log).await;
        assert_eq!(live, replayed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_checkpoint_equals_replay() {
    let f = fixture();
    let mut rng = TestRunner::deterministic();
    let mut history = History::default();
    append_more(f.log.as_ref(), &mut history, 60, &mut rng).await;
    let store: Arc<dyn CheckpointStore> =
        Arc::new(FileCheckpointStore::new(f.dir.path().join("projections")).unwrap());
    let position = {
        let runner: ProjectionRunner<ReadModels> =
            ProjectionRunner::start(Arc::clone(&f.log), Arc::clone(&store), options(10))
                .await
                .unwrap();
        runner.checkpoint().unwrap();
        runner.position()
    };
    assert!(position > 0);
    let saved = store.load("read_models").unwrap().unwrap();
    assert_eq!(saved.position, position);

    // More events while "down"; the restart continues from the checkpoint.
    let last = append_more(f.log.as_ref(), &mut history, 40, &mut rng).await;
    let restarted: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(&f.log), Arc::clone(&store), options(10)).await.unwrap();
    assert_eq!(restarted.position(), last);
    let replayed = replay_from_zero(&f.log).await;
    assert_eq!(*restarted.read(), replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_log_is_discarded() {
    let a = fixture();
    let b = fixture();
    let mut rng = TestRunner::deterministic();
    append_history(a.log.as_ref(), 50, &mut rng).await;
    append_history(
        b.log.as_ref(),
        50,
        &mut TestRunner::new_with_rng(
            Default::default(),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &[7; 32],
            ),
        ),
    )
    .await;
    let store: Arc<dyn CheckpointStore> =
        Arc::new(FileCheckpointStore::new(a.dir.path().join("projections")).unwrap());
    {
        let runner: ProjectionRunner<ReadModels> =
            ProjectionRunner::start(Arc::clone(&a.log), Arc::clone(&store), options(10))
                .await
                .unwrap();
        runner.checkpoint().unwrap();
    }
    // The same checkpoint directory used with log B: positions may exist there, event ids don't.
    let on_b: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(&b.log), Arc::clone(&store), options(10)).await.unwrap();
    let replayed = replay_from_zero(&b.log).await;
    assert_eq!(*on_b.read(), replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_checkpoint_costs_only_a_replay() {
    let f = fixture();
    append_history(f.log.as_ref(), 40, &mut TestRunner::deterministic()).await;
    let dir = f.dir.path().join("projections");
    let store: Arc<dyn CheckpointStore> = Arc::new(FileCheckpointStore::new(&dir).unwrap());
    std::fs::write(dir.join("read_models.json"), b"{ not json").unwrap();
    let runner: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(&f.log), Arc::clone(&store), options(10)).await.unwrap();
    let replayed = replay_from_zero(&f.log).await;
    assert_eq!(*runner.read(), replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_position_never_reached_times_out_with_a_clear_error() {
    let f = fixture();
    let runner: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(&f.log), Arc::new(NoCheckpoints), options(10))
            .await
            .unwrap();
    let err = runner.wait_for(5, Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "projection `read_models` has not reached position 5 after 100ms (it is at 0)"
    );
}

/// Proves the restart starts from the stored state rather than replaying: a checkpoint whose
/// state was replaced by an empty one (at the same position) is taken as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_state_is_really_used() {
    let f = fixture();
    append_history(f.log.as_ref(), 40, &mut TestRunner::deterministic()).await;
    let store: Arc<dyn CheckpointStore> =
        Arc::new(FileCheckpointStore::new(f.dir.path().join("projections")).unwrap());
    {
        let runner: ProjectionRunner<ReadModels> =
            ProjectionRunner::start(Arc::clone(&f.log), Arc::clone(&store), options(10))
                .await
                .unwrap();
        runner.checkpoint().unwrap();
    }
    let mut saved = store.load("read_models").unwrap().unwrap();
    saved.state = serde_json::value::to_raw_value(&ReadModels::default()).unwrap();
    store.save(&saved).unwrap();
    let restarted: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(&f.log), Arc::clone(&store), options(10)).await.unwrap();
    assert_eq!(restarted.position(), saved.position);
    assert_eq!(*restarted.read(), ReadModels::default());
    assert_ne!(replay_from_zero(&f.log).await, ReadModels::default());
}

/// Call records do not wake the runner (it applies them with the next change or at its poll),
/// so a writer waiting for the position of one wakes it: with a poll interval of an hour, the
/// wait below ends only that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_position_of_a_call_record_wakes_the_runner() {
    let f = fixture();
    let options = RunnerOptions { poll_interval: Duration::from_secs(3600), ..options(10) };
    let runner: ProjectionRunner<ReadModels> =
        ProjectionRunner::start(Arc::clone(&f.log), Arc::new(NoCheckpoints), options)
            .await
            .unwrap();
    let record = call("portal-a", Some("server-a"), "echo", None, CallStatus::Ok, 3);
    let position = append(f.log.as_ref(), vec![record.clone(), record]).await;
    runner.wait_for(position, WAIT).await.unwrap();
    assert_eq!(runner.position(), position);
}
