//! Portico's side of the host worker's protocol (see `host.js`): one execution, driven from its
//! `POST /run` to its `done` line, on the engine's runtime.
//!
//! The driver reads the streamed NDJSON answer, hands each `call` line to the caller (whose task
//! runs the bridge) and posts the answers back with `POST /answer`. It keeps the execution's
//! hard deadline (the limit plus [`GRACE`]): a `done` line that has not come by then means the
//! process's one JavaScript thread is stuck, and the process is killed. It keeps watching after
//! the caller is gone (cancelled): it asks the host to stop the execution, and kills the process
//! if the host does not answer within [`GRACE`], so no frozen process is ever left unattended.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::process::Process;
use super::{MAX_LINE_BYTES, Slot};
use crate::sandbox::{ExecutionError, settled};

/// How long past its limit an execution's `done` line may come before its process is presumed
/// frozen; also how long a cancelled execution's host has to confirm it stopped.
pub(super) const GRACE: Duration = Duration::from_secs(1);
/// The header carrying the process's token.
const TOKEN_HEADER: &str = "x-portico-token";

/// What the driver tells the caller.
#[derive(Debug)]
pub(super) enum Event {
    /// The code called `codemode.<name>(input)`; answer with the call's id.
    Call { id: u64, name: String, input: String },
    /// The execution ended.
    Done { outcome: Result<Value, ExecutionError>, logs: Vec<String> },
}

/// One execution to drive.
#[derive(Debug)]
pub(super) struct Drive {
    pub(super) client: reqwest::Client,
    pub(super) slot: Slot,
    pub(super) exec_id: u64,
    pub(super) code: String,
    /// The limit the host applies, in milliseconds.
    pub(super) timeout_ms: u64,
    /// The limit plus [`GRACE`]: past it the process is killed.
    pub(super) hard_deadline: Instant,
    pub(super) events: mpsc::UnboundedSender<Event>,
    /// The answers of the caller's bridge: each call's id and JSON text.
    pub(super) answers: mpsc::UnboundedReceiver<(u64, String)>,
    /// Cancelled when the caller is gone.
    pub(super) stop: CancellationToken,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunBody<'a> {
    exec_id: u64,
    code: &'a str,
    timeout_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnswerBody {
    exec_id: u64,
    id: u64,
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelBody {
    exec_id: u64,
}

/// One line of the host's answer.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Call { id: u64, name: String, input: String },
    Done(Done),
}

#[derive(Deserialize)]
struct Done {
    settled: Option<String>,
    #[serde(default)]
    timeout: bool,
    #[serde(default)]
    cancelled: bool,
    #[serde(default)]
    logs: Vec<String>,
}

/// How a drive ended, before it is told to the caller.
enum End {
    Done(Done),
    /// The hard deadline passed without a `done` line.
    PastDeadline,
    /// The process died.
    Gone,
    /// The host answered `/run` with an error: nothing runs.
    Refused(String),
    /// The answer stream broke or made no sense.
    Broken(String),
}

impl Drive {
    pub(super) async fn run(mut self) {
        let process = Arc::clone(self.slot.process());
        let end = self.exchange(&process).await;
        let (outcome, logs) = match end {
            End::Done(done) => {
                let outcome = if done.timeout {
                    Err(ExecutionError::Timeout)
                } else if done.cancelled {
                    Err(ExecutionError::Cancelled)
                } else {
                    match &done.settled {
                        Some(text) => settled(text),
                        None => Err(ExecutionError::Engine(
                            "the workerd host answered nothing".to_owned(),
                        )),
                    }
                };
                (outcome, done.logs)
            }
            End::PastDeadline => {
                tracing::warn!(
                    pid = process.pid,
                    exec_id = self.exec_id,
                    "execution past its deadline: its workerd process is presumed frozen"
                );
                process.kill("another execution on it did not yield before its deadline");
                (Err(ExecutionError::Timeout), Vec::new())
            }
            End::Gone => (Err(gone(&process)), Vec::new()),
            End::Refused(message) => (Err(ExecutionError::Engine(message)), Vec::new()),
            End::Broken(message) => {
                // Mostly the process died; otherwise its state is unknown, and a process that
                // may be running code nobody watches is not kept.
                let outcome = match tokio::time::timeout(GRACE, process.gone()).await {
                    Ok(()) => gone(&process),
                    Err(_) => {
                        tracing::warn!(pid = process.pid, %message, "workerd host broke an execution's answer");
                        process.kill("another execution's answer broke");
                        ExecutionError::Engine(format!(
                            "the workerd host broke the execution's answer: {message}"
                        ))
                    }
                };
                (Err(outcome), Vec::new())
            }
        };
        // The slot is free before the caller hears of the end, so its next execution sees it.
        let Drive { slot, events, .. } = self;
        drop(slot);
        let _ = events.send(Event::Done { outcome, logs });
    }

