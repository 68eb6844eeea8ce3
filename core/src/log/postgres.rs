//! The PostgreSQL backend, for several Portico instances sharing one log.
//!
//! Every instance has one writer task that commits appends in batches (group commit, see
//! [`super::batch`]). A batch first locks the single row of `portico_log_head` with
//! `SELECT ... FOR UPDATE`: writers of all instances queue on that lock, so each transaction
//! takes the positions right after the previous one and commits before the next one can take
//! any. Positions are therefore gap-free and in commit order: a reader never sees position
//! `n + 1` committed while `n` is still in flight (a sequence alone would allow exactly that,
//! and a subscriber would skip `n` for good). A rolled-back batch leaves the counter as it was.
//!
//! A batch normally reads the stream versions it needs after taking the lock, plans, and writes:
//! two round trips, each a pipeline of prepared statements. While this instance is the only
//! writer, it already knows the head and versions from its previous batches; it then plans on
//! them and sends everything at once, with a write that checks under the lock that the log is
//! still as known and otherwise writes nothing (and the batch is redone the normal way).
//!
//! The commit sends `NOTIFY` with the new head; each instance `LISTEN`s on a dedicated
//! connection and moves its head watch, which wakes its subscriptions. The instance's own
//! commits also go to its tail ([`super::tail`]), from which its followers read them without a
//! query; another instance's commits break the tail's run of positions, so those are read from
//! the table.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement};
use uuid::Uuid;

use super::batch::{self, AppendRequest, Committed};
use super::codec::{self, ActorCache, StoredEventRef};
use super::tail::{self, Tail};
use super::{AppendError, Appended, Durability, EventLog, ExpectedVersion, LogError, Position};
use crate::event::{EventMetadata, NewEvent, RecordedEvent};
use crate::metrics::CommitMetrics;

/// Connections in the read pool.
const READ_POOL_SIZE: usize = 8;
/// The metrics of the writer's commits.
static COMMITS: CommitMetrics = CommitMetrics::new("postgres", "writer");
/// How many requests may wait for the writer before appenders are slowed down.
const QUEUE_CAPACITY: usize = 65_536;
/// Wait before reconnecting a lost writer or listener connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

const SCHEMA: &str = "
SELECT pg_advisory_xact_lock(8017226139115417346);
CREATE TABLE IF NOT EXISTS portico_events (
    position       BIGINT      PRIMARY KEY,
    stream_id      TEXT        NOT NULL,
    stream_version BIGINT      NOT NULL,
    event_id       UUID        NOT NULL UNIQUE,
    event_type     TEXT        NOT NULL,
    schema_version SMALLINT    NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    actor          JSONB       NOT NULL,
    correlation_id UUID        NOT NULL,
    payload        JSONB       NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE TABLE IF NOT EXISTS portico_log_head (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    position  BIGINT  NOT NULL
);
INSERT INTO portico_log_head (singleton, position) VALUES (TRUE, 0) ON CONFLICT DO NOTHING;
";

const SELECT_EVENTS: &str = "SELECT position, stream_id, stream_version, event_id, event_type, \
     schema_version, recorded_at, actor::text, correlation_id, payload::text FROM portico_events";

/// Settings of the PostgreSQL backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresOptions {
    pub durability: Durability,
}

/// The PostgreSQL event log.
#[derive(Debug)]
pub struct PostgresLog {
    shared: Arc<Shared>,
    pool: Pool,
    writer: mpsc::Sender<AppendRequest>,
    listener: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    heads: batch::Heads,
    /// This instance's last commits, for its followers (see [`super::tail`]).
    tail: Tail,
}

impl Shared {
    fn publish(&self, head: Position, changed: bool) {
        self.heads.publish(head, changed);
    }
}

impl Drop for PostgresLog {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresLog {
    /// Connects to the database at `url` (`postgres://user:password@host/db`), creating the
    /// log's tables if needed.
    pub async fn connect_url(url: &str, options: PostgresOptions) -> Result<Self, LogError> {
        let config: Config = url.parse().map_err(LogError::storage)?;
        Self::connect(config, options).await
    }

