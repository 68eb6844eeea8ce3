//! The call log: every call through a portal (`PortalRequestHandled`), indexed by portal and
//! time, for the portal logs API and its analytics.
//!
//! Unlike the other read models it does not live in memory: calls are many (a busy portal
//! appends millions), so they are kept in a SQLite database of this instance's own
//! (`calls.db` in the data directory), fed from the log by a subscription. Like every read
//! model it belongs to the instance and can be rebuilt from the log at any time: deleting the
//! file is safe. Each batch of rows is written in one transaction with the position it
//! reaches and the id of the event there, so a crash replays nothing twice and skips nothing,
//! and a database that does not belong to the log (a new log, a restored backup) is recognised
//! by that id and rebuilt.
//!
//! Rows are read newest first (by log position, which is commit order) with keyset paging, so
//! a page costs the same at the millionth row as at the first.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use portico_core::domain::call::{AuditedMethod, PortalRequestHandled};
use portico_core::domain::ids::PortalId;
use portico_core::log::Subscription;
use portico_core::{Event, EventLog, LogError, Position, RecordedEvent};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The most rows one query answers.
pub const MAX_ROWS: usize = 1000;
/// The most buckets one analytics query covers.
pub const MAX_BUCKETS: i64 = 1440;
/// How often rows past the retention are removed.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// How long the follower waits after a call before writing, so that one transaction holds the
/// calls of that moment rather than one each (the logs API lags the log by about this much).
const COALESCE: Duration = Duration::from_millis(50);
/// Events read from the log at once while following it.
const BATCH: usize = 2048;
/// The wait before following the log again after a failure.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What can go wrong with the call log.
#[derive(Debug, thiserror::Error)]
pub enum CallLogError {
    #[error("call log database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("call log: a stored call cannot be read: {0}")]
    Decode(#[from] serde_json::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the call log stopped following the log")]
    Stopped,
    #[error("the call log has not reached position {wanted} after {waited:?} (it is at {at})")]
    Timeout { wanted: Position, at: Position, waited: Duration },
}

/// One call as stored: the event and where it is in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub position: Position,
    pub event_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub call: PortalRequestHandled,
}

/// Which calls of one portal to answer, newest first. Every filter is optional but the portal.
#[derive(Debug, Clone)]
pub struct CallQuery {
    pub portal_id: PortalId,
    /// Calls recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Calls recorded before this time.
    pub until: Option<DateTime<Utc>>,
    pub server_id: Option<String>,
    /// Compared without regard to case.
    pub user_email: Option<String>,
    pub method: Option<AuditedMethod>,
    pub success: Option<bool>,
    /// The tool name the client called (`ToolCallName`).
    pub tool: Option<String>,
    /// Only calls older than this position (the cursor of the previous page).
    pub before: Option<Position>,
    /// At most this many rows ([`MAX_ROWS`] at most).
    pub limit: usize,
}

impl CallQuery {
    /// Every call of `portal_id`, newest first, [`MAX_ROWS`] at a time.
    pub fn portal(portal_id: PortalId) -> Self {
        CallQuery {
            portal_id,
            since: None,
            until: None,
            server_id: None,
            user_email: None,
            method: None,
            success: None,
            tool: None,
            before: None,
            limit: MAX_ROWS,
        }
    }
}

/// The width of an analytics bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketWidth {
    Minute,
    Hour,
    Day,
}

impl BucketWidth {
    /// The width as a duration.
    pub fn delta(self) -> TimeDelta {
        match self {
            BucketWidth::Minute => TimeDelta::minutes(1),
            BucketWidth::Hour => TimeDelta::hours(1),
            BucketWidth::Day => TimeDelta::days(1),
        }
    }

    fn micros(self) -> i64 {
        self.delta().num_microseconds().unwrap_or(i64::MAX)
    }
}