    async fn exchange(&mut self, process: &Process) -> End {
        let mut deadline = self.hard_deadline;
        let mut cancelling = false;
        let body = RunBody { exec_id: self.exec_id, code: &self.code, timeout_ms: self.timeout_ms };
        let request = self
            .client
            .post(format!("{}/run", process.base))
            .header(TOKEN_HEADER, process.token.expose())
            .json(&body)
            .send();
        tokio::pin!(request);
        let response = loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => return End::PastDeadline,
                () = process.gone() => return End::Gone,
                () = self.stop.cancelled(), if !cancelling => {
                    cancelling = true;
                    deadline = deadline.min(Instant::now() + GRACE);
                }
                response = &mut request => break response,
            }
        };
        let response = match response {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                return End::Refused(format!(
                    "the workerd host refused the execution ({})",
                    response.status()
                ));
            }
            Err(e) => return End::Broken(e.to_string()),
        };
        if cancelling {
            self.cancel(process);
        }
        let mut lines = Lines::new(response.bytes_stream());
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => return End::PastDeadline,
                () = process.gone() => return End::Gone,
                () = self.stop.cancelled(), if !cancelling => {
                    cancelling = true;
                    deadline = deadline.min(Instant::now() + GRACE);
                    self.cancel(process);
                }
                Some((id, text)) = self.answers.recv() => self.answer(process, id, text),
                line = lines.next() => match line {
                    Ok(Some(line)) => match serde_json::from_slice::<Line>(&line) {
                        Ok(Line::Call { id, name, input }) => {
                            let _ = self.events.send(Event::Call { id, name, input });
                        }
                        Ok(Line::Done(done)) => return End::Done(done),
                        Err(e) => return End::Broken(format!("an unreadable line: {e}")),
                    },
                    Ok(None) => return End::Broken("the answer ended before the execution".to_owned()),
                    Err(message) => return End::Broken(message),
                },
            }
        }
    }

    /// Posts a call's answer; an answer the host no longer waits for is dropped.
    fn answer(&self, process: &Process, id: u64, text: String) {
        let post = self
            .client
            .post(format!("{}/answer", process.base))
            .header(TOKEN_HEADER, process.token.expose())
            .json(&AnswerBody { exec_id: self.exec_id, id, text })
            .send();
        tokio::spawn(async move {
            if let Err(error) = post.await {
                tracing::debug!(%error, "a call's answer did not reach workerd");
            }
        });
    }

    /// Asks the host to stop the execution; its `done` line confirms it.
    fn cancel(&self, process: &Process) {
        let post = self
            .client
            .post(format!("{}/cancel", process.base))
            .header(TOKEN_HEADER, process.token.expose())
            .json(&CancelBody { exec_id: self.exec_id })
            .send();
        tokio::spawn(async move {
            if let Err(error) = post.await {
                tracing::debug!(%error, "a cancellation did not reach workerd");
            }
        });
    }
}

/// What executions on a dead process are told: out of memory when it aborted on an exhausted
/// heap with this execution alone on it, otherwise that it was restarted and why.
fn gone(process: &Process) -> ExecutionError {
    match process.gone_reason() {
        Some(gone) => match gone.out_of_memory {
            Some(limit_bytes) if gone.in_flight <= 1 => ExecutionError::OutOfMemory { limit_bytes },
            Some(limit_bytes) => ExecutionError::Engine(format!(
                "the workerd process running it was restarted: an execution on it ran out of memory (limit {limit_bytes} bytes per isolate)"
            )),
            None => ExecutionError::Engine(gone.message.clone()),
        },
        None => ExecutionError::Engine("the workerd process running it is gone".to_owned()),
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`]. Cancel-safe: what was read
/// stays in the buffer.
struct Lines<S> {
    stream: S,
    buffer: Vec<u8>,
    /// How much of the buffer is known to hold no newline.
    scanned: usize,
}

impl<S, B, E> Lines<S>
where
    S: futures::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    fn new(stream: S) -> Self {
        Lines { stream, buffer: Vec::new(), scanned: 0 }
    }

    async fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(at) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                self.scanned = 0;
                return Ok(Some(line));
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() > MAX_LINE_BYTES {
                return Err(format!("a line longer than {MAX_LINE_BYTES} bytes"));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(chunk.as_ref()),
                Some(Err(e)) => return Err(e.to_string()),
                None if self.buffer.is_empty() => return Ok(None),
                None => return Err("the answer ended inside a line".to_owned()),
            }
        }
    }
}
