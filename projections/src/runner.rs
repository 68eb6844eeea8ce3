//! The projection runner: folds the log into a read model from its checkpoint, then follows the
//! log live, and lets a writer wait until its own write is visible (read-your-writes).

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use portico_core::log::{Subscription, subscription};
use portico_core::{EventLog, LogError, Position, RecordedEvent};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::Projection;
use crate::checkpoint::{Checkpoint, CheckpointStore};

/// Why a projection cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("checkpoint file `{path}`: {source}")]
    Checkpoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("projection state cannot be serialised: {0}")]
    Serialise(#[source] serde_json::Error),
    #[error(
        "projection `{name}` has not reached position {wanted} after {waited:?} (it is at {at})"
    )]
    Timeout { name: &'static str, wanted: Position, at: Position, waited: Duration },
    #[error("projection `{name}` stopped: {message}")]
    Stopped { name: &'static str, message: String },
}

impl ProjectionError {
    pub(crate) fn checkpoint(path: &std::path::Path, source: std::io::Error) -> Self {
        ProjectionError::Checkpoint { path: path.display().to_string(), source }
    }
}

/// Tuning of a runner.
#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    /// Events read from the log at once.
    pub batch: usize,
    /// A checkpoint is written once this many events have been applied since the last one...
    pub checkpoint_every: u64,
    /// ...and at least this much time has passed since it.
    pub checkpoint_interval: Duration,
    /// Wait before retrying after the log failed.
    pub retry_delay: Duration,
    /// How often the runner reads the log although no change woke it: for call records, which
    /// do not wake it (they are applied at the latest then), and for another process's appends.
    pub poll_interval: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            batch: 4096,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(60),
            retry_delay: Duration::from_secs(1),
            poll_interval: subscription::DEFAULT_POLL_INTERVAL,
        }
    }
}

/// Keeps one read model current.
#[derive(Debug)]
pub struct ProjectionRunner<P: Projection> {
    shared: Arc<Shared<P>>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared<P> {
    state: RwLock<P>,
    position: watch::Sender<Position>,
    /// The id of the event at `position`, for the checkpoint.
    last_event_id: Mutex<Option<uuid::Uuid>>,
    failure: Mutex<Option<String>>,
    store: Arc<dyn CheckpointStore>,
    /// Rung by a writer waiting for a position the runner has not applied: the runner's
    /// subscription is not woken by call records (see `Subscription::waking_on_changes`), so a
    /// wait for one would otherwise last until the next change or poll.
    behind: Notify,
}

impl<P: Projection> Drop for ProjectionRunner<P> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// Loads the checkpoint (if it is usable), catches up with the log, and starts following it.
    /// Returns once the read model has reached the head the log had when catching up ended.
    pub async fn start(
        log: Arc<dyn EventLog>,
        store: Arc<dyn CheckpointStore>,
        options: RunnerOptions,
    ) -> Result<Self, ProjectionError> {
        let (state, position, event_id) =
            load_checkpoint::<P>(log.as_ref(), store.as_ref()).await?;
        let (position_tx, _) = watch::channel(position);
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            position: position_tx,
            last_event_id: Mutex::new(event_id),
            failure: Mutex::new(None),
            store,
            behind: Notify::new(),
        });
        let subscription = follower(&log, position, options);
        let (subscription, applied) = catch_up(&shared, subscription).await?;
        if applied > 0 {
            shared.save_checkpoint()?;
        }
        tracing::info!(
            projection = P::NAME,
            position = subscription.position(),
            replayed = applied,
            "projection caught up"
        );
        let task = tokio::spawn(follow(Arc::clone(&shared), log, subscription, options));
        Ok(ProjectionRunner { shared, task })
    }

    /// Reads the current state. Do not hold the guard across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, P> {
        // A panic while applying cannot happen (apply is infallible and we do not panic in
        // library code); if it ever did, the state is still a consistent fold up to the last
        // event, so reading through the poison is fine.
        self.shared.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The position of the last event applied.
    pub fn position(&self) -> Position {
        *self.shared.position.borrow()
    }

    /// A receiver that sees the position move as events are applied.
    pub fn watch_position(&self) -> watch::Receiver<Position> {
        self.shared.position.subscribe()
    }

    /// Why the runner stopped following the log, if it did (it retries on its own).
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Waits until the read model has applied `position`, for at most `timeout`.
    pub async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let mut rx = self.shared.position.subscribe();
        if *rx.borrow() < position {
            self.shared.behind.notify_one();
        }
        let waited = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ProjectionError::Stopped {
                name: P::NAME,
                message: self.failure().unwrap_or_else(|| "the runner ended".into()),
            }),
            Err(_) => Err(ProjectionError::Timeout {
                name: P::NAME,
                wanted: position,
                at: self.position(),
                waited: timeout,
            }),
        }
    }

    /// Writes a checkpoint of the current state now (on shutdown, say).
    pub fn checkpoint(&self) -> Result<(), ProjectionError> {
        self.shared.save_checkpoint()
    }
}

