//! What only the workerd engine has: processes that can die, freeze or abort, and a supervisor
//! that fails only the executions on them and puts another process in their place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portico_codemode::sandbox::{ExecutionError, Limits};
use portico_codemode::workerd::{Workerd, WorkerdConfig, WorkerdError};
use serde_json::json;

use crate::suite::workerd::engine;
use crate::suite::{exec, exec_with, short};

/// Waits until the pool is full again with exactly one of the processes it had, `before`,
/// replaced by a new one; returns the replaced pid.
async fn one_replaced(engine: &Workerd, before: &[u32]) -> u32 {
    for _ in 0..200 {
        let pids = engine.pids();
        let missing: Vec<u32> = before.iter().copied().filter(|pid| !pids.contains(pid)).collect();
        if pids.len() == before.len() && missing.len() == 1 {
            return missing[0];
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not exactly one process was replaced: {before:?} -> {:?}", engine.pids());
}

/// Two executions at once, which least-loaded dispatch puts on the two processes: both answer.
async fn both_processes_serve(engine: &Workerd) {
    let code =
        "async () => { await new Promise((resolve) => setTimeout(resolve, 50)); return 'served' }";
    let (a, b) = tokio::join!(exec(engine, code), exec(engine, code));
    assert_eq!(a.outcome, Ok(json!("served")));
    assert_eq!(b.outcome, Ok(json!("served")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_from_outside_fails_only_its_executions() {
    let Some(engine) = engine().await else { return };
    let pids = engine.pids();
    assert_eq!(pids.len(), 2);
    let victim = pids[0];
    let code =
        "async () => { await new Promise((resolve) => setTimeout(resolve, 1500)); return 'done' }";
    let runs = async { tokio::join!(exec(&*engine, code), exec(&*engine, code)) };
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let ((a, b), ()) = tokio::join!(runs, kill);
    let mut outcomes = [a.outcome, b.outcome];
    outcomes.sort_by_key(|outcome| outcome.is_ok());
    match &outcomes[0] {
        Err(ExecutionError::Engine(message)) => {
            assert!(
                message.contains("SIGKILL"),
                "the message does not name the exit status: {message}"
            );
        }
        other => panic!("the execution on the killed process ended with {other:?}"),
    }
    assert_eq!(outcomes[1], Ok(json!("done")), "the execution on the other process failed");
    assert_eq!(one_replaced(&engine, &pids).await, victim);
    both_processes_serve(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_on_one_process_does_not_stop_the_other() {
    let Some(engine) = engine().await else { return };
    let pids = engine.pids();
    let loop_over = AtomicBool::new(false);
    let looping = async {
        let execution = exec_with(&*engine, "async () => { while (true) {} }", short()).await;
        loop_over.store(true, Ordering::SeqCst);
        execution
    };
    let others = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut outcomes = Vec::new();
        for i in 0..5 {
            outcomes.push(exec(&*engine, &format!("return {i}")).await.outcome);
        }
        (outcomes, loop_over.load(Ordering::SeqCst))
    };
    let (looping, (outcomes, loop_was_over)) = tokio::join!(looping, others);
    assert_eq!(looping.outcome, Err(ExecutionError::Timeout));
    assert_eq!(outcomes, (0..5).map(|i| Ok(json!(i))).collect::<Vec<_>>());
    assert!(!loop_was_over, "the other executions waited for the loop to end");
    // The frozen process was killed and replaced.
    one_replaced(&engine, &pids).await;
    both_processes_serve(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_after_a_heap_blow_up_succeeds() {
    let Some(engine) = engine().await else { return };
    let pids = engine.pids();
    let code =
        "async () => { const all = []; while (true) all.push(new Array(100000).fill(1.5)); }";
    let execution = exec_with(&*engine, code, Limits::default()).await;
    assert!(
        matches!(
            execution.outcome,
            Err(ExecutionError::OutOfMemory { .. } | ExecutionError::Engine(_))
        ),
        "{:?}",
        execution.outcome
    );
    // The process aborted and was replaced.
    one_replaced(&engine, &pids).await;
    assert_eq!(exec(&*engine, "return 'after'").await.outcome, Ok(json!("after")));
    both_processes_serve(&engine).await;
}

#[tokio::test]
async fn a_binary_that_cannot_run_is_named() {
    let missing = std::env::temp_dir().join("portico-no-such-workerd");
    let error = Workerd::start(WorkerdConfig::new(missing.clone())).await.unwrap_err();
    assert!(matches!(error, WorkerdError::NotExecutable { .. }), "{error:?}");
    assert!(error.to_string().contains(&missing.display().to_string()), "{error}");

    let error = Workerd::start(WorkerdConfig::new("/bin/false".into())).await.unwrap_err();
    match &error {
        WorkerdError::Exited { status, .. } => assert_eq!(status, "exit status: 1"),
        other => panic!("expected an exit, got {other:?}"),
    }
    assert!(error.to_string().contains("`/bin/false`"), "{error}");
}
