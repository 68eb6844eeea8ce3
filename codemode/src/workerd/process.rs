//! One workerd process: started from a configuration written into a private temporary directory,
//! watched until it exits or is killed, then started again.
//!
//! The process is `/bin/sh` replaced by workerd (`exec`, so the pid is workerd's): the shell sets
//! `RLIMIT_DATA` first (Portico forbids `unsafe`, so no `pre_exec`) and points workerd's control
//! descriptor (3) at the stdout pipe, where workerd reports the port it listens on; workerd's own
//! stdout goes to stderr. The environment is cleared: nothing of Portico's reaches workerd.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::{MAX_LINE_BYTES, Shared, WorkerdError};
use crate::sandbox::PRELUDE;

/// The host worker every process runs.
const HOST_JS: &str = include_str!("host.js");
/// How long a process may take to report its port.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// The longest wait between two attempts to restart a process.
const MAX_RESTART_WAIT: Duration = Duration::from_secs(5);
/// The first wait after a failed restart; it doubles up to [`MAX_RESTART_WAIT`].
const FIRST_RESTART_WAIT: Duration = Duration::from_millis(100);
/// The lines of stderr kept to explain an exit.
const STDERR_TAIL_LINES: usize = 20;
/// The longest stderr line kept (longer ones are split).
const MAX_STDERR_LINE: u64 = 2048;
/// The longest control message read.
const MAX_CONTROL_LINE: u64 = 4096;

/// How a process is started: the same for each of the pool's processes.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// An absolute path.
    pub(super) binary: PathBuf,
    /// `RLIMIT_DATA` of the process.
    pub(super) memory_bytes: usize,
    /// V8's `--max-old-space-size`, for each isolate of the process.
    pub(super) heap_bytes: usize,
}

/// A running process, as executions see it.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub(super) base: String,
    pub(super) token: Token,
    /// Executions holding a slot on the process.
    pub(super) in_flight: AtomicUsize,
    /// Cancelled when the process must be killed: an execution found it frozen.
    kill: CancellationToken,
    kill_reason: OnceLock<String>,
    /// Cancelled once the process is dead and out of the pool.
    gone: CancellationToken,
    gone_reason: OnceLock<Gone>,
}

/// Why a process is gone.
#[derive(Debug, Clone)]
pub(super) struct Gone {
    /// What the executions on it are told.
    pub(super) message: String,
    /// The process aborted on an exhausted heap (its stderr says so): the heap limit.
    pub(super) out_of_memory: Option<usize>,
    /// Executions in flight when it died.
    pub(super) in_flight: usize,
}

impl Process {
    /// Whether new executions may go to the process.
    pub(super) fn serving(&self) -> bool {
        !self.kill.is_cancelled() && !self.gone.is_cancelled()
    }

    /// Asks the supervisor to kill the process (SIGKILL: a frozen workerd ignores SIGTERM) and
    /// start another; the first reason given is the one executions are told.
    pub(super) fn kill(&self, reason: &str) {
        let _ = self.kill_reason.set(reason.to_owned());
        self.kill.cancel();
    }

    /// Completes once the process is dead and out of the pool.
    pub(super) async fn gone(&self) {
        self.gone.cancelled().await;
    }

    pub(super) fn gone_reason(&self) -> Option<&Gone> {
        self.gone_reason.get()
    }

    fn mark_gone(&self, gone: Gone) {
        let _ = self.gone_reason.set(gone);
        self.gone.cancel();
    }
}

/// The per-process secret the host worker requires of every request, so that no other local
/// process can run code or answer calls. Never printed.
pub(super) struct Token(String);

impl Token {
    fn new() -> Result<Self, WorkerdError> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| {
            WorkerdError::Config(std::io::Error::other(format!("no random token: {e}")))
        })?;
        Ok(Token(hex::encode(bytes)))
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// A started process and what watches it.
#[derive(Debug)]
pub(super) struct Running {
    child: Child,
    pub(super) process: Arc<Process>,
    stderr: Stderr,
}

/// The last lines workerd wrote to stderr, kept to explain an exit.
#[derive(Debug, Clone, Default)]
struct Stderr {
    tail: Arc<Mutex<VecDeque<String>>>,
    done: CancellationToken,
}

