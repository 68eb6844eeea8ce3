//! The embedded SQLite backend: one database file in WAL mode under the data directory.
//!
//! One write connection commits appends in batches (group commit, see [`super::batch`]) on a
//! writer thread; an append that finds the log idle is committed on its own thread instead
//! (see [`Shared::commit_here`]). Reads go through a small pool of read-only connections on
//! blocking threads, so neither replay nor a slow disk blocks the async runtime. Positions are
//! assigned inside the write transaction as `max(position) + 1`, so they are gap-free and in
//! commit order even if another process (the `portico` CLI) appends to the same file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::batch::{self, AppendRequest, Committed};
use super::codec::{self, ActorCache, StoredEventRef};
use super::tail::{self, Tail};
use super::{AppendError, Appended, Durability, EventLog, ExpectedVersion, LogError, Position};
use crate::event::{EventMetadata, NewEvent, RecordedEvent};
use crate::metrics::CommitMetrics;

/// How many idle read connections are kept.
const MAX_IDLE_READERS: usize = 8;
/// How long a connection waits for another process's lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How many requests may wait for the writer before appenders are slowed down.
const QUEUE_CAPACITY: usize = 65_536;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    correlation_id BLOB    NOT NULL,
    payload        TEXT    NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
";

const SELECT_COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, \
     schema_version, recorded_at, actor, correlation_id, payload";

/// Settings of the SQLite backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteOptions {
    pub durability: Durability,
}

/// The SQLite event log.
#[derive(Debug)]
pub struct SqliteLog {
    shared: Arc<Shared>,
    writer: mpsc::Sender<AppendRequest>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The only write connection: the writer thread's, or an idle log's appender's.
    writer: Mutex<Connection>,
    /// Whether an appender may commit on its own thread (`process` durability only).
    appenders_commit: bool,
    /// Appends gathered for the next commit on an appender's thread (see
    /// [`Shared::commit_here`]).
    gathering: Mutex<Vec<AppendRequest>>,
    readers: Mutex<Vec<Connection>>,
    heads: batch::Heads,
    tail: Tail,
}

impl SqliteLog {
    /// Opens (creating if needed) the log in the database file at `path`.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_writer(&path, options.durability)?;
        let head = read_head(&conn)?;
        let shared = Arc::new(Shared {
            path,
            writer: Mutex::new(conn),
            appenders_commit: matches!(options.durability, Durability::Process),
            gathering: Mutex::new(Vec::new()),
            readers: Mutex::new(Vec::new()),
            heads: batch::Heads::new(head),
            tail: Tail::default(),
        });
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("portico-log-writer".into())
            .spawn(move || run_writer(rx, &writer_shared))
            .map_err(LogError::storage)?;
        let checkpointer = open_checkpointer(&shared.path)?;
        let watched = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("portico-log-checkpoint".into())
            .spawn(move || run_checkpointer(checkpointer, &watched))
            .map_err(LogError::storage)?;
        Ok(SqliteLog { shared, writer: tx })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let conn = match shared.readers.lock().ok().and_then(|mut pool| pool.pop()) {
                Some(conn) => conn,
                None => open_reader(&shared.path)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = shared.readers.lock() {
                if pool.len() < MAX_IDLE_READERS {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(LogError::storage)?
    }
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
    ) -> Result<Appended, AppendError> {
        let (shared, queue) = (&self.shared, &self.writer);
        batch::submit(queue, stream_id, expected, events, metadata, |request| {
            shared.commit_here(request, queue)
        })
        .await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let stream_id = stream_id.to_owned();
        self.with_reader(move |conn| {
            let sql = format!(
                "SELECT {SELECT_COLUMNS} FROM events \
                 WHERE stream_id = ?1 AND stream_version >= ?2 ORDER BY stream_version LIMIT ?3"
            );
            query_events(conn, &sql, params![stream_id, to_i64(from_version), to_i64(limit as u64)])
        })
        .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        if let Some(events) = self.shared.tail.read_after(after, limit) {
            return Ok(events);
        }
        self.with_reader(move |conn| {
            let sql = format!(
                "SELECT {SELECT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
            );
            query_events(conn, &sql, params![to_i64(after), to_i64(limit as u64)])
        })
        .await
    }

    async fn head_position(&self) -> Result<Position, LogError> {
        self.with_reader(read_head).await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.shared.heads.watch_head()
    }

    fn watch_changes(&self) -> watch::Receiver<Position> {
        self.shared.heads.watch_changes()
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn open_writer(path: &Path, durability: Durability) -> Result<Connection, LogError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(LogError::storage)?;
    }
    let conn = Connection::open(path).map_err(LogError::storage)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(LogError::storage)?;
    let synchronous = match durability {
        // In WAL mode NORMAL syncs only at checkpoints: a committed transaction survives a crash
        // of the process (it is in the OS's page cache) but not a power loss.
        Durability::Process => "NORMAL",
        Durability::Power => "FULL",
    };
    // Checkpoints (which copy the WAL into the database and, in `process` durability, are the
    // only fsyncs) run on their own thread and connection, not inside a commit: a commit that
    // happened to cross the automatic checkpoint threshold used to wait for one, which showed
    // as the tail latency of audited calls.
    // The WAL file keeps its size when it is reset (its pages are rewritten in the OS's cache,
    // not allocated again) unless a burst grew it beyond `WAL_SIZE_LIMIT`.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}; {SCHEMA}"
    ))
    .map_err(LogError::storage)?;
    Ok(conn)
}

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// A WAL longer than this (in pages: 4 MiB of 4 KiB pages) is copied to its end while the
/// write connection is held, so that the next commit starts it over (see [`checkpoint_step`]).
const CATCH_UP_AFTER_FRAMES: i64 = 1024;
/// The size (bytes) a WAL file that a burst grew beyond is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