    /// Connects with a prepared configuration (the tests use it to pick a schema).
    pub async fn connect(config: Config, options: PostgresOptions) -> Result<Self, LogError> {
        let writer_client = connect_client(&config).await?;
        writer_client
            .batch_execute(&format!("BEGIN; {SCHEMA} COMMIT;"))
            .await
            .map_err(LogError::storage)?;
        let schema: String = writer_client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(LogError::storage)?
            .get(0);
        let channel = notify_channel(&schema);
        let head = read_head(&writer_client).await?;
        let shared = Arc::new(Shared { heads: batch::Heads::new(head), tail: Tail::default() });

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(READ_POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(LogError::storage)?;

        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer {
            config: config.clone(),
            connection: Some(WriterConnection::prepare(writer_client, options.durability).await?),
            durability: options.durability,
            channel: channel.clone(),
            shared: Arc::clone(&shared),
            known: Known::default(),
        };
        tokio::spawn(writer.run(rx));
        let listener = tokio::spawn(run_listener(config, channel, Arc::downgrade(&shared)));
        Ok(PostgresLog { shared, pool, writer: tx, listener })
    }

    /// The read pool, for stores that live beside the log (the vault).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn reader(&self) -> Result<deadpool_postgres::Object, LogError> {
        self.pool.get().await.map_err(LogError::storage)
    }
}

#[async_trait]
impl EventLog for PostgresLog {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
    ) -> Result<Appended, AppendError> {
        let here = |request| std::future::ready(Some(request));
        batch::submit(&self.writer, stream_id, expected, events, metadata, here).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let client = self.reader().await?;
        let sql = format!(
            "{SELECT_EVENTS} WHERE stream_id = $1 AND stream_version >= $2 \
             ORDER BY stream_version LIMIT $3"
        );
        let rows = client
            .query(&sql, &[&stream_id, &to_i64(from_version), &to_i64(limit as u64)])
            .await
            .map_err(LogError::storage)?;
        decode_rows(&rows)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        if let Some(events) = self.shared.tail.read_after(after, limit) {
            return Ok(events);
        }
        let client = self.reader().await?;
        let sql = format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2");
        let rows = client
            .query(&sql, &[&to_i64(after), &to_i64(limit as u64)])
            .await
            .map_err(LogError::storage)?;
        decode_rows(&rows)
    }

    async fn head_position(&self) -> Result<Position, LogError> {
        let client = self.reader().await?;
        read_head(&client).await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.shared.heads.watch_head()
    }

    fn watch_changes(&self) -> watch::Receiver<Position> {
        self.shared.heads.watch_changes()
    }
}

fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The notification channel of the log in `schema`, so that logs in different schemas of one
/// database do not wake each other.
fn notify_channel(schema: &str) -> String {
    let safe: String = schema
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .take(40)
        .collect();
    format!("portico_log_{safe}")
}

async fn connect_client(config: &Config) -> Result<Client, LogError> {
    let (client, connection) = config.connect(NoTls).await.map_err(LogError::storage)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "event log connection closed");
        }
    });
    Ok(client)
}

async fn read_head(client: &Client) -> Result<Position, LogError> {
    let row = client
        .query_one("SELECT position FROM portico_log_head", &[])
        .await
        .map_err(LogError::storage)?;
    codec::non_negative(0, "head position", row.get(0))
}

/// Decodes rows, borrowing their text and reusing the last actor (see [`ActorCache`]).
fn decode_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<RecordedEvent>, LogError> {
    let mut actors = ActorCache::default();
    rows.iter().map(|row| stored_from_row(row)?.decode(&mut actors)).collect()
}

