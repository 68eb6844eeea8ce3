//! V8 isolates through workerd, Cloudflare's open-source Workers runtime: a pool of supervised
//! `workerd` processes, each running one host worker (`workerd/host.js`) that loads every
//! execution into a fresh worker of its own with the Worker Loader.
//!
//! # How an execution runs
//! [`Workerd::run`] takes a slot on the least-loaded live process (at most
//! [`WorkerdConfig::max_per_process`] executions in flight on each; the others wait, within their
//! deadline) and posts the code to the process's host worker over loopback (`POST /run`, with the
//! process's random token). The host loads a fresh worker (`LOADER.load`, never `get`: named
//! workers are cached forever) with `globalOutbound: null` and one binding, `BRIDGE`, an RPC
//! entrypoint of the host bound to the execution's id. The answer is streamed NDJSON: a line per
//! `codemode.<name>(input)` call, answered with `POST /answer`, then one `done` line with the
//! runner's JSON text and the console's lines. Bridge calls run in the caller's task, several at
//! once; everything that talks to workerd runs on the runtime that started the engine.
//!
//! # Supervision
//! workerd enforces no CPU or memory limit, and each process has one JavaScript thread: code
//! that never yields freezes every execution on its process and ignores SIGTERM. So:
//! - each execution has a hard deadline, its limit plus one second: the host answers `timeout`
//!   at the limit when it can; a `done` line that has not come by the hard deadline means the
//!   process is frozen, and it is killed (SIGKILL). That execution ends with
//!   [`ExecutionError::Timeout`], the others in flight on the process with
//!   [`ExecutionError::Engine`], and another process takes its place (the pool keeps its size; a
//!   start that fails is retried with a doubling wait up to 5 s);
//! - a process that exits on its own (a heap overflow aborts it; something kills it) is noticed
//!   at once: its executions end with [`ExecutionError::Engine`] naming the exit status (or
//!   [`ExecutionError::OutOfMemory`] when its stderr says the heap ran out and the execution was
//!   alone on it), and it is restarted;
//! - a cancelled execution ends with [`ExecutionError::Cancelled`] at once; the host is asked to
//!   stop it, and a host that does not confirm within one second (code that does not yield) is
//!   killed then, not at the execution's deadline;
//! - memory: V8's `--max-old-space-size` of every isolate of a process is
//!   [`WorkerdConfig::heap_bytes`] ([`crate::sandbox::DEFAULT_MEMORY_BYTES`] by default; V8 flags
//!   are per process, so an execution's own [`crate::Limits::memory_bytes`] is not applied), and
//!   the whole process gets `RLIMIT_DATA` = [`WorkerdConfig::memory_bytes`], which turns a huge
//!   `ArrayBuffer` into a `RangeError` the code can catch.
//!
//! Processes are killed when the engine is dropped or [`Workerd::shutdown`], and when the runtime
//! that started the engine shuts down: start the engine on a runtime that lives as long as it.
//!
//! # Threat model
//! workerd says of itself that it is not a hardened sandbox: isolates of one process share an
//! address space, and a V8 bug exploited by the code would own the process. What the code can
//! reach without one: the language, the prelude's `codemode` proxy (the bridge, which checks
//! every call as a portal call) and `console`; no network (`globalOutbound: null`: `fetch` and
//! `connect` fail), no `node:*` modules, no code from strings, nothing of other executions (a
//! fresh worker each time). What a process could reach with one: its own memory (the other
//! executions in flight on it, their code and tool results), the loopback network, and the
//! files and processes of Portico's user; not Portico's memory nor its environment (cleared).
//! The host worker answers only requests carrying the process's random token, kept in memory and
//! in a private temporary file that is deleted once workerd has read it, so another local user
//! cannot run code on it or answer its calls. Where it matters, run Portico itself in an OS
//! sandbox (its own user, a container, seccomp).

mod host;
mod process;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::sandbox::{
    DEFAULT_MEMORY_BYTES, Engine, Execution, ExecutionError, Run, Sandbox, answer_json,
    bounded_logs,
};
use host::{Drive, Event, GRACE};
use process::{Process, Settings};

/// The longest line Portico reads from a host worker, and the host writes: a call's input or an
/// execution's result beyond it is refused inside the sandbox.
const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// The longest limit the host applies itself (`setTimeout`'s longest delay, about 24 days); a
/// longer one is still kept by Portico's hard deadline.
const MAX_HOST_TIMEOUT_MS: u64 = 2_147_483_647;

