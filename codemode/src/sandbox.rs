//! The one interface of every JavaScript engine: a [`Sandbox`] runs one execution of normalised
//! code, whose only way out is a [`Bridge`] to the host.
//!
//! Both engines run the same [`PRELUDE`] before the code: it installs `console` (captured, never
//! printed), the `codemode` proxy (any property is an async function that calls the bridge),
//! `setTimeout`, and removes code generation from strings (`eval`, `Function`). What is left is
//! the language itself: no `fetch`, no `connect`, no modules, no timers but the prelude's.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The code both engines run first, as a function of two host functions: `call(name, argsJson)`
/// and `sleep(ms)`, each returning a promise (of the answer's JSON text, and of nothing). It
/// returns the `logs` array the console writes into.
pub const PRELUDE: &str = include_str!("prelude.js");

/// The execution's default wall-clock limit: the product's 60 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The default limit of the JavaScript heap of one execution.
pub const DEFAULT_MEMORY_BYTES: usize = 128 * 1024 * 1024;
/// The default number of tool calls one execution may make.
pub const DEFAULT_MAX_CALLS: u32 = 1_000;
/// How much console output one execution keeps; what comes after is dropped, with a marker.
pub const MAX_LOG_BYTES: usize = 64 * 1024;

/// The engines Portico has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// V8 isolates in supervised `workerd` processes.
    Workerd,
    /// Embedded QuickJS, in process.
    QuickJs,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Workerd => "workerd",
            Engine::QuickJs => "quickjs",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one execution may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from start to result, waiting on tools included.
    pub timeout: Duration,
    /// The JavaScript heap.
    pub memory_bytes: usize,
    /// Calls through the bridge; the one after the last allowed is refused inside the sandbox.
    pub max_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            max_calls: DEFAULT_MAX_CALLS,
        }
    }
}

/// The host side of `codemode.<name>(input)`.
#[async_trait]
pub trait Bridge: Send + Sync {
    /// Answers `codemode.<name>(input)`: the value the sandbox's promise resolves to, or the
    /// message of the error it rejects with (`Tool "<name>" not found` for a name the caller
    /// has no tool of).
    async fn call(&self, name: &str, input: Value) -> Result<Value, String>;
}

/// One execution to run.
#[derive(Clone)]
pub struct Run {
    /// One async arrow function expression, as [`crate::normalize::normalize`] makes it.
    pub code: String,
    pub bridge: Arc<dyn Bridge>,
    pub limits: Limits,
    /// Cancelled when whoever asked for the execution is gone: the execution stops.
    pub cancel: CancellationToken,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("code_bytes", &self.code.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The function's result as JSON (`null` for `undefined`), or why there is none.
    pub outcome: Result<Value, ExecutionError>,
    /// What the code wrote with `console.*`: `log`, `info` and `debug` as they are, `warn` and
    /// `error` prefixed with `[warn] ` and `[error] `.
    pub logs: Vec<String>,
    /// Calls the code made through the bridge (refused ones included).
    pub calls: u32,
}

impl Execution {
    /// An execution that ended with `error` before the code ran or wrote anything.
    pub fn failed(error: ExecutionError) -> Self {
        Execution { outcome: Err(error), logs: Vec::new(), calls: 0 }
    }
}

/// Why an execution has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    /// The code threw, or its promise rejected (a tool's error included): the error's message.
    #[error("{0}")]
    Thrown(String),
    /// The wall-clock limit passed (the product's message).
    #[error("Execution timed out")]
    Timeout,
    /// The heap limit was reached.
    #[error("the execution ran out of memory (limit {limit_bytes} bytes)")]
    OutOfMemory { limit_bytes: usize },
    /// The result is not JSON (a `BigInt`, a cycle, a function).
    #[error("the result cannot be returned as JSON: {0}")]
    Unserializable(String),
    /// Whoever asked for the execution went away.
    #[error("the execution was cancelled")]
    Cancelled,
    /// The engine failed (a `workerd` process died, QuickJS could not start): not the code's
    /// fault; the message says what happened.
    #[error("the sandbox failed: {0}")]
    Engine(String),
}

/// A JavaScript engine that runs executions, each in a fresh, isolated global scope.
#[async_trait]
pub trait Sandbox: Send + Sync + fmt::Debug {
    fn engine(&self) -> Engine;

    /// Runs `run.code` (an async arrow function) to its result, within `run.limits`, until
    /// `run.cancel` is cancelled. Engines count nothing themselves: [`execute`] counts and bounds
    /// the calls.
    async fn run(&self, run: Run) -> Execution;
}

/// Runs `run` on `sandbox`, counting its bridge calls and refusing those over the limit.
pub async fn execute(sandbox: &dyn Sandbox, run: Run) -> Execution {
    let counted = Arc::new(Counted {
        inner: Arc::clone(&run.bridge),
        calls: AtomicU32::new(0),
        max: run.limits.max_calls,
    });
    let bridge: Arc<dyn Bridge> = Arc::clone(&counted) as Arc<dyn Bridge>;
    let mut execution = sandbox.run(Run { bridge, ..run }).await;
    execution.calls = counted.calls.load(Ordering::Relaxed);
    execution
}

/// A bridge that counts calls and refuses those over `max`.
struct Counted {
    inner: Arc<dyn Bridge>,
    calls: AtomicU32,
    max: u32,
}

#[async_trait]
impl Bridge for Counted {
    async fn call(&self, name: &str, input: Value) -> Result<Value, String> {
        let made = self.calls.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if made > self.max {
            return Err(format!("too many tool calls: an execution may make at most {}", self.max));
        }
        self.inner.call(name, input).await
    }
}

/// The JSON text the sandbox's `call` promise resolves to: `{"result": …}` or `{"error": …}`.
pub(crate) fn answer_json(answer: Result<Value, String>) -> String {
    let body = match answer {
        Ok(value) => serde_json::json!({ "result": value }),
        Err(message) => serde_json::json!({ "error": message }),
    };
    body.to_string()
}

/// Reads what the prelude's runner settles with: `{"result": …}` or `{"error": …}` (see
/// `prelude.js`).
pub(crate) fn settled(text: &str) -> Result<Value, ExecutionError> {
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| ExecutionError::Engine(format!("the runner's answer is not JSON: {e}")))?;
    if let Some(error) = value.get("unserializable").and_then(Value::as_str) {
        return Err(ExecutionError::Unserializable(error.to_owned()));
    }
    if let Some(error) = value.get("error") {
        let message = error.as_str().map(str::to_owned).unwrap_or_else(|| error.to_string());
        return Err(ExecutionError::Thrown(message));
    }
    Ok(value.get_mut("result").map(Value::take).unwrap_or(Value::Null))
}

/// Bounds captured console output at [`MAX_LOG_BYTES`].
pub(crate) fn bounded_logs(lines: Vec<String>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    for line in lines {
        total = total.saturating_add(line.len());
        if total > MAX_LOG_BYTES {
            kept.push(format!("[portico] console output beyond {MAX_LOG_BYTES} bytes was dropped"));
            break;
        }
        kept.push(line);
    }
    kept
}