fn stored_from_row(row: &tokio_postgres::Row) -> Result<StoredEventRef<'_>, LogError> {
    let get = |e: tokio_postgres::Error| LogError::storage(e);
    let raw_position: i64 = row.try_get(0).map_err(get)?;
    let position = codec::non_negative(0, "position", raw_position)?;
    let stream_version: i64 = row.try_get(2).map_err(get)?;
    let schema_version: i16 = row.try_get(5).map_err(get)?;
    Ok(StoredEventRef {
        position,
        stream_id: row.try_get(1).map_err(get)?,
        stream_version: codec::non_negative(position, "stream version", stream_version)?,
        event_id: row.try_get(3).map_err(get)?,
        event_type: row.try_get(4).map_err(get)?,
        schema_version: u16::try_from(schema_version).map_err(|_| LogError::Decode {
            position,
            message: format!("schema version {schema_version} is negative"),
        })?,
        recorded_at: row.try_get::<_, DateTime<Utc>>(6).map_err(get)?,
        actor: row.try_get(7).map_err(get)?,
        correlation_id: row.try_get(8).map_err(get)?,
        payload: row.try_get(9).map_err(get)?,
    })
}

/// Locks the head row until commit (see the module docs). Its own statement: the stream
/// versions must be read by a later statement, whose snapshot is taken after the lock is granted.
const LOCK_HEAD: &str = "SELECT position FROM portico_log_head FOR UPDATE";

/// The last version of each given stream, `NULL` for a stream that does not exist. One index
/// probe per stream (`max` over the `(stream_id, stream_version)` index reads a single entry),
/// whatever the streams' lengths.
const STREAM_VERSIONS: &str = "SELECT s.stream_id, \
     (SELECT max(e.stream_version) FROM portico_events e WHERE e.stream_id = s.stream_id) \
     FROM unnest($1::text[]) AS s(stream_id)";

const INSERT_EVENTS: &str = "INSERT INTO portico_events (position, stream_id, stream_version, \
     event_id, event_type, schema_version, recorded_at, actor, correlation_id, payload) \
     SELECT p, s, v, e, t, sv, $7, a::jsonb, c, pl::jsonb \
     FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], \
                 $6::smallint[], $8::text[], $9::uuid[], $10::text[]) \
          AS u(p, s, v, e, t, sv, a, c, pl)";

/// Moves the head and notifies the listeners of every instance (delivered on commit): the
/// payload is the new head, followed by [`CALL_RECORDS_ONLY`] (`$3`) if the batch holds no
/// change (see [`EventLog::watch_changes`]), so that every instance moves its changes head
/// alike.
const ADVANCE_HEAD: &str = "WITH h AS (UPDATE portico_log_head SET position = $1 RETURNING position) \
     SELECT pg_notify($2, h.position::text || $3) FROM h";

/// What follows the head in a notification of a batch of call records only.
const CALL_RECORDS_ONLY: &str = " calls";

/// The suffix of the notification of a batch that holds a change, or not.
fn notification_suffix(changed: bool) -> &'static str {
    if changed { "" } else { CALL_RECORDS_ONLY }
}

/// The head a notification announces and whether its batch held a change; `None` if the
/// payload is not one (the head is then read from the database). A bare position (an instance
/// of an earlier version) counts as a change.
fn read_notification(payload: &str) -> Option<(Position, bool)> {
    let (head, changed) = match payload.strip_suffix(CALL_RECORDS_ONLY) {
        Some(head) => (head, false),
        None => (payload, true),
    };
    Some((head.parse().ok()?, changed))
}