fn open_checkpointer(path: &Path) -> Result<Connection, LogError> {
    let conn = Connection::open(path).map_err(LogError::storage)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(LogError::storage)?;
    Ok(conn)
}

/// Checkpoints every `CHECKPOINT_INTERVAL` until the log is dropped, and once more at the end.
fn run_checkpointer(conn: Connection, log: &Weak<Shared>) {
    loop {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        let Some(shared) = log.upgrade() else { break };
        if let Err(error) = checkpoint_step(&conn, &shared, CATCH_UP_AFTER_FRAMES) {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
    if let Err(error) = checkpoint(&conn) {
        tracing::warn!(%error, "WAL checkpoint failed");
    }
}

/// One round of the checkpointer. A passive checkpoint copies the WAL into the database without
/// blocking the writer or readers, but it copies only what was committed when it began, and the
/// WAL starts over only when a commit finds all of it copied. Under steady appends (a few
/// hundred audited calls per second and more) commits always arrive while a checkpoint runs,
/// so the WAL would never start over: it grew by ~30 MB a second at 1,900 calls a second, and
/// with it the WAL index every read searches and the page cache each commit allocates. So once
/// the WAL is longer than `catch_up_after` frames, the rest (what was appended during the
/// passive checkpoint: milliseconds of commits) is copied while the write connection is held;
/// the next commit then writes from the WAL's start (unless a reader is reading the WAL at that
/// instant: then the next round tries again). Appends wait for that copy and its syncs.
fn checkpoint_step(
    conn: &Connection,
    shared: &Shared,
    catch_up_after: i64,
) -> Result<(), rusqlite::Error> {
    if checkpoint(conn)? > catch_up_after {
        let _writer = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
        checkpoint(conn)?;
    }
    Ok(())
}

/// A passive checkpoint; returns the number of frames in the WAL when it began.
fn checkpoint(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(LogError::storage)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(LogError::storage)?;
    Ok(conn)
}

fn read_head(conn: &Connection) -> Result<Position, LogError> {
    let head: Option<i64> = conn
        .prepare_cached("SELECT max(position) FROM events")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(LogError::storage)?;
    codec::non_negative(0, "head position", head.unwrap_or(0))
}

fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, LogError> {
    let mut stmt = conn.prepare_cached(sql).map_err(LogError::storage)?;
    let mut rows = stmt.query(params).map_err(LogError::storage)?;
    let mut out = Vec::new();
    let mut actors = ActorCache::default();
    while let Some(row) = rows.next().map_err(LogError::storage)? {
        out.push(stored_from_row(row)?.decode(&mut actors)?);
    }
    Ok(out)
}

fn stored_from_row<'a>(row: &'a rusqlite::Row<'_>) -> Result<StoredEventRef<'a>, LogError> {
    let raw_position: i64 = row.get(0).map_err(LogError::storage)?;
    let position = codec::non_negative(0, "position", raw_position)?;
    let get_uuid = |idx: usize| -> Result<Uuid, LogError> {
        let bytes: [u8; 16] = row.get(idx).map_err(LogError::storage)?;
        Ok(Uuid::from_bytes(bytes))
    };
    let get_str = |idx: usize| -> Result<&'a str, LogError> {
        row.get_ref(idx).and_then(|v| v.as_str().map_err(Into::into)).map_err(LogError::storage)
    };
    let stream_version: i64 = row.get(2).map_err(LogError::storage)?;
    let schema_version: i64 = row.get(5).map_err(LogError::storage)?;
    let recorded_at: i64 = row.get(6).map_err(LogError::storage)?;
    Ok(StoredEventRef {
        position,
        stream_id: row.get(1).map_err(LogError::storage)?,
        stream_version: codec::non_negative(position, "stream version", stream_version)?,
        event_id: get_uuid(3)?,
        event_type: get_str(4)?,
        schema_version: u16::try_from(schema_version).map_err(|_| LogError::Decode {
            position,
            message: format!("schema version {schema_version} is out of range"),
        })?,
        recorded_at: codec::from_micros(position, recorded_at)?,
        actor: get_str(7)?,
        correlation_id: get_uuid(8)?,
        payload: get_str(9)?,
    })
}

impl Shared {
    /// Commits `request` on the appender's thread if nothing waits for the writer: an idle log
    /// answers without waking the writer thread, which then wakes the appender (two of the
    /// eight thread switches of an audited call at one connection). Only in `process`
    /// durability, where a commit is a write into the OS's page cache (tens of microseconds;
    /// longer only while another process, the `portico` CLI, holds the file's write lock for
    /// its own short transaction); in `power` durability every commit waits for the disk and
    /// stays off the async runtime. Hands the request back otherwise, to be queued.
    ///
    /// The first such append gathers: it lets the tasks that are ready on its thread run
    /// once (a yield, not a wait on a timer), and the appends they make in the meantime, on
    /// any thread, join its commit instead of each committing alone. Tasks that become ready
    /// together (several upstreams' answers read in one poll) are the calls of a busy gateway;
    /// one transaction writes the pages they share (the table's and the indexes' last leaves)
    /// once. An append that joins is answered when the commit is, like a queued one.
    async fn commit_here(
        &self,
        request: AppendRequest,
        queue: &mpsc::Sender<AppendRequest>,
    ) -> Option<AppendRequest> {
        if !self.appenders_commit || queue.capacity() < QUEUE_CAPACITY {
            return Some(request);
        }
        {
            let mut gathering = self.gathering.lock().unwrap_or_else(PoisonError::into_inner);
            if gathering.len() >= batch::MAX_BATCH_REQUESTS {
                return Some(request);
            }
            gathering.push(request);
            if gathering.len() > 1 {
                return None;
            }
        }
        // Commits what was gathered when dropped: after the yield, or if this append's task
        // is dropped during it, so that the appends that joined are never left behind.
        let _commit = Gathered { shared: self, queue };
        tokio::task::yield_now().await;
        None
    }

    /// Commits the gathered appends: here if the write connection is free, else on the writer
    /// thread (here after all, waiting for the connection, in the unlikely case that its queue
    /// filled up in the meantime).
    fn commit_gathered(&self, queue: &mpsc::Sender<AppendRequest>) {
        let requests =
            std::mem::take(&mut *self.gathering.lock().unwrap_or_else(PoisonError::into_inner));
        if requests.is_empty() {
            return;
        }
        if let Ok(mut conn) = self.writer.try_lock() {
            commit_recorded(&mut conn, requests, self, &APPENDER_COMMITS);
            return;
        }
        let left: Vec<AppendRequest> = requests
            .into_iter()
            .filter_map(|request| queue.try_send(request).err().map(|e| e.into_inner()))
            .collect();
        if !left.is_empty() {
            let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            commit_recorded(&mut conn, left, self, &APPENDER_COMMITS);
        }
    }
}

/// The gathering of appends for one commit on an appender's thread; commits them when dropped.
struct Gathered<'a> {
    shared: &'a Shared,
    queue: &'a mpsc::Sender<AppendRequest>,
}

