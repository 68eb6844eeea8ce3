//! The tests, each a function of the engine under test; `conformance!` runs every one of them
//! on every engine.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portico_codemode::sandbox::{Bridge, ExecutionError, Limits, Run, Sandbox, execute};
use portico_codemode::{Execution, normalize::normalize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The host side the tests give the sandbox: a few tools.
struct Tools;

#[async_trait]
impl Bridge for Tools {
    async fn call(&self, name: &str, input: Value) -> Result<Value, String> {
        match name {
            "echo" => Ok(input),
            "add" => {
                let n = |k: &str| input.get(k).and_then(Value::as_i64).unwrap_or(0);
                Ok(json!(n("a") + n("b")))
            }
            "slow" => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(json!("slow done"))
            }
            "fail" => Err("the tool failed: bad input".to_owned()),
            other => Err(format!("Tool \"{other}\" not found")),
        }
    }
}

fn run_of(code: &str, limits: Limits) -> Run {
    Run { code: normalize(code), bridge: Arc::new(Tools), limits, cancel: CancellationToken::new() }
}

pub(crate) async fn exec(sandbox: &dyn Sandbox, code: &str) -> Execution {
    execute(sandbox, run_of(code, Limits::default())).await
}

pub(crate) async fn exec_with(sandbox: &dyn Sandbox, code: &str, limits: Limits) -> Execution {
    execute(sandbox, run_of(code, limits)).await
}

pub(crate) fn short() -> Limits {
    Limits { timeout: Duration::from_millis(1_500), ..Limits::default() }
}

fn thrown(execution: &Execution) -> &str {
    match &execution.outcome {
        Err(ExecutionError::Thrown(message)) => message,
        other => panic!("expected a thrown error, got {other:?}"),
    }
}

pub async fn returns_a_value(sandbox: &dyn Sandbox) {
    let execution = exec(sandbox, "return 1+1").await;
    assert_eq!(execution.outcome, Ok(json!(2)));
    assert_eq!(execution.calls, 0);
    let execution = exec(sandbox, "async () => ({a: [1, 'two', null, true]})").await;
    assert_eq!(execution.outcome, Ok(json!({"a": [1, "two", null, true]})));
    let execution = exec(sandbox, "async () => {}").await;
    assert_eq!(execution.outcome, Ok(Value::Null));
}

pub async fn calls_a_tool_and_gets_its_answer(sandbox: &dyn Sandbox) {
    let code = "async () => { const r = await codemode.echo({text: 'hi', n: 3}); return {got: r, sum: await codemode.add({a: 2, b: 5})}; }";
    let execution = exec(sandbox, code).await;
    assert_eq!(execution.outcome, Ok(json!({"got": {"text": "hi", "n": 3}, "sum": 7})));
    assert_eq!(execution.calls, 2);
}

pub async fn runs_twenty_calls_in_parallel(sandbox: &dyn Sandbox) {
    let code = "async () => (await Promise.all(Array.from({length: 20}, (_, i) => codemode.add({a: i, b: 1})))).reduce((s, x) => s + x, 0)";
    let execution = exec(sandbox, code).await;
    assert_eq!(execution.outcome, Ok(json!(210)));
    assert_eq!(execution.calls, 20);
}

pub async fn a_thrown_error_is_the_outcome(sandbox: &dyn Sandbox) {
    let execution = exec(sandbox, "async () => { throw new Error('boom') }").await;
    assert_eq!(thrown(&execution), "boom");
    let execution = exec(sandbox, "async () => { throw 'just a string' }").await;
    assert_eq!(thrown(&execution), "just a string");
}

pub async fn a_tool_error_rejects_and_can_be_caught(sandbox: &dyn Sandbox) {
    let execution = exec(sandbox, "async () => codemode.fail({})").await;
    assert_eq!(thrown(&execution), "the tool failed: bad input");
    let code = "async () => { try { await codemode.fail({}) } catch (e) { return 'caught: ' + e.message } }";
    assert_eq!(exec(sandbox, code).await.outcome, Ok(json!("caught: the tool failed: bad input")));
}