/// The figures of one server in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBucket {
    /// The server the calls resolved to (`None`: calls whose name matched no server).
    pub server_id: Option<String>,
    /// The start of the bucket.
    pub start: DateTime<Utc>,
    pub requests: u64,
    /// Calls that did not succeed (`Success` false).
    pub errors: u64,
    /// The median of the portal's duration of the calls, in milliseconds (nearest rank).
    pub p50_ms: u64,
    /// The 95th percentile, likewise.
    pub p95_ms: u64,
}

/// The call log of this instance.
#[derive(Debug)]
pub struct CallLog {
    conn: Mutex<Connection>,
    position: watch::Sender<Position>,
    /// How long rows are kept (`None`: for ever).
    retention: Option<TimeDelta>,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS calls (
        position INTEGER PRIMARY KEY,
        portal_id TEXT NOT NULL,
        recorded_us INTEGER NOT NULL,
        server_id TEXT,
        method TEXT NOT NULL,
        tool TEXT,
        user_email TEXT,
        success INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        call TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS calls_by_portal ON calls (portal_id, position);
    CREATE INDEX IF NOT EXISTS calls_by_portal_time ON calls (portal_id, recorded_us);
    CREATE INDEX IF NOT EXISTS calls_by_time ON calls (recorded_us);
    CREATE TABLE IF NOT EXISTS followed (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        position INTEGER NOT NULL,
        event_id TEXT
    );
";

impl CallLog {
    /// Its name in metrics (`portico_projection_lag_events{projection="call_log"}`).
    pub const NAME: &'static str = "call_log";

    /// Opens (or creates) the call log in the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, CallLogError> {
        Self::with(Connection::open(path)?)
    }

    /// A call log in memory, for commands that do not serve.
    pub fn in_memory() -> Result<Self, CallLogError> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(conn: Connection) -> Result<Self, CallLogError> {
        conn.execute_batch(SCHEMA)?;
        let position: Position = conn
            .query_row("SELECT position FROM followed WHERE id = 1", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let (position, _) = watch::channel(position);
        Ok(CallLog { conn: Mutex::new(conn), position, retention: None })
    }

    /// Keeps rows for `retention` only (`None`: for ever): older ones are removed at start and
    /// every hour while following. The event log keeps every call regardless.
    pub fn with_retention(mut self, retention: Option<TimeDelta>) -> Self {
        self.retention = retention;
        self
    }

    /// Removes the calls recorded before `before`; how many.
    pub fn prune(&self, before: DateTime<Utc>) -> Result<usize, CallLogError> {
        let conn = self.conn();
        Ok(conn.execute("DELETE FROM calls WHERE recorded_us < ?1", [before.timestamp_micros()])?)
    }

    /// Prunes by the retention, if there is one, off the async threads.
    async fn prune_expired(self: &Arc<Self>) -> Result<(), CallLogError> {
        let Some(retention) = self.retention else { return Ok(()) };
        let calls = Arc::clone(self);
        let removed = tokio::task::spawn_blocking(move || calls.prune(Utc::now() - retention))
            .await
            .map_err(|_| CallLogError::Stopped)??;
        if removed > 0 {
            tracing::info!(removed, "calls past the call log's retention removed");
        }
        Ok(())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic under the lock leaves SQLite consistent (transactions roll back on drop).
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The position of the last event folded.
    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// Follows `log` from where this call log stopped, in a task of its own, until the returned
    /// handle is aborted. A database that belongs to another log is emptied first.
    pub fn follow(self: &Arc<Self>, log: Arc<dyn EventLog>) -> JoinHandle<()> {
        let calls = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(error) = calls.follow_once(Arc::clone(&log)).await {
                    tracing::warn!(%error, "the call log stopped following the log; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        })
    }

    async fn follow_once(self: &Arc<Self>, log: Arc<dyn EventLog>) -> Result<(), CallLogError> {
        self.forget_if_foreign(log.as_ref()).await?;
        self.prune_expired().await?;
        let mut subscription = Subscription::new(log, self.position()).with_batch(BATCH);
        let mut next_prune = tokio::time::Instant::now() + PRUNE_INTERVAL;
        loop {
            // A subscription's `next` loses nothing when it is dropped before it is ready.
            let first = tokio::select! {
                event = subscription.next() => event?,
                () = tokio::time::sleep_until(next_prune) => {
                    self.prune_expired().await?;
                    next_prune = tokio::time::Instant::now() + PRUNE_INTERVAL;
                    continue;
                }
            };
            // Whatever else is there after a moment goes in the same transaction.
            tokio::time::sleep(COALESCE).await;
            let mut events = vec![first];
            events.extend(subscription.drain_buffered());
            events.extend(subscription.next_batch().await?);
            let calls = Arc::clone(self);
            tokio::task::spawn_blocking(move || calls.apply(&events))
                .await
                .map_err(|_| CallLogError::Stopped)??;
        }
    }

    /// Empties the call log if the event it stopped at is not in `log` with the same id.
    async fn forget_if_foreign(&self, log: &dyn EventLog) -> Result<(), CallLogError> {
        let (position, stored_id) = {
            let conn = self.conn();
            conn.query_row("SELECT position, event_id FROM followed WHERE id = 1", [], |r| {
                Ok((r.get::<_, Position>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .optional()?
            .unwrap_or((0, None))
        };
        if position == 0 {
            return Ok(());
        }
        let there = log.read_all(position - 1, 1).await?;
        let same = there.first().is_some_and(|e| {
            e.position == position && stored_id.as_deref() == Some(&e.event_id.to_string())
        });
        if !same {
            tracing::warn!(
                position,
                "the call log does not belong to this event log; rebuilding it from the log"
            );
            let conn = self.conn();
            conn.execute_batch("DELETE FROM calls; DELETE FROM followed;")?;
            self.position.send_replace(0);
        }
        Ok(())
    }

    /// Folds `events` (in log order) in one transaction with the position they reach.
    pub fn apply(&self, events: &[RecordedEvent]) -> Result<(), CallLogError> {
        let Some(last) = events.last() else { return Ok(()) };
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO calls (position, portal_id, recorded_us, server_id, method,
                 tool, user_email, success, duration_ms, event_id, call)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for event in events {
                let Event::PortalRequestHandled(call) = &event.event else { continue };
                insert.execute(params![
                    event.position,
                    call.portal_id.as_str(),
                    event.recorded_at.timestamp_micros(),
                    call.server_id.as_ref().map(|s| s.as_str()),
                    call.method.as_str(),
                    call.tool_call_name,
                    call.user_email.as_ref().map(|e| e.to_lowercase()),
                    call.success(),
                    i64::try_from(call.duration_ms).unwrap_or(i64::MAX),
                    event.event_id.to_string(),
                    serde_json::to_string(call)?,
                ])?;
            }
        }
        tx.execute(
            "INSERT INTO followed (id, position, event_id) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET position = excluded.position, event_id = excluded.event_id",
            params![last.position, last.event_id.to_string()],
        )?;
        tx.commit()?;
        self.position.send_replace(last.position);
        Ok(())
    }

    /// Waits until the call log has folded `position`, for at most `timeout`.
    pub async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<(), CallLogError> {
        let mut rx = self.position.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(CallLogError::Stopped),
            Err(_) => Err(CallLogError::Timeout {
                wanted: position,
                at: self.position(),
                waited: timeout,
            }),
        }
    }

    /// The calls `query` asks for, newest first.
    pub fn query(&self, query: &CallQuery) -> Result<Vec<CallRecord>, CallLogError> {
        let mut sql = String::from(
            "SELECT position, event_id, recorded_us, call FROM calls WHERE portal_id = ?",
        );
        let mut args = vec![SqlValue::Text(query.portal_id.as_str().to_owned())];
        let mut filter = |clause: &str, value: SqlValue| {
            sql.push_str(" AND ");
            sql.push_str(clause);
            args.push(value);
        };
        if let Some(since) = query.since {
            filter("recorded_us >= ?", SqlValue::Integer(since.timestamp_micros()));
        }
        if let Some(until) = query.until {
            filter("recorded_us < ?", SqlValue::Integer(until.timestamp_micros()));
        }
        if let Some(server) = &query.server_id {
            filter("server_id = ?", SqlValue::Text(server.clone()));
        }
        if let Some(email) = &query.user_email {
            filter("user_email = ?", SqlValue::Text(email.to_lowercase()));
        }
        if let Some(method) = query.method {
            filter("method = ?", SqlValue::Text(method.as_str().to_owned()));
        }
        if let Some(success) = query.success {
            filter("success = ?", SqlValue::Integer(success.into()));
        }
        if let Some(tool) = &query.tool {
            filter("tool = ?", SqlValue::Text(tool.clone()));
        }
        if let Some(before) = query.before {
            filter("position < ?", SqlValue::Integer(i64::try_from(before).unwrap_or(i64::MAX)));
        }
        sql.push_str(" ORDER BY position DESC LIMIT ?");
        args.push(SqlValue::Integer(query.limit.min(MAX_ROWS) as i64));

        let conn = self.conn();
        let mut statement = conn.prepare_cached(&sql)?;
        let rows = statement.query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, Position>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (position, event_id, recorded_us, call) = row?;
            records.push(CallRecord {
                position,
                event_id: event_id.parse().unwrap_or_default(),
                recorded_at: DateTime::from_timestamp_micros(recorded_us).unwrap_or_default(),
                call: serde_json::from_str(&call)?,
            });
        }
        Ok(records)
    }

    /// Request counts, error counts and p50/p95 duration per server per bucket of `width`,
    /// over `[since, until)` of portal `portal_id`, oldest bucket first. Buckets start at
    /// multiples of their width since the Unix epoch (UTC); buckets without calls are left out.
    pub fn analytics(
        &self,
        portal_id: &PortalId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        width: BucketWidth,
    ) -> Result<Vec<ServerBucket>, CallLogError> {
        let bucket_us = width.micros();
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT server_id, recorded_us / ?1 AS bucket, success, duration_ms FROM calls
             WHERE portal_id = ?2 AND recorded_us >= ?3 AND recorded_us < ?4
             ORDER BY bucket, server_id, duration_ms",
        )?;
        let rows = statement.query_map(
            params![
                bucket_us,
                portal_id.as_str(),
                since.timestamp_micros(),
                until.timestamp_micros()
            ],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )?;
        let mut buckets = Vec::new();
        let mut current: Option<(Option<String>, i64, u64, Vec<u64>)> = None;
        let close =
            |(server_id, bucket, errors, durations): (Option<String>, i64, u64, Vec<u64>)| {
                ServerBucket {
                    server_id,
                    start: DateTime::from_timestamp_micros(bucket * bucket_us).unwrap_or_default(),
                    requests: durations.len() as u64,
                    errors,
                    p50_ms: nearest_rank(&durations, 50),
                    p95_ms: nearest_rank(&durations, 95),
                }
            };
        for row in rows {
            let (server_id, bucket, success, duration) = row?;
            let same = current.as_ref().is_some_and(|c| c.0 == server_id && c.1 == bucket);
            if !same {
                buckets.extend(current.take().map(close));
            }
            let entry = current.get_or_insert_with(|| (server_id, bucket, 0, Vec::new()));
            entry.2 += u64::from(!success);
            entry.3.push(u64::try_from(duration).unwrap_or(0));
        }
        if let Some(done) = current {
            buckets.push(close(done));
        }
        Ok(buckets)
    }
}

/// The `p`th percentile of sorted `values` by nearest rank (0 for none).
fn nearest_rank(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 50), 50);
        assert_eq!(nearest_rank(&hundred, 95), 95);
        assert_eq!(nearest_rank(&[7], 50), 7);
        assert_eq!(nearest_rank(&[1, 2], 50), 1);
        assert_eq!(nearest_rank(&[1, 2], 95), 2);
        assert_eq!(nearest_rank(&[], 50), 0);
    }
}