impl Drop for Gathered<'_> {
    fn drop(&mut self) {
        self.shared.commit_gathered(self.queue);
    }
}

/// The writer thread: takes batches off the queue until every sender is gone.
fn run_writer(mut rx: mpsc::Receiver<AppendRequest>, shared: &Shared) {
    let mut carried: Option<AppendRequest> = None;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match rx.blocking_recv() {
                Some(request) => request,
                None => return,
            },
        };
        let (requests, next) = batch::fill_batch(first, || rx.try_recv().ok());
        carried = next;
        let mut conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
        commit_recorded(&mut conn, requests, shared, &WRITER_COMMITS);
    }
}

/// The metrics of commits on the writer thread and on appenders' threads.
static WRITER_COMMITS: CommitMetrics = CommitMetrics::new("sqlite", "writer");
static APPENDER_COMMITS: CommitMetrics = CommitMetrics::new("sqlite", "appender");

/// [`commit_batch`], recorded in the log's metrics as one of `metrics`.
fn commit_recorded(
    conn: &mut Connection,
    requests: Vec<AppendRequest>,
    shared: &Shared,
    metrics: &CommitMetrics,
) {
    let (appends, events) = batch::sizes(&requests);
    let started = Instant::now();
    commit_batch(conn, requests, shared);
    crate::metrics::batch_committed(metrics, appends, events, started.elapsed());
}