pub async fn an_unknown_tool_is_not_found(sandbox: &dyn Sandbox) {
    let execution = exec(sandbox, "async () => codemode.nope({})").await;
    assert_eq!(thrown(&execution), "Tool \"nope\" not found");
}

pub async fn the_network_and_code_from_strings_are_refused(sandbox: &dyn Sandbox) {
    for code in [
        "async () => { const r = await fetch('http://127.0.0.1:9/'); return r.status }",
        "async () => connect('127.0.0.1:9')",
        "async () => eval('1 + 1')",
        "async () => new Function('return 1')()",
        "async () => (async () => {}).constructor('return 1')()",
        "async () => (function* () {}).constructor('yield 1')().next().value",
        "async () => { const fs = await import('node:fs'); return typeof fs }",
        "async () => { const m = await import('data:text/javascript,export default 1'); return m.default }",
    ] {
        let execution = exec(sandbox, code).await;
        assert!(
            matches!(execution.outcome, Err(ExecutionError::Thrown(_))),
            "{code} was not refused: {:?}",
            execution.outcome
        );
    }
}

pub async fn an_endless_loop_stops_at_the_deadline(sandbox: &dyn Sandbox) {
    let looping = exec_with(sandbox, "async () => { while (true) {} }", short());
    let other = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        exec(sandbox, "async () => 'still serving'").await
    };
    let (looping, other) = tokio::join!(looping, other);
    assert_eq!(looping.outcome, Err(ExecutionError::Timeout));
    assert_eq!(other.outcome, Ok(json!("still serving")));
    assert_eq!(exec(sandbox, "return 'after'").await.outcome, Ok(json!("after")));
}

pub async fn waiting_past_the_deadline_times_out(sandbox: &dyn Sandbox) {
    let code =
        "async () => { await new Promise((resolve) => setTimeout(resolve, 60000)); return 'late' }";
    assert_eq!(exec_with(sandbox, code, short()).await.outcome, Err(ExecutionError::Timeout));
    let code =
        "async () => { await new Promise((resolve) => setTimeout(resolve, 20)); return 'woke' }";
    assert_eq!(exec(sandbox, code).await.outcome, Ok(json!("woke")));
}

pub async fn huge_allocations_are_stopped(sandbox: &dyn Sandbox) {
    let limits = Limits { memory_bytes: 64 * 1024 * 1024, ..short() };
    for code in [
        "async () => new ArrayBuffer(4 * 1024 * 1024 * 1024).byteLength",
        "async () => { const all = []; while (true) all.push(new Array(100000).fill(1.5)); }",
        "async () => { let s = 'x'; while (true) s = s + s; }",
    ] {
        let execution = exec_with(sandbox, code, limits).await;
        assert!(execution.outcome.is_err(), "{code} was not stopped: {:?}", execution.outcome);
    }
    assert_eq!(exec(sandbox, "return 'after'").await.outcome, Ok(json!("after")));
}

pub async fn a_hundred_executions_run_at_once(sandbox: &dyn Sandbox) {
    let runs = (0..100).map(|i| {
        let code = format!("async () => (await codemode.add({{a: {i}, b: 1000}}))");
        async move { exec(sandbox, &code).await }
    });
    let executions = futures::future::join_all(runs).await;
    for (i, execution) in executions.iter().enumerate() {
        assert_eq!(execution.outcome, Ok(json!(i + 1000)));
    }
}

pub async fn cancelling_stops_an_execution(sandbox: &dyn Sandbox) {
    for code in [
        "async () => { while (true) {} }",
        "async () => codemode.slow({}).then(() => new Promise(() => {}))",
    ] {
        let run = run_of(code, Limits::default());
        let cancel = run.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        });
        assert_eq!(execute(sandbox, run).await.outcome, Err(ExecutionError::Cancelled), "{code}");
    }
}

pub async fn the_console_is_captured(sandbox: &dyn Sandbox) {
    let code = "async () => { console.log('a', 1, {x: 1}); console.warn('careful'); console.error('bad'); console.info('i'); return 0 }";
    let execution = exec(sandbox, code).await;
    assert_eq!(execution.logs, ["a 1 [object Object]", "[warn] careful", "[error] bad", "i"]);
    // Logs survive a failure.
    let execution =
        exec(sandbox, "async () => { console.log('before'); throw new Error('x') }").await;
    assert_eq!(execution.logs, ["before"]);
}

