//! Group commit: the part shared by every backend.
//!
//! Appenders send an [`AppendRequest`] to the backend's single writer, which takes every request
//! waiting at that moment (up to a bound), decides each one against the stream versions it has
//! read inside its transaction ([`plan`]), inserts the accepted events, commits once, and only
//! then answers every appender. A request that conflicts is answered with its error and adds
//! nothing; the others in the batch are unaffected.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::codec::{EncodedEvent, EncodedMetadata};
use super::tail::SizedEvent;
use super::{ActualVersion, AppendError, Appended, ExpectedVersion, LogError, Position};
use crate::event::{EventMetadata, NewEvent};

/// Checks, encodes and queues one append for a backend's writer, then waits for its answer
/// (which comes after the commit). Encoding happens here, on the appender's task, so the single
/// writer only inserts. `commit_here` may take the request to commit on the appender's own
/// thread instead (it is answered like a queued one, and `commit_here` returns `None`), or hand
/// it back to be queued.
pub(crate) async fn submit<Here: Future<Output = Option<AppendRequest>>>(
    writer: &mpsc::Sender<AppendRequest>,
    stream_id: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    metadata: &EventMetadata,
    commit_here: impl FnOnce(AppendRequest) -> Here,
) -> Result<Appended, AppendError> {
    let started = Instant::now();
    let outcome = queue(writer, stream_id, expected, events, metadata, commit_here).await;
    crate::metrics::append_answered(&outcome, started.elapsed());
    outcome
}

async fn queue<Here: Future<Output = Option<AppendRequest>>>(
    writer: &mpsc::Sender<AppendRequest>,
    stream_id: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    metadata: &EventMetadata,
    commit_here: impl FnOnce(AppendRequest) -> Here,
) -> Result<Appended, AppendError> {
    super::validate_append(stream_id, &events)?;
    let (reply, answer) = oneshot::channel();
    let request = AppendRequest {
        stream_id: stream_id.to_owned(),
        expected,
        events: super::codec::encode_events(events)?,
        metadata: super::codec::encode_metadata(metadata)?,
        reply,
    };
    if let Some(request) = commit_here(request).await {
        writer.send(request).await.map_err(|_| LogError::Closed)?;
    }
    answer.await.map_err(|_| LogError::Closed)?
}

/// The most requests one transaction takes.
pub(crate) const MAX_BATCH_REQUESTS: usize = 2048;
/// The most events one transaction takes (a single larger append still goes alone).
pub(crate) const MAX_BATCH_EVENTS: usize = 16_384;

/// One appender's request to the writer.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<EncodedEvent>,
    pub metadata: EncodedMetadata,
    pub reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// One row to insert, as [`plan`] placed it.
#[derive(Debug)]
pub(crate) struct PlannedRow<'a> {
    pub position: Position,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event: &'a EncodedEvent,
    pub metadata: &'a EncodedMetadata,
}

/// The outcome of planning a batch: the rows to insert, the log's new head, and one answer per
/// request (sent only after the commit).
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub rows: Vec<PlannedRow<'a>>,
    pub head: Position,
    pub outcomes: Vec<Result<Appended, AppendError>>,
}

/// Decides every request of a batch in order. `head` is the log's last position and `versions`
/// the last version of every stream the batch touches that exists (read inside the transaction
/// that will insert the rows).
pub(crate) fn plan<'a>(
    requests: &'a [AppendRequest],
    head: Position,
    mut versions: HashMap<&'a str, u64>,
) -> Plan<'a> {
    let mut rows = Vec::with_capacity(requests.iter().map(|r| r.events.len()).sum());
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut position = head;
    for request in requests {
        let actual = versions.get(request.stream_id.as_str()).copied();
        if !request.expected.accepts(actual) {
            outcomes.push(Err(AppendError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual: ActualVersion(actual),
            }));
            continue;
        }
        let first_position = position + 1;
        let mut version = actual.unwrap_or(0);
        for event in &request.events {
            position += 1;
            version += 1;
            rows.push(PlannedRow {
                position,
                stream_id: &request.stream_id,
                stream_version: version,
                event,
                metadata: &request.metadata,
            });
        }
        versions.insert(&request.stream_id, version);
        outcomes.push(Ok(Appended {
            first_position,
            last_position: position,
            stream_version: version,
        }));
    }
    Plan { rows, head: position, outcomes }
}

/// Takes the next batch from the queue: everything already waiting behind `first`, within the
/// batch bounds.
pub(crate) fn fill_batch(
    first: AppendRequest,
    mut try_next: impl FnMut() -> Option<AppendRequest>,
) -> (Vec<AppendRequest>, Option<AppendRequest>) {
    let mut events = first.events.len();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH_REQUESTS {
        let Some(next) = try_next() else { break };
        if events + next.events.len() > MAX_BATCH_EVENTS {
            // Too big for this transaction: it opens the next one.
            return (batch, Some(next));
        }
        events += next.events.len();
        batch.push(next);
    }
    (batch, None)
}

/// How many appends and events a batch holds.
pub(crate) fn sizes(requests: &[AppendRequest]) -> (usize, usize) {
    (requests.len(), requests.iter().map(|r| r.events.len()).sum())
}

