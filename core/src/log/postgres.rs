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
//! The commit sends `NOTIFY` with the new head; each instance `LISTEN`s on a dedicated
//! connection and moves its head watch, which wakes its subscriptions.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement};
use uuid::Uuid;

use super::batch::{self, AppendRequest};
use super::codec::{self, StoredEvent};
use super::{AppendError, Appended, Durability, EventLog, ExpectedVersion, LogError, Position};
use crate::event::{EventMetadata, NewEvent, RecordedEvent};

/// Connections in the read pool.
const READ_POOL_SIZE: usize = 8;
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
    head: watch::Sender<Position>,
}

impl Shared {
    fn publish(&self, head: Position) {
        self.head.send_if_modified(|h| {
            let moved = head > *h;
            *h = (*h).max(head);
            moved
        });
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
        let (head_tx, _) = watch::channel(head);
        let shared = Arc::new(Shared { head: head_tx });

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
        super::validate_append(stream_id, &events)?;
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream_id: stream_id.to_owned(),
            expected,
            events: codec::encode_events(&events)?,
            metadata: codec::encode_metadata(metadata)?,
            reply,
        };
        self.writer.send(request).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
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
        rows.iter().map(|row| stored_from_row(row)?.decode()).collect()
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let client = self.reader().await?;
        let sql = format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2");
        let rows = client
            .query(&sql, &[&to_i64(after), &to_i64(limit as u64)])
            .await
            .map_err(LogError::storage)?;
        rows.iter().map(|row| stored_from_row(row)?.decode()).collect()
    }

    async fn head_position(&self) -> Result<Position, LogError> {
        let client = self.reader().await?;
        read_head(&client).await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.shared.head.subscribe()
    }
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

fn stored_from_row(row: &tokio_postgres::Row) -> Result<StoredEvent, LogError> {
    let get = |e: tokio_postgres::Error| LogError::storage(e);
    let raw_position: i64 = row.try_get(0).map_err(get)?;
    let position = codec::non_negative(0, "position", raw_position)?;
    let stream_version: i64 = row.try_get(2).map_err(get)?;
    let schema_version: i16 = row.try_get(5).map_err(get)?;
    Ok(StoredEvent {
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

/// Moves the head and notifies the listeners of every instance (delivered on commit).
const ADVANCE_HEAD: &str = "WITH h AS (UPDATE portico_log_head SET position = $1 RETURNING position) \
     SELECT pg_notify($2, h.position::text) FROM h";

/// The writer's connection and the statements prepared on it (they live as long as it does).
struct WriterConnection {
    client: Client,
    lock_head: Statement,
    stream_versions: Statement,
    insert_events: Statement,
    advance_head: Statement,
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
        let (set, lock_head, stream_versions, insert_events, advance_head) = tokio::join!(
            biased;
            client.batch_execute(session),
            client.prepare(LOCK_HEAD),
            client.prepare(STREAM_VERSIONS),
            client.prepare(INSERT_EVENTS),
            client.prepare(ADVANCE_HEAD),
        );
        set.map_err(LogError::storage)?;
        Ok(WriterConnection {
            lock_head: lock_head.map_err(LogError::storage)?,
            stream_versions: stream_versions.map_err(LogError::storage)?,
            insert_events: insert_events.map_err(LogError::storage)?,
            advance_head: advance_head.map_err(LogError::storage)?,
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
}

type BatchOutcome = (Position, Vec<Result<Appended, AppendError>>);

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
            self.commit_batch(requests).await;
        }
    }

    /// Commits one batch and answers its appenders; if the transaction fails as a whole, each
    /// request is retried alone so that one bad request cannot fail the others.
    async fn commit_batch(&mut self, requests: Vec<AppendRequest>) {
        match self.write_batch(&requests).await {
            Ok((head, outcomes)) => {
                self.shared.publish(head);
                batch::reply_all(requests, outcomes);
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

    /// Runs one batch transaction in two round trips, each a pipeline of statements that the
    /// server runs in order: `BEGIN`, the head lock and the stream versions; then the insert,
    /// the head update with its notification, and `COMMIT`. If any statement fails, the
    /// transaction is rolled back (statements pipelined after the failure fail as well, and
    /// PostgreSQL turns the `COMMIT` of a failed transaction into a rollback).
    async fn write_batch(&mut self, requests: &[AppendRequest]) -> Result<BatchOutcome, LogError> {
        let channel = self.channel.clone();
        let connection = self.connection().await?;
        let result = run_batch(connection, &channel, requests).await;
        if result.is_err() {
            // Ends the failed transaction, if it is still open; a connection that cannot even
            // do that is replaced before the next batch.
            if connection.client.batch_execute("ROLLBACK").await.is_err() {
                self.connection = None;
            }
        }
        result
    }
}

async fn run_batch(
    connection: &WriterConnection,
    channel: &str,
    requests: &[AppendRequest],
) -> Result<BatchOutcome, LogError> {
    let client = &connection.client;
    let streams = batch::streams_of(requests);
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
        return Ok((plan.head, plan.outcomes));
    }
    let now = Utc::now();
    let mut positions = Vec::with_capacity(plan.rows.len());
    let mut stream_ids = Vec::with_capacity(plan.rows.len());
    let mut stream_versions = Vec::with_capacity(plan.rows.len());
    let mut event_ids: Vec<Uuid> = Vec::with_capacity(plan.rows.len());
    let mut event_types = Vec::with_capacity(plan.rows.len());
    let mut schema_versions: Vec<i16> = Vec::with_capacity(plan.rows.len());
    let mut actors = Vec::with_capacity(plan.rows.len());
    let mut correlation_ids: Vec<Uuid> = Vec::with_capacity(plan.rows.len());
    let mut payloads = Vec::with_capacity(plan.rows.len());
    for row in &plan.rows {
        positions.push(to_i64(row.position));
        stream_ids.push(row.stream_id);
        stream_versions.push(to_i64(row.stream_version));
        event_ids.push(row.event.event_id);
        event_types.push(row.event.event_type);
        schema_versions.push(i16::try_from(row.event.schema_version).unwrap_or(i16::MAX));
        actors.push(row.metadata.actor.as_str());
        correlation_ids.push(row.metadata.correlation_id);
        payloads.push(row.event.payload.as_str());
    }
    let new_head = to_i64(plan.head);
    let insert_params: [&(dyn ToSql + Sync); 10] = [
        &positions,
        &stream_ids,
        &stream_versions,
        &event_ids,
        &event_types,
        &schema_versions,
        &now,
        &actors,
        &correlation_ids,
        &payloads,
    ];
    let head_params: [&(dyn ToSql + Sync); 2] = [&new_head, &channel];
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
    Ok((plan.head, plan.outcomes))
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
    let (notified_tx, mut notified) = mpsc::unbounded_channel::<Option<Position>>();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let _ = notified_tx.send(n.payload().parse().ok());
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
            Some(shared) => shared.publish(head),
            None => return Ok(()),
        }
        while let Some(payload) = notified.recv().await {
            let Some(shared) = shared.upgrade() else { return Ok(()) };
            match payload {
                Some(head) => shared.publish(head),
                None => shared.publish(read_head(&client).await?),
            }
        }
        Err(LogError::Closed)
    }
    .await;
    driver.abort();
    result
}