/// Writes a batch planned on what the writer last knew of the log, if the log is still exactly
/// that: the head at `$13` and each stream `$14` at version `$15` (`NULL`: no stream; versions
/// start at 1). A stream is at `v` when its versions from `v` on are exactly `[v]`: one forward
/// index probe reading at most two entries (a backward `max` probe reads a whole index page).
/// The probe is a scalar subquery on purpose: as an `EXISTS`, the generic plan of the prepared
/// statement may turn it into a hashed subplan over a sequential scan of the whole table. Read
/// after the head lock, so nothing can change before commit. Inserts like [`INSERT_EVENTS`]
/// and moves the head like [`ADVANCE_HEAD`] (`$16`: the notification's suffix); returns one
/// row if it wrote, none if it did not.
const WRITE_IF_UNCHANGED: &str = "WITH unchanged AS ( \
         SELECT (SELECT position FROM portico_log_head) = $13 AND NOT EXISTS ( \
             SELECT 1 FROM unnest($14::text[], $15::bigint[]) AS k(stream_id, version) \
             WHERE (SELECT array_agg(x.v) FROM ( \
                        SELECT e.stream_version FROM portico_events e \
                        WHERE e.stream_id = k.stream_id \
                          AND e.stream_version >= coalesce(k.version, 1) \
                        ORDER BY e.stream_version LIMIT 2) AS x(v)) \
                   IS DISTINCT FROM CASE WHEN k.version IS NULL THEN NULL \
                                         ELSE ARRAY[k.version] END) AS ok \
     ), inserted AS ( \
         INSERT INTO portico_events (position, stream_id, stream_version, event_id, \
             event_type, schema_version, recorded_at, actor, correlation_id, payload) \
         SELECT p, s, v, e, t, sv, $7, a::jsonb, c, pl::jsonb \
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], \
                     $6::smallint[], $8::text[], $9::uuid[], $10::text[]) \
              AS u(p, s, v, e, t, sv, a, c, pl) \
         WHERE (SELECT ok FROM unchanged) \
     ), h AS ( \
         UPDATE portico_log_head SET position = $11 WHERE (SELECT ok FROM unchanged) \
         RETURNING position \
     ) \
     SELECT pg_notify($12, h.position::text || $16) FROM h";

/// Batches written without guessing after a wrong guess (see [`Known`]).
const MISS_COOLDOWN: u32 = 16;

/// The most streams whose version a writer remembers (it forgets them all past this).
const MAX_KNOWN_STREAMS: usize = 65_536;

/// The writer's connection and the statements prepared on it (they live as long as it does).
struct WriterConnection {
    client: Client,
    lock_head: Statement,
    stream_versions: Statement,
    insert_events: Statement,
    advance_head: Statement,
    write_if_unchanged: Statement,
}

impl WriterConnection {
    /// Sets up a fresh writer connection: its commit durability for the whole session, and
    /// the batch statements, prepared together in a single round trip.
    async fn prepare(client: Client, durability: Durability) -> Result<Self, LogError> {
        let session = match durability {
            // Commits return once PostgreSQL has the transaction in memory; its WAL writer
            // flushes within a few hundred milliseconds. A crash of Portico loses nothing; a
            // crash of the database server may lose the last moments. The connection only
            // ever runs the writer's transactions.
            Durability::Process => "SET synchronous_commit = off",
            // The server's own setting, which waits for the flush unless configured not to.
            Durability::Power => "",
        };
        let (set, lock_head, stream_versions, insert_events, advance_head, write_if_unchanged) = tokio::join!(
            biased;
            client.batch_execute(session),
            client.prepare(LOCK_HEAD),
            client.prepare(STREAM_VERSIONS),
            client.prepare(INSERT_EVENTS),
            client.prepare(ADVANCE_HEAD),
            client.prepare(WRITE_IF_UNCHANGED),
        );
        set.map_err(LogError::storage)?;
        Ok(WriterConnection {
            lock_head: lock_head.map_err(LogError::storage)?,
            stream_versions: stream_versions.map_err(LogError::storage)?,
            insert_events: insert_events.map_err(LogError::storage)?,
            advance_head: advance_head.map_err(LogError::storage)?,
            write_if_unchanged: write_if_unchanged.map_err(LogError::storage)?,
            client,
        })
    }
}

/// The instance's single writer: owns one connection and commits batches.
struct Writer {
    config: Config,
    connection: Option<WriterConnection>,
    durability: Durability,
    channel: String,
    shared: Arc<Shared>,
    known: Known,
}

