//! Subscriptions: catch up from a position, then follow the log live.
//!
//! A subscription reads the log in batches after its last position. When it has caught up it
//! waits for the backend's head to move (this instance's commits, PostgreSQL notifications), and
//! polls at a slow interval as well, so that an append by another process that sends no
//! notification (the `portico` CLI on the same SQLite file) is still seen. A follower of
//! configuration only waits for the changes head instead ([`Subscription::waking_on_changes`]).
//! Because positions are gap-free and in commit order, "everything after my last position"
//! never skips nor repeats an event; a gap would mean a corrupt log and is reported as
//! [`LogError::Gap`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{EventLog, LogError, Position};
use crate::event::RecordedEvent;

/// How many events one catch-up read fetches.
pub const DEFAULT_BATCH: usize = 1024;
/// How often a caught-up subscription looks for appends that sent no notification.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// An in-order stream of the log's events after a position.
#[derive(Debug)]
pub struct Subscription {
    log: Arc<dyn EventLog>,
    position: Position,
    buffer: VecDeque<RecordedEvent>,
    head: watch::Receiver<Position>,
    batch: usize,
    poll_interval: Duration,
    /// Whether the next wait must be preceded by a read even if the head has not moved.
    poll_due: bool,
}

impl Subscription {
    /// Follows `log` from the event after `after` (`0`: from the beginning).
    pub fn new(log: Arc<dyn EventLog>, after: Position) -> Self {
        let head = log.watch_head();
        Subscription {
            log,
            position: after,
            buffer: VecDeque::new(),
            head,
            batch: DEFAULT_BATCH,
            poll_interval: DEFAULT_POLL_INTERVAL,
            poll_due: true,
        }
    }

    /// Sets how many events one read fetches.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Waits for the log's changes head ([`EventLog::watch_changes`]) instead of its head: a
    /// caught-up subscription is not woken by every commit of call records alone, only by a
    /// change, every [`super::RECORDS_PER_WAKE`] positions, or its poll. It still returns every
    /// event, in order; a call record may come up to one poll interval late. For followers
    /// that skip call records (the read models).
    pub fn waking_on_changes(mut self) -> Self {
        self.head = self.log.watch_changes();
        self
    }

    /// Sets how often a caught-up subscription polls.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The position of the last event returned (or the starting position).
    pub fn position(&self) -> Position {
        self.position
    }

    /// The next event, waiting for it if the subscription has caught up.
    ///
    /// A subscription that has reached the head it knows waits for the head to move without
    /// reading the log; it reads the log anyway on its first call and once per poll interval,
    /// for appends that moved no head here (another process on the same SQLite file).
    pub async fn next(&mut self) -> Result<RecordedEvent, LogError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.position = event.position;
                return Ok(event);
            }
            let behind = self.position < *self.head.borrow();
            // Any read counts as the poll that is due.
            let read = std::mem::take(&mut self.poll_due) || behind;
            if read && self.fill().await? {
                continue;
            }
            let position = self.position;
            let moved = self.head.wait_for(|head| *head > position);
            tokio::select! {
                changed = moved => {
                    // The sender lives as long as the log, which this subscription holds.
                    changed.map_err(|_| LogError::Closed)?;
                }
                () = tokio::time::sleep(self.poll_interval) => self.poll_due = true,
            }
        }
    }

    /// The events already in the log after the current position, up to one batch, without
    /// waiting. Empty when caught up.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, LogError> {
        if self.buffer.is_empty() && !self.fill().await? {
            return Ok(Vec::new());
        }
        let events: Vec<RecordedEvent> = self.buffer.drain(..).collect();
        if let Some(last) = events.last() {
            self.position = last.position;
        }
        Ok(events)
    }

    /// The events already read from the log but not yet returned, without touching the log.
    /// A consumer that applies events in batches calls it right after [`Subscription::next`].
    pub fn drain_buffered(&mut self) -> Vec<RecordedEvent> {
        let events: Vec<RecordedEvent> = self.buffer.drain(..).collect();
        if let Some(last) = events.last() {
            self.position = last.position;
        }
        events
    }

    /// Reads the next batch into the buffer; `false` when there was nothing to read.
    async fn fill(&mut self) -> Result<bool, LogError> {
        let events = self.log.read_all(self.position, self.batch).await?;
        for (expected, event) in (self.position + 1..).zip(&events) {
            // INVARIANT: positions are gap-free; anything else is a corrupt log.
            if event.position != expected {
                return Err(LogError::Gap { expected, found: event.position });
            }
        }
        let any = !events.is_empty();
        self.buffer.extend(events);
        Ok(any)
    }
}
