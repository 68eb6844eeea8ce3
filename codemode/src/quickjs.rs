//! Embedded QuickJS: each execution gets a fresh runtime and context on a blocking thread.
//!
//! The runtime's heap is capped at the execution's memory limit, and its interrupt handler stops
//! the code once the deadline passes or the execution is cancelled, so `while (true) {}` ends
//! without help from outside. The thread runs the code's jobs until its promise settles, and
//! otherwise waits for the host: answers of bridge calls (made on the caller's tokio runtime) and
//! timers come back over a channel. A runtime costs a few hundred microseconds; there is no
//! reuse, so nothing of one execution can reach the next.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Promise};
use tokio::sync::Semaphore;

use crate::sandbox::{
    Engine, Execution, ExecutionError, PRELUDE, Run, Sandbox, answer_json, bounded_logs, settled,
};

/// The stack one execution's JavaScript may use.
const MAX_STACK_BYTES: usize = 1024 * 1024;

/// The QuickJS engine: at most `max_concurrent` executions run at once (each holds a thread);
/// the others wait their turn.
#[derive(Debug, Clone)]
pub struct QuickJs {
    permits: Arc<Semaphore>,
}

impl QuickJs {
    pub fn new(max_concurrent: usize) -> Self {
        QuickJs { permits: Arc::new(Semaphore::new(max_concurrent.max(1))) }
    }
}

#[async_trait]
impl Sandbox for QuickJs {
    fn engine(&self) -> Engine {
        Engine::QuickJs
    }

    async fn run(&self, run: Run) -> Execution {
        let failed = |message: String| Execution::failed(ExecutionError::Engine(message));
        let started = Instant::now();
        let deadline = started + run.limits.timeout;
        let permit = tokio::select! {
            permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return failed("the QuickJS engine is shut down".to_owned()),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                return Execution::failed(ExecutionError::Timeout);
            }
            () = run.cancel.cancelled() => {
                return Execution::failed(ExecutionError::Cancelled);
            }
        };
        let (sender, receiver) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (cancel, stop, sender) = (run.cancel.clone(), Arc::clone(&stop), sender.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                stop.store(true, Ordering::Relaxed);
                let _ = sender.send(Message::Cancelled);
            })
        };
        let host = Host { handle: tokio::runtime::Handle::current(), sender, deadline };
        let thread = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            execute(run, host, &receiver, &stop)
        });
        let execution =
            thread.await.unwrap_or_else(|e| failed(format!("the QuickJS thread failed: {e}")));
        watcher.abort();
        execution
    }
}

/// What the host sends the execution's thread.
enum Message {
    /// A bridge call or a timer with this id is done; the text resolves its promise.
    Settled {
        id: u64,
        text: String,
    },
    Cancelled,
}

/// What the execution's thread needs of the host.
#[derive(Clone)]
struct Host {
    handle: tokio::runtime::Handle,
    sender: mpsc::Sender<Message>,
    deadline: Instant,
}

/// The promises the host has yet to settle, by id.
type Pending = Rc<RefCell<(u64, HashMap<u64, Persistent<Function<'static>>>)>>;

fn execute(
    run: Run,
    host: Host,
    receiver: &mpsc::Receiver<Message>,
    stop: &Arc<AtomicBool>,
) -> Execution {
    let engine_error = |e: rquickjs::Error| {
        Execution::failed(ExecutionError::Engine(format!("QuickJS could not start: {e}")))
    };
    let runtime = match rquickjs::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return engine_error(e),
    };
    runtime.set_memory_limit(run.limits.memory_bytes);
    runtime.set_max_stack_size(MAX_STACK_BYTES);
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (stop, interrupted, deadline) =
            (Arc::clone(stop), Arc::clone(&interrupted), host.deadline);
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let now = stop.load(Ordering::Relaxed) || Instant::now() >= deadline;
            if now {
                interrupted.store(true, Ordering::Relaxed);
            }
            now
        })));
    }
    let context = match Context::full(&runtime) {
        Ok(context) => context,
        Err(e) => return engine_error(e),
    };
    let limit_bytes = run.limits.memory_bytes;
    let pending: Pending = Rc::new(RefCell::new((0, HashMap::new())));
    let (outcome, logs) = context.with(|ctx| {
        let started = start(&ctx, &run, &host, &pending);
        let (promise, logs) = match started {
            Ok(started) => started,
            Err(error) => return (Err(error), Vec::new()),
        };
        let outcome = settle(&ctx, &promise, receiver, &pending, host.deadline, stop);
        let logs: Vec<String> = logs.get::<_, Vec<String>>("logs").unwrap_or_default();
        // The host's promises hold references into this runtime: release them before it goes.
        pending.borrow_mut().1.clear();
        (outcome, logs)
    });
    let outcome = match outcome {
        Err(ExecutionError::Thrown(message)) if interrupted.load(Ordering::Relaxed) => {
            if stop.load(Ordering::Relaxed) {
                Err(ExecutionError::Cancelled)
            } else {
                tracing::debug!(%message, "QuickJS execution interrupted at its deadline");
                Err(ExecutionError::Timeout)
            }
        }
        Err(ExecutionError::Thrown(message)) if message == "out of memory" => {
            Err(ExecutionError::OutOfMemory { limit_bytes })
        }
        other => other,
    };
    Execution { outcome, logs: bounded_logs(logs), calls: 0 }
}