/// What the writer last knew of the log: the head after its last batch and the versions of the
/// streams it has touched. A batch planned on it is written in one round trip, if the log is
/// still exactly that under the head lock ([`WRITE_IF_UNCHANGED`] checks); otherwise the batch
/// reads the log first, in two.
#[derive(Debug, Default)]
struct Known {
    head: Option<Position>,
    /// `None`: the stream did not exist.
    versions: HashMap<String, Option<u64>>,
    /// Batches still to go without guessing, after a wrong guess: while other instances are
    /// writing, guesses mostly fail and each failure costs a round trip.
    cooldown: u32,
}

/// A batch's streams as [`Known`] has them.
struct Guess<'a> {
    head: Position,
    /// The streams that exist, as [`batch::plan`] takes them.
    versions: HashMap<&'a str, u64>,
    /// The version of each of the batch's streams, in order.
    expected: Vec<Option<i64>>,
}

impl Known {
    fn guess<'a>(&mut self, streams: &[&'a str], published: Position) -> Option<Guess<'a>> {
        if self.cooldown > 0 {
            self.cooldown -= 1;
            return None;
        }
        let head = self.head?;
        if published > head {
            // Another instance has committed since: the guess would fail.
            return None;
        }
        let mut versions = HashMap::with_capacity(streams.len());
        let mut expected = Vec::with_capacity(streams.len());
        for stream in streams {
            let version = *self.versions.get(*stream)?;
            if let Some(v) = version {
                versions.insert(*stream, v);
            }
            expected.push(version.map(to_i64));
        }
        Some(Guess { head, versions, expected })
    }

    /// Learns the log's state after a committed batch from its outcomes.
    fn learn(&mut self, requests: &[AppendRequest], Committed { head, outcomes, .. }: &Committed) {
        let written: u64 = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .map(|a| a.last_position.saturating_sub(a.first_position).saturating_add(1))
            .sum();
        if self.head != head.checked_sub(written) || self.versions.len() > MAX_KNOWN_STREAMS {
            // Someone else wrote in between: what is known of other streams may be stale.
            self.versions.clear();
        }
        for (request, outcome) in requests.iter().zip(outcomes) {
            let version = match outcome {
                Ok(appended) => Some(appended.stream_version),
                Err(AppendError::Conflict { actual, .. }) => actual.0,
                Err(_) => {
                    self.versions.remove(&request.stream_id);
                    continue;
                }
            };
            self.versions.insert(request.stream_id.clone(), version);
        }
        self.head = Some(*head);
    }

    fn missed(&mut self) {
        self.cooldown = MISS_COOLDOWN;
    }

    fn forget(&mut self) {
        self.head = None;
        self.versions.clear();
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<AppendRequest>) {
        let mut carried: Option<AppendRequest> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match rx.recv().await {
                    Some(request) => request,
                    None => return,
                },
            };
            let (requests, next) = batch::fill_batch(first, || rx.try_recv().ok());
            carried = next;
            let (appends, events) = batch::sizes(&requests);
            let started = Instant::now();
            self.commit_batch(requests).await;
            crate::metrics::batch_committed(&COMMITS, appends, events, started.elapsed());
        }
    }

    /// Commits one batch and answers its appenders; if the transaction fails as a whole, each
    /// request is retried alone so that one bad request cannot fail the others.
    async fn commit_batch(&mut self, requests: Vec<AppendRequest>) {
        match self.write_batch(&requests).await {
            Ok(Committed { head, changed, outcomes, events }) => {
                // The events are in the tail before the head moves: the followers it wakes find
                // them there.
                self.shared.tail.extend(events);
                self.shared.heads.answer_committed(head, changed, requests, outcomes);
            }
            Err(error) if requests.len() == 1 => {
                batch::reply_all(requests, vec![Err(AppendError::Log(error))]);
            }
            Err(error) => {
                tracing::warn!(batch = requests.len(), %error, "group commit failed; retrying each append alone");
                for request in requests {
                    Box::pin(self.commit_batch(vec![request])).await;
                }
            }
        }
    }

    /// The writer connection, reconnected (and its statements prepared again) if it was lost.
    async fn connection(&mut self) -> Result<&WriterConnection, LogError> {
        if self.connection.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.connection = None;
            let connected = match connect_client(&self.config).await {
                Ok(client) => WriterConnection::prepare(client, self.durability).await,
                Err(error) => Err(error),
            };
            match connected {
                Ok(connection) => self.connection = Some(connection),
                Err(error) => {
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    return Err(error);
                }
            }
        }
        self.connection.as_ref().ok_or(LogError::Closed)
    }

    /// Writes one batch: in one round trip if the writer knows the streams and nobody else has
    /// written since ([`run_guessed_batch`]), otherwise (or if that guess proves wrong) in two
    /// ([`run_batch`]). Each round trip is a pipeline of statements that the server runs in
    /// order. If any statement fails, the transaction is rolled back (statements pipelined
    /// after the failure fail as well, and PostgreSQL turns the `COMMIT` of a failed
    /// transaction into a rollback).
    async fn write_batch(&mut self, requests: &[AppendRequest]) -> Result<Committed, LogError> {
        let channel = self.channel.clone();
        let streams = batch::streams_of(requests);
        let published = self.shared.heads.head();
        let guess = self.known.guess(&streams, published);
        let connection = self.connection().await?;
        let guessed = match guess {
            Some(guess) => run_guessed_batch(connection, &channel, requests, &streams, guess).await,
            None => Ok(Guessed::NotTried),
        };
        let wrong = matches!(guessed, Ok(Guessed::Wrong));
        let result = match guessed {
            Ok(Guessed::Written(outcome)) => Ok(outcome),
            Ok(Guessed::Wrong | Guessed::NotTried) => {
                run_batch(connection, &channel, requests, &streams).await
            }
            Err(error) => Err(error),
        };
        match &result {
            Ok(outcome) => self.known.learn(requests, outcome),
            Err(_) => {
                // Ends the failed transaction, if it is still open; a connection that cannot
                // even do that is replaced before the next batch.
                if connection.client.batch_execute("ROLLBACK").await.is_err() {
                    self.connection = None;
                }
                self.known.forget();
            }
        }
        if wrong {
            self.known.missed();
        }
        result
    }
}