impl<P: Projection> Shared<P> {
    fn apply(&self, events: &[RecordedEvent]) {
        let Some(last) = events.last() else { return };
        {
            let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for event in events {
                state.apply(event);
            }
        }
        if let Ok(mut id) = self.last_event_id.lock() {
            *id = Some(last.event_id);
        }
        self.position.send_replace(last.position);
    }

    /// A copy of the state with the position and event id it reflects.
    fn snapshot(&self) -> (P, Position, Option<uuid::Uuid>) {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Position and id are read under the state lock, so they match the state.
        let position = *self.position.borrow();
        let event_id = self.last_event_id.lock().ok().and_then(|id| *id);
        (state.clone(), position, event_id)
    }

    fn save_checkpoint(&self) -> Result<(), ProjectionError> {
        let (state, position, event_id) = self.snapshot();
        self.store_checkpoint(&state, position, event_id)
    }

    fn store_checkpoint(
        &self,
        state: &P,
        position: Position,
        event_id: Option<uuid::Uuid>,
    ) -> Result<(), ProjectionError> {
        let state = serde_json::value::to_raw_value(state).map_err(ProjectionError::Serialise)?;
        self.store.save(&Checkpoint {
            name: P::NAME.to_owned(),
            version: P::VERSION,
            position,
            event_id,
            state,
        })
    }
}

/// Loads a checkpoint if it fits this projection and this log; otherwise starts from 0.
async fn load_checkpoint<P: Projection>(
    log: &dyn EventLog,
    store: &dyn CheckpointStore,
) -> Result<(P, Position, Option<uuid::Uuid>), ProjectionError> {
    let fresh = Ok((P::default(), 0, None));
    let Some(checkpoint) = store.load(P::NAME)? else { return fresh };
    if checkpoint.version != P::VERSION || checkpoint.name != P::NAME {
        tracing::info!(
            projection = P::NAME,
            stored = checkpoint.version,
            current = P::VERSION,
            "projection changed; rebuilding from the start"
        );
        return fresh;
    }
    if checkpoint.position > 0 {
        let at = log.read_all(checkpoint.position - 1, 1).await?;
        let matches = at.first().is_some_and(|e| {
            e.position == checkpoint.position && Some(e.event_id) == checkpoint.event_id
        });
        if !matches {
            tracing::warn!(
                projection = P::NAME,
                position = checkpoint.position,
                "checkpoint does not belong to this log; rebuilding from the start"
            );
            return fresh;
        }
    }
    match serde_json::from_str::<P>(checkpoint.state.get()) {
        Ok(state) => Ok((state, checkpoint.position, checkpoint.event_id)),
        Err(error) => {
            tracing::warn!(projection = P::NAME, %error, "checkpoint state unreadable; rebuilding from the start");
            fresh
        }
    }
}