/// Installs the prelude with the host's functions, compiles the code and calls it: the promise
/// the prelude's runner settles with, and the object holding the console's lines.
fn start<'js>(
    ctx: &Ctx<'js>,
    run: &Run,
    host: &Host,
    pending: &Pending,
) -> Result<(Promise<'js>, Object<'js>), ExecutionError> {
    let thrown = |e: CaughtError<'_>| ExecutionError::Thrown(caught_message(e));
    let call = {
        let (host, pending, bridge) = (host.clone(), Rc::clone(pending), Arc::clone(&run.bridge));
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, name: String, input: String| {
            let (promise, resolve, _) = Promise::new(&ctx)?;
            let id = remember(&ctx, &pending, resolve);
            let (bridge, sender) = (Arc::clone(&bridge), host.sender.clone());
            host.handle.spawn(async move {
                let answer = match serde_json::from_str(&input) {
                    Ok(input) => bridge.call(&name, input).await,
                    Err(e) => Err(format!("the input of codemode.{name} is not JSON: {e}")),
                };
                let _ = sender.send(Message::Settled { id, text: answer_json(answer) });
            });
            Ok::<_, rquickjs::Error>(promise)
        })
        .catch(ctx)
        .map_err(thrown)?
    };
    let sleep = {
        let (host, pending) = (host.clone(), Rc::clone(pending));
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, ms: f64| {
            let (promise, resolve, _) = Promise::new(&ctx)?;
            let id = remember(&ctx, &pending, resolve);
            // A timer past the deadline never fires: the execution ends first.
            let wait = Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 86_400.0));
            let wake = (Instant::now() + wait).min(host.deadline);
            let sender = host.sender.clone();
            host.handle.spawn(async move {
                tokio::time::sleep_until(wake.into()).await;
                let _ = sender.send(Message::Settled { id, text: String::new() });
            });
            Ok::<_, rquickjs::Error>(promise)
        })
        .catch(ctx)
        .map_err(thrown)?
    };
    let prelude: Function<'js> = ctx.eval(PRELUDE).catch(ctx).map_err(thrown)?;
    let installed: Object<'js> = prelude.call((call, sleep)).catch(ctx).map_err(thrown)?;
    let code: rquickjs::Value<'js> = ctx.eval(run.code.as_str()).catch(ctx).map_err(thrown)?;
    let runner: Function<'js> = installed.get("run").catch(ctx).map_err(thrown)?;
    let promise: Promise<'js> = runner.call((code,)).catch(ctx).map_err(thrown)?;
    Ok((promise, installed))
}

/// Keeps `resolve` until the host settles it; returns its id.
fn remember<'js>(ctx: &Ctx<'js>, pending: &Pending, resolve: Function<'js>) -> u64 {
    let mut slot = pending.borrow_mut();
    slot.0 += 1;
    let id = slot.0;
    slot.1.insert(id, Persistent::save(ctx, resolve));
    id
}

/// Runs the code's jobs and the host's answers until the runner's promise settles, the deadline
/// passes or the execution is cancelled.
fn settle<'js>(
    ctx: &Ctx<'js>,
    promise: &Promise<'js>,
    receiver: &mpsc::Receiver<Message>,
    pending: &Pending,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<serde_json::Value, ExecutionError> {
    loop {
        // A job that throws leaves nothing behind (its promise reports it); once the execution
        // is stopped, every job throws at once, and the loop below ends it.
        while ctx.execute_pending_job() {
            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
        }
        if let Some(result) = promise.result::<String>() {
            return match result.catch(ctx) {
                Ok(text) => settled(&text),
                Err(e) => Err(ExecutionError::Thrown(caught_message(e))),
            };
        }
        if stop.load(Ordering::Relaxed) {
            return Err(ExecutionError::Cancelled);
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(ExecutionError::Timeout);
        };
        match receiver.recv_timeout(left) {
            Ok(Message::Settled { id, text }) => {
                let resolve = pending.borrow_mut().1.remove(&id);
                if let Some(resolve) = resolve {
                    let resolve = resolve.restore(ctx).catch(ctx).map_err(|e| {
                        ExecutionError::Engine(format!("a promise was lost: {}", caught_message(e)))
                    })?;
                    // A resolve function only throws when the heap is exhausted; the runner's
                    // promise then reports it.
                    let _ = resolve.call::<_, ()>((text,));
                }
            }
            Ok(Message::Cancelled) => return Err(ExecutionError::Cancelled),
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(ExecutionError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ExecutionError::Engine("the host went away".to_owned()));
            }
        }
    }
}

/// The message of a JavaScript exception, as `err.message` or `String(err)` would give it.
fn caught_message(error: CaughtError<'_>) -> String {
    match error {
        CaughtError::Exception(exception) => {
            exception.message().unwrap_or_else(|| "Error".to_owned())
        }
        CaughtError::Value(value) => value
            .as_string()
            .and_then(|s| s.to_string().ok())
            .unwrap_or_else(|| format!("{value:?}")),
        CaughtError::Error(error) => error.to_string(),
    }
}