pub async fn tool_calls_are_bounded(sandbox: &dyn Sandbox) {
    let limits = Limits { max_calls: 3, ..Limits::default() };
    let code = "async () => { for (let i = 0; i < 3; i++) await codemode.echo({i}); return codemode.echo({i: 3}) }";
    let execution = exec_with(sandbox, code, limits).await;
    assert_eq!(thrown(&execution), "too many tool calls: an execution may make at most 3");
    assert_eq!(execution.calls, 4);
}

pub async fn results_that_are_not_json_are_refused(sandbox: &dyn Sandbox) {
    let execution = exec(sandbox, "async () => 10n").await;
    assert!(
        matches!(execution.outcome, Err(ExecutionError::Unserializable(_))),
        "{:?}",
        execution.outcome
    );
    let execution = exec(sandbox, "async () => { const a = {}; a.self = a; return a }").await;
    assert!(
        matches!(execution.outcome, Err(ExecutionError::Unserializable(_))),
        "{:?}",
        execution.outcome
    );
}

pub async fn syntax_errors_are_reported(sandbox: &dyn Sandbox) {
    let execution = exec(sandbox, "const = ;").await;
    assert!(
        thrown(&execution).to_lowercase().contains("unexpected")
            || thrown(&execution).contains("expect"),
        "{:?}",
        execution.outcome
    );
}

pub async fn executions_share_nothing(sandbox: &dyn Sandbox) {
    assert_eq!(exec(sandbox, "globalThis.leak = 42; return 1").await.outcome, Ok(json!(1)));
    assert_eq!(
        exec(sandbox, "return typeof globalThis.leak").await.outcome,
        Ok(json!("undefined"))
    );
}

/// Runs every test of the suite on an engine.
#[macro_export]
macro_rules! conformance {
    ($engine:expr) => {
        $crate::conformance!(@each $engine;
            returns_a_value,
            calls_a_tool_and_gets_its_answer,
            runs_twenty_calls_in_parallel,
            a_thrown_error_is_the_outcome,
            a_tool_error_rejects_and_can_be_caught,
            an_unknown_tool_is_not_found,
            the_network_and_code_from_strings_are_refused,
            an_endless_loop_stops_at_the_deadline,
            waiting_past_the_deadline_times_out,
            huge_allocations_are_stopped,
            a_hundred_executions_run_at_once,
            cancelling_stops_an_execution,
            the_console_is_captured,
            tool_calls_are_bounded,
            results_that_are_not_json_are_refused,
            syntax_errors_are_reported,
            executions_share_nothing
        );
    };
    (@each $engine:expr; $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                if let Some(sandbox) = $engine {
                    $crate::suite::$test(&*sandbox).await;
                }
            }
        )*
    };
}

mod quickjs {
    use portico_codemode::quickjs::QuickJs;

    fn engine() -> Option<Box<QuickJs>> {
        Some(Box::new(QuickJs::new(16)))
    }

    crate::conformance!(engine());
}

pub(crate) mod workerd {
    use portico_codemode::workerd::{Workerd, WorkerdConfig};

    /// A fresh engine for one test: its processes are supervised on the test's runtime and die
    /// with it.
    pub(crate) async fn engine() -> Option<Box<Workerd>> {
        if std::env::var("PORTICO_SKIP_WORKERD").as_deref() == Ok("1") {
            eprintln!("skipped: workerd test (PORTICO_SKIP_WORKERD=1)");
            return None;
        }
        let Some(binary) = std::env::var_os("PORTICO_WORKERD") else {
            panic!(
                "PORTICO_WORKERD must name the workerd binary (scripts/test installs it), or PORTICO_SKIP_WORKERD=1 skip the workerd tests"
            );
        };
        let engine = Workerd::start(WorkerdConfig::new(binary.into())).await.unwrap();
        Some(Box::new(engine))
    }

    crate::conformance!(engine().await);
}