/// How the workerd engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerdConfig {
    /// The `workerd` binary (`@cloudflare/workerd-linux-64` from npm).
    pub binary: PathBuf,
    /// Processes in the pool, each one JavaScript thread.
    pub processes: usize,
    /// Executions in flight on one process at most.
    pub max_per_process: usize,
    /// `RLIMIT_DATA` of each process.
    pub memory_bytes: usize,
    /// The JavaScript heap of each isolate (V8's `--max-old-space-size`, at least 16 MiB); one
    /// execution that exceeds it aborts its process.
    pub heap_bytes: usize,
}

impl WorkerdConfig {
    /// The defaults: 2 processes of at most 32 executions, 1 GiB of data per process,
    /// [`DEFAULT_MEMORY_BYTES`] of heap per isolate.
    pub fn new(binary: PathBuf) -> Self {
        WorkerdConfig {
            binary,
            processes: 2,
            max_per_process: 32,
            memory_bytes: 1024 * 1024 * 1024,
            heap_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerdError {
    #[error("the workerd binary `{}` cannot be run: {reason}", binary.display())]
    NotExecutable { binary: PathBuf, reason: String },
    #[error("the workerd configuration could not be written: {0}")]
    Config(#[source] std::io::Error),
    #[error("the workerd binary `{}` could not be started: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the workerd binary `{}` exited before it was ready ({status}); its stderr ends with:\n{stderr}", binary.display())]
    Exited { binary: PathBuf, status: String, stderr: String },
    #[error("the workerd binary `{}` reported no listening port within {seconds} s", binary.display())]
    NoPort { binary: PathBuf, seconds: u64 },
    #[error("the workerd binary `{}` reported its port unreadably: {message}", binary.display())]
    Control { binary: PathBuf, message: String },
    #[error("the HTTP client for workerd could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// The workerd binary to use: `PORTICO_WORKERD` when set, else `workerd` on `PATH`.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(binary) = std::env::var_os("PORTICO_WORKERD").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(binary));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("workerd"))
        .find(|candidate| executable(candidate).is_ok())
}

/// Whether `binary` is an executable file; why not otherwise.
fn executable(binary: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(binary).map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("it is not a file".to_owned());
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err("it is not executable".to_owned());
    }
    Ok(())
}

/// The workerd engine: a pool of supervised workerd processes.
pub struct Workerd {
    shared: Arc<Shared>,
}

/// What the engine's handle, its supervisors and its executions share.
#[derive(Debug)]
struct Shared {
    settings: Settings,
    max_per_process: usize,
    client: reqwest::Client,
    /// The live process of each slot of the pool; `None` while it restarts.
    pool: Mutex<Vec<Option<Arc<Process>>>>,
    /// Notified when a slot frees or a process joins the pool.
    changed: Notify,
    next_exec: AtomicU64,
    /// Where the drivers and supervisors run: the runtime that started the engine.
    handle: tokio::runtime::Handle,
    shutdown: CancellationToken,
    supervisors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    fn remove(&self, index: usize) {
        if let Some(slot) = self.pool.lock().unwrap_or_else(PoisonError::into_inner).get_mut(index)
        {
            *slot = None;
        }
        self.changed.notify_waiters();
    }

    fn insert(&self, index: usize, process: Arc<Process>) {
        if let Some(slot) = self.pool.lock().unwrap_or_else(PoisonError::into_inner).get_mut(index)
        {
            *slot = Some(process);
        }
        self.changed.notify_waiters();
    }

    /// A slot on the least-loaded serving process, if one has room.
    fn pick(self: &Arc<Self>) -> Option<Slot> {
        let pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let process = pool
            .iter()
            .flatten()
            .filter(|p| p.serving())
            .min_by_key(|p| p.in_flight.load(Ordering::Relaxed))?;
        // INVARIANT: `in_flight` only grows under the pool's lock, so no process exceeds the
        // maximum; it shrinks anywhere (a freed slot), which only makes this check cautious.
        if process.in_flight.load(Ordering::Relaxed) >= self.max_per_process {
            return None;
        }
        process.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Slot { process: Arc::clone(process), shared: Arc::clone(self) })
    }

    /// Waits for a slot until `deadline` or cancellation.
    async fn slot(
        self: &Arc<Self>,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<Slot, ExecutionError> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(slot) = self.pick() {
                return Ok(slot);
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => return Err(ExecutionError::Timeout),
                () = cancel.cancelled() => return Err(ExecutionError::Cancelled),
                () = self.shutdown.cancelled() => {
                    return Err(ExecutionError::Engine("the workerd engine is shut down".to_owned()));
                }
            }
        }
    }
}

/// One execution's place on a process, given back when dropped.
#[derive(Debug)]
struct Slot {
    process: Arc<Process>,
    shared: Arc<Shared>,
}

impl Slot {
    fn process(&self) -> &Arc<Process> {
        &self.process
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.process.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.shared.changed.notify_waiters();
    }
}

impl Workerd {
    /// Starts the pool's processes and waits until each listens. Its supervisors and the
    /// executions' exchanges with workerd run on the current runtime.
    pub async fn start(config: WorkerdConfig) -> Result<Workerd, WorkerdError> {
        let binary = std::path::absolute(&config.binary).unwrap_or_else(|_| config.binary.clone());
        executable(&binary)
            .map_err(|reason| WorkerdError::NotExecutable { binary: binary.clone(), reason })?;
        let settings =
            Settings { binary, memory_bytes: config.memory_bytes, heap_bytes: config.heap_bytes };
        // The workspace's reqwest has rustls without a provider; the loopback needs no TLS, but
        // the client's builder insists on a provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .http1_only()
            .build()
            .map_err(WorkerdError::Client)?;
        let started = futures::future::join_all(
            (0..config.processes.max(1)).map(|_| process::start(&settings)),
        )
        .await;
        let mut running = Vec::with_capacity(started.len());
        for started in started {
            running.push(started?);
        }
        let shared = Arc::new(Shared {
            settings,
            max_per_process: config.max_per_process.max(1),
            client,
            pool: Mutex::new(running.iter().map(|r| Some(Arc::clone(&r.process))).collect()),
            changed: Notify::new(),
            next_exec: AtomicU64::new(1),
            handle: tokio::runtime::Handle::current(),
            shutdown: CancellationToken::new(),
            supervisors: Mutex::new(Vec::new()),
        });
        let supervisors = running
            .into_iter()
            .enumerate()
            .map(|(index, running)| {
                tokio::spawn(process::supervise(Arc::clone(&shared), index, running))
            })
            .collect();
        *shared.supervisors.lock().unwrap_or_else(PoisonError::into_inner) = supervisors;
        Ok(Workerd { shared })
    }