/// Commits one batch, hands its events to the tail, moves the head, answers the appenders and
/// only then wakes the log's followers: an appender reads its own events and the new head back
/// at once, and it is waiting on a request's path, which the followers are not. If the
/// transaction fails as a whole, each request is retried alone, so one bad request cannot fail
/// the others.
fn commit_batch(conn: &mut Connection, requests: Vec<AppendRequest>, shared: &Shared) {
    match write_batch(conn, &requests) {
        Ok(Committed { head, changed, outcomes, events }) => {
            shared.tail.extend(events);
            shared.heads.answer_committed(head, changed, requests, outcomes);
        }
        Err(error) if requests.len() == 1 => {
            batch::reply_all(requests, vec![Err(AppendError::Log(error))]);
        }
        Err(error) => {
            tracing::warn!(batch = requests.len(), %error, "group commit failed; retrying each append alone");
            for request in requests {
                commit_batch(conn, vec![request], shared);
            }
        }
    }
}

fn write_batch(conn: &mut Connection, requests: &[AppendRequest]) -> Result<Committed, LogError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(LogError::storage)?;
    let head = read_head(&tx)?;
    let mut versions = HashMap::new();
    {
        let mut stmt = tx
            .prepare_cached("SELECT max(stream_version) FROM events WHERE stream_id = ?1")
            .map_err(LogError::storage)?;
        for stream in batch::streams_of(requests) {
            let version: Option<i64> = stmt
                .query_row([stream], |row| row.get(0))
                .optional()
                .map_err(LogError::storage)?
                .flatten();
            if let Some(v) = version {
                versions.insert(stream, codec::non_negative(head, "stream version", v)?);
            }
        }
    }
    let plan = batch::plan(requests, head, versions);
    let recorded_at = codec::to_micros(Utc::now());
    let recorded_time = codec::from_micros(head, recorded_at)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, \
                 schema_version, recorded_at, actor, correlation_id, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(LogError::storage)?;
        for row in &plan.rows {
            insert
                .execute(params![
                    to_i64(row.position),
                    row.stream_id,
                    to_i64(row.stream_version),
                    row.event.event_id.as_bytes(),
                    row.event.event_type,
                    row.event.schema_version,
                    recorded_at,
                    row.metadata.actor,
                    row.metadata.correlation_id.as_bytes(),
                    row.event.payload,
                ])
                .map_err(LogError::storage)?;
        }
    }
    tx.commit().map_err(LogError::storage)?;
    // Built once the write lock is released: the tail's copies are not the transaction's work.
    let events = tail::recorded(&plan.rows, recorded_time);
    let changed = batch::holds_change(&plan.rows);
    Ok(Committed { head: plan.head, changed, outcomes: plan.outcomes, events })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::domain::ids::ServerId;
    use crate::domain::server::ServerRemoved;
    use crate::{Actor, Event};

    /// The WAL header's checkpoint sequence number: SQLite adds one each time the WAL starts
    /// over from its beginning.
    fn wal_sequence(db: &Path) -> u32 {
        let header = std::fs::read(db.with_extension("db-wal")).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(db.with_extension("db-wal")).map(|m| m.len()).unwrap_or(0)
    }

    /// Appends one event at a time, each awaited, until `stop`; returns how many.
    async fn append_until(log: &SqliteLog, stop: &AtomicBool) -> u64 {
        let metadata = EventMetadata::new(Actor::system("tests"));
        let mut appended = 0;
        while !stop.load(Ordering::Relaxed) {
            let event = NewEvent::new(Event::ServerRemoved(ServerRemoved {
                server_id: ServerId::parse(format!("s{appended}")).unwrap(),
            }));
            let stream = format!("server-{appended}");
            log.append(&stream, ExpectedVersion::NoStream, vec![event], &metadata).await.unwrap();
            appended += 1;
        }
        appended
    }

    /// Under appends that never pause, a passive checkpoint alone never lets the WAL start over
    /// (commits land while it copies); once the WAL is long, the checkpointer's round copies the
    /// rest under the write connection and the next commit starts the WAL over. No append is
    /// lost or held up for good on the way.
    #[test]
    fn a_long_wal_starts_over_under_appends_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("portico.db");
        let log = Arc::new(SqliteLog::open(&db, SqliteOptions::default()).unwrap());
        let checkpointer = open_checkpointer(&db).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let appender = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(append_until(&log, &stop))
            })
        };
        let wait_for = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        // A WAL of more than 64 frames.
        wait_for("the WAL to grow", &|| wal_len(&db) > 64 * 4096);
        let before = wal_sequence(&db);
        checkpoint_step(&checkpointer, &log.shared, 64).unwrap();
        let head = log.shared.heads.head();
        wait_for("the next commits", &|| log.shared.heads.head() > head + 1);
        let after = wal_sequence(&db);
        stop.store(true, Ordering::Relaxed);
        let appended = appender.join().unwrap();

        assert_ne!(after, before, "the WAL did not start over");
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(runtime.block_on(log.head_position()).unwrap(), appended);
    }
}