/// What became of a batch planned on a guess.
enum Guessed {
    Written(Committed),
    /// The log was not as guessed; the transaction wrote nothing.
    Wrong,
    /// The plan writes nothing (every request conflicts), so it was not sent.
    NotTried,
}

/// Writes a batch in one round trip, planned on `guess`: `BEGIN`, the head lock,
/// [`WRITE_IF_UNCHANGED`] and `COMMIT`, pipelined.
async fn run_guessed_batch(
    connection: &WriterConnection,
    channel: &str,
    requests: &[AppendRequest],
    streams: &[&str],
    guess: Guess<'_>,
) -> Result<Guessed, LogError> {
    let client = &connection.client;
    let plan = batch::plan(requests, guess.head, guess.versions);
    if plan.rows.is_empty() {
        return Ok(Guessed::NotTried);
    }
    let columns = Columns::of(&plan.rows);
    let new_head = to_i64(plan.head);
    let expected_head = to_i64(guess.head);
    let changed = batch::holds_change(&plan.rows);
    let suffix = notification_suffix(changed);
    let params: [&(dyn ToSql + Sync); 16] = [
        &columns.positions,
        &columns.stream_ids,
        &columns.stream_versions,
        &columns.event_ids,
        &columns.event_types,
        &columns.schema_versions,
        &columns.recorded_at,
        &columns.actors,
        &columns.correlation_ids,
        &columns.payloads,
        &new_head,
        &channel,
        &expected_head,
        &streams,
        &guess.expected,
        &suffix,
    ];
    // INVARIANT: the head lock comes first, as in `run_batch`; the write checks the guess in a
    // later statement, whose snapshot is taken after the lock is granted.
    let (begun, locked, written, committed) = tokio::join!(
        biased;
        client.batch_execute("BEGIN"),
        client.query_one(&connection.lock_head, &[]),
        client.execute(&connection.write_if_unchanged, &params),
        client.batch_execute("COMMIT"),
    );
    // Every result is checked: a `COMMIT` after a failed statement reports success, but has
    // rolled the transaction back.
    begun.map_err(LogError::storage)?;
    locked.map_err(LogError::storage)?;
    let written = written.map_err(LogError::storage)?;
    committed.map_err(LogError::storage)?;
    Ok(if written == 1 {
        let events = tail::recorded(&plan.rows, columns.recorded_at);
        Guessed::Written(Committed { head: plan.head, changed, outcomes: plan.outcomes, events })
    } else {
        Guessed::Wrong
    })
}