/// Applies everything the log holds now. The next batch is read (and decoded, on a blocking
/// thread) while the current one is applied, so replay uses both cores.
async fn catch_up<P: Projection>(
    shared: &Shared<P>,
    mut subscription: Subscription,
) -> Result<(Subscription, u64), ProjectionError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<RecordedEvent>, LogError>>(2);
    let reader = tokio::spawn(async move {
        loop {
            let batch = subscription.next_batch().await;
            let last = !matches!(&batch, Ok(events) if !events.is_empty());
            if tx.send(batch).await.is_err() || last {
                return subscription;
            }
        }
    });
    let mut applied = 0u64;
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        if batch.is_empty() {
            break;
        }
        applied += batch.len() as u64;
        shared.apply(&batch);
    }
    let subscription = reader.await.map_err(|e| ProjectionError::Stopped {
        name: P::NAME,
        message: format!("catch-up reader failed: {e}"),
    })?;
    Ok((subscription, applied))
}

/// The subscription a runner follows the log with from `position`: woken by changes, not by
/// every call record, which no read model folds.
fn follower(log: &Arc<dyn EventLog>, position: Position, options: RunnerOptions) -> Subscription {
    Subscription::new(Arc::clone(log), position)
        .with_batch(options.batch)
        .with_poll_interval(options.poll_interval)
        .waking_on_changes()
}

/// The next events to apply: those up to the next change (waiting for it), or, when a writer
/// waits for a position not applied yet, the next batch the log holds now (empty at its end).
async fn next_events<P>(
    shared: &Shared<P>,
    subscription: &mut Subscription,
) -> Result<Vec<RecordedEvent>, LogError> {
    // A subscription's `next` loses nothing when it is dropped before it is ready.
    tokio::select! {
        first = subscription.next() => {
            let mut batch = vec![first?];
            batch.extend(subscription.drain_buffered());
            Ok(batch)
        }
        () = shared.behind.notified() => {
            let batch = subscription.next_batch().await?;
            if !batch.is_empty() {
                // Once more, until the log is read to its end: a batch at a time.
                shared.behind.notify_one();
            }
            Ok(batch)
        }
    }
}

/// Follows the log live; retries after failures from where it stopped.
async fn follow<P: Projection>(
    shared: Arc<Shared<P>>,
    log: Arc<dyn EventLog>,
    mut subscription: Subscription,
    options: RunnerOptions,
) {
    let mut since_checkpoint = 0u64;
    let mut last_checkpoint = Instant::now();
    let mut writing: Option<JoinHandle<()>> = None;
    loop {
        match next_events(&shared, &mut subscription).await {
            Ok(batch) => {
                since_checkpoint += batch.len() as u64;
                shared.apply(&batch);
                if let Ok(mut failure) = shared.failure.lock() {
                    *failure = None;
                }
                let due = since_checkpoint >= options.checkpoint_every
                    && last_checkpoint.elapsed() >= options.checkpoint_interval;
                if due && writing.as_ref().is_none_or(JoinHandle::is_finished) {
                    since_checkpoint = 0;
                    last_checkpoint = Instant::now();
                    // Only the copy is made here; serialising and writing happen on a blocking
                    // thread, so the live fold (and the writers waiting on it) never stall.
                    let (state, position, event_id) = shared.snapshot();
                    let shared = Arc::clone(&shared);
                    writing = Some(tokio::task::spawn_blocking(move || {
                        if let Err(error) = shared.store_checkpoint(&state, position, event_id) {
                            tracing::warn!(projection = P::NAME, %error, "checkpoint not written");
                        }
                    }));
                }
            }
            Err(error) => {
                tracing::error!(projection = P::NAME, %error, "projection cannot read the log; retrying");
                if let Ok(mut failure) = shared.failure.lock() {
                    *failure = Some(error.to_string());
                }
                tokio::time::sleep(options.retry_delay).await;
                let position = *shared.position.borrow();
                subscription = follower(&log, position, options);
            }
        }
    }
}