    /// The pids of the live processes.
    pub fn pids(&self) -> Vec<u32> {
        let pool = self.shared.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.iter().flatten().map(|p| p.pid).collect()
    }

    /// Kills every process and waits until they are gone; executions in flight end with
    /// [`ExecutionError::Engine`].
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let supervisors = std::mem::take(
            &mut *self.shared.supervisors.lock().unwrap_or_else(PoisonError::into_inner),
        );
        for supervisor in supervisors {
            let _ = supervisor.await;
        }
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl std::fmt::Debug for Workerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workerd")
            .field("binary", &self.shared.settings.binary)
            .field("pids", &self.pids())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sandbox for Workerd {
    fn engine(&self) -> Engine {
        Engine::Workerd
    }

    async fn run(&self, run: Run) -> Execution {
        let deadline = Instant::now() + run.limits.timeout;
        let slot = match self.shared.slot(deadline, &run.cancel).await {
            Ok(slot) => slot,
            Err(error) => return Execution::failed(error),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let (events_sender, mut events) = mpsc::unbounded_channel();
        let (answers, answers_receiver) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        // The driver stops the execution when this future is dropped, cancelled or not.
        let _stop = stop.clone().drop_guard();
        let drive = Drive {
            client: self.shared.client.clone(),
            slot,
            exec_id: self.shared.next_exec.fetch_add(1, Ordering::Relaxed),
            code: run.code,
            timeout_ms: u64::try_from(left.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_HOST_TIMEOUT_MS),
            hard_deadline: Instant::now() + left + GRACE,
            events: events_sender,
            answers: answers_receiver,
            stop,
        };
        self.shared.handle.spawn(drive.run());
        let mut calls = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(Event::Call { id, name, input }) => {
                        let bridge = Arc::clone(&run.bridge);
                        calls.push(async move {
                            let answer = match serde_json::from_str(&input) {
                                Ok(input) => bridge.call(&name, input).await,
                                Err(e) => Err(format!("the input of codemode.{name} is not JSON: {e}")),
                            };
                            (id, answer_json(answer))
                        });
                    }
                    Some(Event::Done { outcome, logs }) => {
                        return Execution { outcome, logs: bounded_logs(logs), calls: 0 };
                    }
                    None => {
                        return Execution::failed(ExecutionError::Engine("the workerd driver ended without an answer".to_owned()));
                    }
                },
                Some((id, text)) = calls.next(), if !calls.is_empty() => {
                    let _ = answers.send((id, text));
                }
                () = run.cancel.cancelled() => return Execution::failed(ExecutionError::Cancelled),
            }
        }
    }
}