/// The planned rows of a batch, column by column, as the insert statements take them.
struct Columns<'a> {
    positions: Vec<i64>,
    stream_ids: Vec<&'a str>,
    stream_versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<&'static str>,
    schema_versions: Vec<i16>,
    recorded_at: DateTime<Utc>,
    actors: Vec<&'a str>,
    correlation_ids: Vec<Uuid>,
    payloads: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(rows: &[batch::PlannedRow<'a>]) -> Self {
        let mut columns = Columns {
            positions: Vec::with_capacity(rows.len()),
            stream_ids: Vec::with_capacity(rows.len()),
            stream_versions: Vec::with_capacity(rows.len()),
            event_ids: Vec::with_capacity(rows.len()),
            event_types: Vec::with_capacity(rows.len()),
            schema_versions: Vec::with_capacity(rows.len()),
            // Whole microseconds, as `timestamptz` keeps them: the tail's copies must equal
            // what a reader of the table gets.
            recorded_at: truncate_to_micros(Utc::now()),
            actors: Vec::with_capacity(rows.len()),
            correlation_ids: Vec::with_capacity(rows.len()),
            payloads: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            columns.positions.push(to_i64(row.position));
            columns.stream_ids.push(row.stream_id);
            columns.stream_versions.push(to_i64(row.stream_version));
            columns.event_ids.push(row.event.event_id);
            columns.event_types.push(row.event.event_type);
            columns
                .schema_versions
                .push(i16::try_from(row.event.schema_version).unwrap_or(i16::MAX));
            columns.actors.push(row.metadata.actor.as_str());
            columns.correlation_ids.push(row.metadata.correlation_id);
            columns.payloads.push(row.event.payload.as_str());
        }
        columns
    }
}