/// The distinct streams of a batch.
pub(crate) fn streams_of(requests: &[AppendRequest]) -> Vec<&str> {
    let mut streams: Vec<&str> = requests.iter().map(|r| r.stream_id.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    streams
}

/// Answers every request of a batch with its outcome.
pub(crate) fn reply_all(
    requests: Vec<AppendRequest>,
    outcomes: Vec<Result<Appended, AppendError>>,
) {
    for (request, outcome) in requests.into_iter().zip(outcomes) {
        // The appender may have gone away (its task was cancelled); the write stands regardless.
        let _ = request.reply.send(outcome);
    }
}

/// How many positions of call records alone may pass before the changes head moves anyway
/// (see [`super::EventLog::watch_changes`]): its followers then read that many events at a
/// time, well within what the log's tail keeps in memory ([`super::tail::TAIL_EVENTS`]).
pub const RECORDS_PER_WAKE: Position = 256;

/// The positions a backend publishes to its followers: the head, which moves with every
/// commit, and the changes head, which skips call records (see
/// [`super::EventLog::watch_changes`]).
#[derive(Debug)]
pub(crate) struct Heads {
    head: watch::Sender<Position>,
    changes: watch::Sender<Position>,
}

impl Heads {
    pub(crate) fn new(head: Position) -> Self {
        Heads { head: watch::channel(head).0, changes: watch::channel(head).0 }
    }

    /// The last committed position this instance knows of.
    pub(crate) fn head(&self) -> Position {
        *self.head.borrow()
    }

    pub(crate) fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }

    pub(crate) fn watch_changes(&self) -> watch::Receiver<Position> {
        self.changes.subscribe()
    }

    /// Answers the requests of a batch committed up to `head`: the published heads move first
    /// (an appender reads them back at once), then every appender gets its outcome, and only
    /// then are the log's followers woken (appenders wait on a request's path, followers do
    /// not). The committed events must be in the tail already: the followers woken read them
    /// there.
    pub(crate) fn answer_committed(
        &self,
        head: Position,
        changed: bool,
        requests: Vec<AppendRequest>,
        outcomes: Vec<Result<Appended, AppendError>>,
    ) {
        let moved = self.move_heads(head, changed);
        reply_all(requests, outcomes);
        self.wake(moved);
    }

    /// Moves the heads forward to `head`, a commit announced by another instance (or this
    /// instance's own, announced back, which moves nothing), and wakes the followers if they
    /// moved. `changed`: whether the batch held a change ([`holds_change`]).
    pub(crate) fn publish(&self, head: Position, changed: bool) {
        let moved = self.move_heads(head, changed);
        self.wake(moved);
    }

    /// Moves the head to `head`, and the changes head with it if `changed` or if
    /// [`RECORDS_PER_WAKE`] positions have passed since it last moved. Returns which moved.
    fn move_heads(&self, head: Position, changed: bool) -> (bool, bool) {
        if !move_head(&self.head, head) {
            return (false, false);
        }
        let due = changed || head >= *self.changes.borrow() + RECORDS_PER_WAKE;
        (true, due && move_head(&self.changes, head))
    }

    fn wake(&self, (head, changes): (bool, bool)) {
        match (head, changes) {
            (true, true) => wake_followers(vec![self.head.clone(), self.changes.clone()]),
            (true, false) => wake_followers(vec![self.head.clone()]),
            _ => {}
        }
    }
}

/// Whether a batch that writes `rows` holds an event other than a call record: a change, which
/// moves the changes head at once (see [`super::EventLog::watch_changes`]).
pub(crate) fn holds_change(rows: &[PlannedRow<'_>]) -> bool {
    rows.iter().any(|row| !row.event.original.is_call_record())
}

/// A committed batch, as either backend reports it: the log's new head, whether the batch held
/// a change ([`holds_change`]), one answer per request, and the events as a reader gets them
/// (for the tail).
#[derive(Debug)]
pub(crate) struct Committed {
    pub head: Position,
    pub changed: bool,
    pub outcomes: Vec<Result<Appended, AppendError>>,
    pub events: Vec<SizedEvent>,
}

/// Moves a published head forward to `head` without waking anyone yet (a reader of the head
/// sees the new value at once); `true` if it moved. [`wake_followers`] wakes them.
fn move_head(published: &watch::Sender<Position>, head: Position) -> bool {
    let mut moved = false;
    published.send_if_modified(|h| {
        moved = head > *h;
        *h = (*h).max(head);
        // Not "modified": the receivers are woken by `wake_followers`.
        false
    });
    moved
}

/// Wakes every follower waiting for one of the `published` heads to move. On a runtime (an
/// appender committing on its own task) the wake is a task of its own, which runs once the
/// appender's task yields: the appender's answer goes out first. Followers run on another
/// thread, and waking one there can hand it the CPU before the appender has answered. A
/// runtime that is shutting down drops the task unrun; the wake then happens as it is
/// dropped, so none is lost.
fn wake_followers(published: Vec<watch::Sender<Position>>) {
    /// Wakes the followers when dropped: run or not, the task ends by dropping it.
    struct Wake(Vec<watch::Sender<Position>>);
    impl Drop for Wake {
        fn drop(&mut self) {
            for head in &self.0 {
                head.send_modify(|_| {});
            }
        }
    }
    let wake = Wake(published);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move { drop(wake) });
    }
    // Without a runtime (the log's writer thread), `wake` is dropped here: the wake is now.
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_wake_left_to_a_runtime_that_ends_unrun_still_happens() {
        let (published, mut follower) = watch::channel(Position::default());
        follower.mark_unchanged();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        {
            let _inside = runtime.enter();
            wake_followers(vec![published.clone()]);
        }
        assert!(!follower.has_changed().unwrap(), "the wake waits for the appender to yield");
        // The runtime never ran the wake's task: shutting down drops it.
        drop(runtime);
        assert!(follower.has_changed().unwrap(), "the follower was never woken");
    }

    #[test]
    fn without_a_runtime_the_followers_are_woken_at_once() {
        let (published, mut follower) = watch::channel(Position::default());
        follower.mark_unchanged();
        wake_followers(vec![published.clone()]);
        assert!(follower.has_changed().unwrap());
    }
}