impl Stderr {
    /// The kept lines, once the pipe is closed (or after a short wait).
    async fn tail(&self) -> String {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.done.cancelled()).await;
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

/// What workerd writes on its control descriptor when a socket listens.
#[derive(Deserialize)]
struct Listening {
    event: String,
    port: u16,
}

/// Starts one process and waits until it listens.
pub(super) async fn start(settings: &Settings) -> Result<Running, WorkerdError> {
    let binary = || settings.binary.clone();
    let dir = tempfile::Builder::new()
        .prefix("portico-workerd-")
        .tempdir()
        .map_err(WorkerdError::Config)?;
    let token = Token::new()?;
    let config = dir.path().join("config.capnp");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).map_err(WorkerdError::Config)
    };
    write("host.js", HOST_JS)?;
    write("prelude.js", PRELUDE)?;
    write("config.capnp", &config_text(settings, &token))?;

    let kib = settings.memory_bytes.div_ceil(1024).max(1);
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("ulimit -d {kib} && exec \"$0\" \"$@\" 3>&1 1>&2"))
        .arg(&settings.binary)
        .args(["serve", "--experimental"])
        .arg(&config)
        .args(["--control-fd", "3"])
        .env_clear()
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| WorkerdError::Spawn { binary: binary(), source })?;
    let pid = child.id().unwrap_or_default();
    let stderr = Stderr::default();
    if let Some(pipe) = child.stderr.take() {
        tokio::spawn(read_stderr(pipe, pid, stderr.clone()));
    }
    let Some(stdout) = child.stdout.take() else {
        return Err(WorkerdError::Config(std::io::Error::other("no stdout pipe")));
    };
    let mut control = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut first = (&mut control).take(MAX_CONTROL_LINE);
    let reported = tokio::select! {
        read = first.read_until(b'\n', &mut line) => read,
        status = child.wait() => {
            let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            return Err(WorkerdError::Exited { binary: binary(), status, stderr: stderr.tail().await });
        }
        () = tokio::time::sleep(READY_WITHIN) => {
            return Err(WorkerdError::NoPort { binary: binary(), seconds: READY_WITHIN.as_secs() });
        }
    };
    let unreadable = |message: String| WorkerdError::Control { binary: binary(), message };
    match reported {
        Ok(0) => {
            let status = match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                _ => "still running".to_owned(),
            };
            return Err(WorkerdError::Exited {
                binary: binary(),
                status,
                stderr: stderr.tail().await,
            });
        }
        Ok(_) => {}
        Err(e) => return Err(unreadable(e.to_string())),
    }
    let listening: Listening =
        serde_json::from_slice(&line).map_err(|e| unreadable(e.to_string()))?;
    if listening.event != "listen" {
        return Err(unreadable(format!("the event is `{}`", listening.event)));
    }
    // Later control messages are read and dropped, so the pipe never fills.
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut control, &mut tokio::io::sink()).await;
    });
    // workerd has read its configuration (the token with it): the files go now.
    drop(dir);
    tracing::debug!(pid, port = listening.port, "workerd process ready");
    let process = Process {
        pid,
        base: format!("http://127.0.0.1:{}", listening.port),
        token,
        in_flight: AtomicUsize::new(0),
        kill: CancellationToken::new(),
        kill_reason: OnceLock::new(),
        gone: CancellationToken::new(),
        gone_reason: OnceLock::new(),
    };
    Ok(Running { child, process: Arc::new(process), stderr })
}

/// The Cap'n Proto configuration of one process: the host worker with its Worker Loader, its
/// token and the longest line it may write, listening on a loopback port of the system's choice.
fn config_text(settings: &Settings, token: &Token) -> String {
    let heap_mib = (settings.heap_bytes / (1024 * 1024)).max(16);
    let token = token.expose();
    format!(
        r#"using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "host", worker = .host)],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "host")],
  v8Flags = ["--max-old-space-size={heap_mib}"],
);

const host :Workerd.Worker = (
  modules = [
    (name = "host.js", esModule = embed "host.js"),
    (name = "prelude.js", text = embed "prelude.js"),
  ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ["enable_ctx_exports"],
  bindings = [
    (name = "LOADER", workerLoader = ()),
    (name = "TOKEN", text = "{token}"),
    (name = "MAX_LINE_BYTES", json = "{MAX_LINE_BYTES}"),
  ],
);
"#
    )
}

/// Reads workerd's stderr to its end: each line logged at debug level, the last ones kept.
async fn read_stderr(pipe: tokio::process::ChildStderr, pid: u32, stderr: Stderr) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut next = (&mut reader).take(MAX_STDERR_LINE);
        match next.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        tracing::debug!(pid, line = %text, "workerd stderr");
        let mut tail = stderr.tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    }
    stderr.done.cancel();
}

/// Watches the process in slot `index` of the pool: when it exits, or an execution asks for it
/// to be killed, it leaves the pool, its executions are told why, and another process takes its
/// place. Ends when the engine shuts down, killing the process.
pub(super) async fn supervise(shared: Arc<Shared>, index: usize, mut running: Running) {
    loop {
        let Running { mut child, process, stderr } = running;
        let pid = process.pid;
        let message = tokio::select! {
            status = child.wait() => {
                let tail = stderr.tail().await;
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                tracing::warn!(pid, %status, stderr = %tail, "workerd process exited; starting another");
                let out_of_memory = tail.to_lowercase().contains("out of memory");
                Some((format!("it exited ({status})"), out_of_memory))
            }
            () = process.kill.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                let reason = process.kill_reason.get().cloned().unwrap_or_default();
                tracing::warn!(pid, %reason, "workerd process killed; starting another");
                Some((reason, false))
            }
            () = shared.shutdown.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                None
            }
        };
        let Some((reason, out_of_memory)) = message else {
            shared.remove(index);
            process.mark_gone(Gone {
                message: "the workerd engine was shut down".to_owned(),
                out_of_memory: None,
                in_flight: process.in_flight.load(Ordering::Relaxed),
            });
            return;
        };
        shared.remove(index);
        process.mark_gone(Gone {
            message: format!("the workerd process running it was restarted: {reason}"),
            out_of_memory: out_of_memory.then_some(shared.settings.heap_bytes),
            in_flight: process.in_flight.load(Ordering::Relaxed),
        });
        match restart(&shared).await {
            Some(next) => {
                shared.insert(index, Arc::clone(&next.process));
                running = next;
            }
            None => return,
        }
    }
}

/// Starts a process, retrying with a doubling wait, until one starts or the engine shuts down.
async fn restart(shared: &Shared) -> Option<Running> {
    let mut wait = FIRST_RESTART_WAIT;
    loop {
        let started = tokio::select! {
            started = start(&shared.settings) => started,
            () = shared.shutdown.cancelled() => return None,
        };
        match started {
            Ok(running) => return Some(running),
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = wait.as_millis(), "workerd process could not be started");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shared.shutdown.cancelled() => return None,
                }
                wait = (wait * 2).min(MAX_RESTART_WAIT);
            }
        }
    }
}
