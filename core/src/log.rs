//! The event log: an append-only sequence of [`RecordedEvent`]s, the source of truth of every
//! read model.
//!
//! Two backends implement [`EventLog`]: [`sqlite::SqliteLog`] (embedded, the default) and
//! [`postgres::PostgresLog`] (shared by several Portico instances). Both
//! - number events with a global position that starts at 1 and has no gap, in commit order;
//! - number each stream's events from 1, and reject an append whose expected version does not
//!   match, writing nothing ([`AppendError::Conflict`]);
//! - coalesce concurrent appends into one transaction (group commit), so a busy request path
//!   does not pay one disk flush per event;
//! - publish their head position, so that a [`Subscription`] catches up and then follows live.

pub(crate) mod batch;
pub(crate) mod codec;
pub mod postgres;
pub mod sqlite;
pub mod subscription;
pub(crate) mod tail;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::event::{EventMetadata, NewEvent, RecordedEvent};

pub use batch::RECORDS_PER_WAKE;
pub use subscription::Subscription;

/// A global position in the log. `0` is "before the first event"; the first event is at `1`.
pub type Position = u64;

/// The longest stream id accepted.
pub const MAX_STREAM_ID_LEN: usize = 200;
/// The most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;

/// What the appender believes the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (`None`: no stream) satisfies this.
    pub fn accepts(self, actual: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(n) => actual == Some(n),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "version {n}"),
        }
    }
}

/// The version a stream actually had when an append was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActualVersion(pub Option<u64>);

impl fmt::Display for ActualVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("no stream"),
            Some(n) => write!(f, "version {n}"),
        }
    }
}

/// How durable an acknowledged append is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Survives a crash of the Portico process (the OS or the database server holds the write);
    /// a power loss may lose the last moments of acknowledged writes.
    #[default]
    Process,
    /// Survives power loss: every commit waits for the disk flush.
    Power,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "process" => Ok(Durability::Process),
            "power" => Ok(Durability::Power),
            other => Err(format!("unknown durability `{other}`: expected `process` or `power`")),
        }
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Global position of the first appended event.
    pub first_position: Position,
    /// Global position of the last appended event.
    pub last_position: Position,
    /// The stream's version after the append.
    pub stream_version: u64,
}

/// An error of the log's storage.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("event at position {position} cannot be decoded: {message}")]
    Decode { position: Position, message: String },
    #[error("event log is missing position {expected} (next event found is {found})")]
    Gap { expected: Position, found: Position },
    #[error("event log is closed")]
    Closed,
}

impl LogError {
    pub(crate) fn storage(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        LogError::Storage(Box::new(e))
    }
}

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream `{stream_id}` was expected at {expected} but is at {actual}")]
    Conflict { stream_id: String, expected: ExpectedVersion, actual: ActualVersion },
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The operations every event-log backend offers.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `events` to `stream_id` if the stream is at `expected`, all or nothing.
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
    ) -> Result<Appended, AppendError>;

    /// The events of `stream_id` with versions `from_version..`, at most `limit` of them.
    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// The events at positions after `after`, in order, at most `limit` of them. A page can
    /// end before `limit` while later events exist (recent events may be served from memory,
    /// up to this instance's last commit): read on from its last position until a page comes
    /// back empty, which means there is nothing after `after`.
    async fn read_all(&self, after: Position, limit: usize)
    -> Result<Vec<RecordedEvent>, LogError>;

    /// The last committed position, read from storage.
    async fn head_position(&self) -> Result<Position, LogError>;

    /// A receiver of the last committed position this instance knows of. It moves when this
    /// instance commits, and (PostgreSQL) when another instance's commit is announced.
    fn watch_head(&self) -> watch::Receiver<Position>;

    /// A receiver of the head for followers that fold configuration only: it moves with
    /// [`EventLog::watch_head`] when a commit holds an event that is not a call record (see
    /// [`crate::Event::is_call_record`]), and at least once every [`RECORDS_PER_WAKE`]
    /// positions otherwise. At one commit per audited call, a follower woken by every commit
    /// cost the call a thread wake-up and a context switch for an event it skips. Such a
    /// follower still reads every event; it reads call records in bulk, along with the next
    /// change, or at its poll (see [`Subscription::waking_on_changes`]).
    fn watch_changes(&self) -> watch::Receiver<Position> {
        self.watch_head()
    }
}

/// Checks the bounds of an append before it reaches a backend.
pub(crate) fn validate_append(stream_id: &str, events: &[NewEvent]) -> Result<(), AppendError> {
    if stream_id.is_empty() {
        return Err(AppendError::Invalid("stream id must not be empty".into()));
    }
    if stream_id.len() > MAX_STREAM_ID_LEN {
        return Err(AppendError::Invalid(format!(
            "stream id is longer than {MAX_STREAM_ID_LEN} bytes"
        )));
    }
    if events.is_empty() {
        return Err(AppendError::Invalid("no events to append".into()));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(AppendError::Invalid(format!(
            "{} events in one append; at most {MAX_EVENTS_PER_APPEND} are allowed",
            events.len()
        )));
    }
    Ok(())
}