/// Writes a batch in two round trips: `BEGIN`, the head lock and the stream versions; then the
/// insert, the head update with its notification, and `COMMIT`.
async fn run_batch(
    connection: &WriterConnection,
    channel: &str,
    requests: &[AppendRequest],
    streams: &[&str],
) -> Result<Committed, LogError> {
    let client = &connection.client;
    // INVARIANT: the head lock serializes the writers of every instance until commit, which is
    // what keeps positions gap-free and in commit order.
    let version_params: [&(dyn ToSql + Sync); 1] = [&streams];
    let (begun, head_row, version_rows) = tokio::join!(
        biased;
        client.batch_execute("BEGIN"),
        client.query_one(&connection.lock_head, &[]),
        client.query(&connection.stream_versions, &version_params),
    );
    begun.map_err(LogError::storage)?;
    let head_row = head_row.map_err(LogError::storage)?;
    let version_rows = version_rows.map_err(LogError::storage)?;
    let head =
        codec::non_negative(0, "head position", head_row.try_get(0).map_err(LogError::storage)?)?;
    let mut versions = HashMap::with_capacity(version_rows.len());
    for row in &version_rows {
        let stream: &str = row.try_get(0).map_err(LogError::storage)?;
        let Some(version) = row.try_get::<_, Option<i64>>(1).map_err(LogError::storage)? else {
            continue;
        };
        // Borrow the stream id from the requests, which outlive the plan.
        if let Some(s) = streams.iter().find(|s| **s == stream) {
            versions.insert(*s, codec::non_negative(head, "stream version", version)?);
        }
    }
    let plan = batch::plan(requests, head, versions);
    if plan.rows.is_empty() {
        // Every request conflicted: nothing to write.
        client.batch_execute("COMMIT").await.map_err(LogError::storage)?;
        let (head, outcomes) = (plan.head, plan.outcomes);
        return Ok(Committed { head, changed: false, outcomes, events: Vec::new() });
    }
    let columns = Columns::of(&plan.rows);
    let new_head = to_i64(plan.head);
    let insert_params: [&(dyn ToSql + Sync); 10] = [
        &columns.positions,
        &columns.stream_ids,
        &columns.stream_versions,
        &columns.event_ids,
        &columns.event_types,
        &columns.schema_versions,
        &columns.recorded_at,
        &columns.actors,
        &columns.correlation_ids,
        &columns.payloads,
    ];
    let changed = batch::holds_change(&plan.rows);
    let suffix = notification_suffix(changed);
    let head_params: [&(dyn ToSql + Sync); 3] = [&new_head, &channel, &suffix];
    let (inserted, advanced, committed) = tokio::join!(
        biased;
        client.execute(&connection.insert_events, &insert_params),
        client.execute(&connection.advance_head, &head_params),
        client.batch_execute("COMMIT"),
    );
    // Every result is checked: a `COMMIT` after a failed statement reports success, but has
    // rolled the transaction back.
    inserted.map_err(LogError::storage)?;
    advanced.map_err(LogError::storage)?;
    committed.map_err(LogError::storage)?;
    let events = tail::recorded(&plan.rows, columns.recorded_at);
    Ok(Committed { head: plan.head, changed, outcomes: plan.outcomes, events })
}

/// Follows the notifications of other instances' commits on a dedicated connection, and
/// reconnects when it is lost (then re-reads the head, in case a notification was missed).
async fn run_listener(config: Config, channel: String, shared: Weak<Shared>) {
    loop {
        if shared.strong_count() == 0 {
            return;
        }
        if let Err(error) = listen_once(&config, &channel, &shared).await {
            tracing::warn!(%error, "event log listener lost its connection; reconnecting");
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

async fn listen_once(
    config: &Config,
    channel: &str,
    shared: &Weak<Shared>,
) -> Result<(), LogError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(LogError::storage)?;
    let (notified_tx, mut notified) = mpsc::unbounded_channel::<Option<(Position, bool)>>();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let _ = notified_tx.send(read_notification(n.payload()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN \"{channel}\"")).await.map_err(LogError::storage)?;
        let head = read_head(&client).await?;
        match shared.upgrade() {
            Some(shared) => shared.publish(head, true),
            None => return Ok(()),
        }
        while let Some(payload) = notified.recv().await {
            let Some(shared) = shared.upgrade() else { return Ok(()) };
            match payload {
                Some((head, changed)) => shared.publish(head, changed),
                None => shared.publish(read_head(&client).await?, true),
            }
        }
        Err(LogError::Closed)
    }
    .await;
    driver.abort();
    result
}

/// Creates the tables of a store that lives beside the log (`ddl`, idempotent) under the
/// transaction-scoped advisory lock `lock`, so that instances opening the store at once do not
/// race on the catalog.
pub(crate) async fn create_beside_log(
    pool: &Pool,
    lock: i64,
    ddl: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock]).await?;
    tx.batch_execute(ddl).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification names the head and whether its batch held a change; an instance of an
    /// earlier version sends the bare head, which counts as a change, and anything else is no
    /// notification of a head (the listener reads the head from the database instead).
    #[test]
    fn a_notification_says_whether_its_batch_held_a_change() {
        assert_eq!(read_notification("42 calls"), Some((42, false)));
        assert_eq!(read_notification("42"), Some((42, true)));
        assert_eq!(read_notification("calls"), None);
        assert_eq!(read_notification("42 call"), None);
        assert_eq!(read_notification(""), None);
    }
}
