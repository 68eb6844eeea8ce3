//! The log's most recent events, kept in memory by the backend's writer as it commits them.
//!
//! Every follower of the log (the read models, the call log, a Logpush job) reads the events
//! after its position as soon as the head moves. Without the tail, each of them would read the
//! same few events back from the database on a blocking thread, once per commit: at one commit
//! per `tools/call`, that was several database reads and thread hand-offs per call. With it, a
//! follower that is close behind the head is served from memory, and only one that fell further
//! behind (or starts) reads the database.
//!
//! The tail holds a contiguous run of positions, ending at the last commit of this process. A
//! commit that does not follow on from it (another process, such as the `portico` CLI on the same
//! SQLite file or another instance on PostgreSQL, committed in between) starts a new run, so the
//! tail never hides an event: a read it cannot serve completely from the start goes to the
//! database, and a read after its end goes to the database too (where another process's later
//! commits are).

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::Position;
use super::batch::PlannedRow;
use crate::event::RecordedEvent;

/// How many recent events the tail keeps at most.
pub(crate) const TAIL_EVENTS: usize = 1024;
/// How many bytes of stored payload the tail keeps at most: events have no size limit of their
/// own (a sync of a server with thousands of tools is one event), so a count alone would not
/// bound the tail's memory.
pub(crate) const TAIL_BYTES: usize = 4 * 1024 * 1024;

/// A committed event and the size of its stored payload.
pub(crate) type SizedEvent = (RecordedEvent, usize);

/// The last committed events of this process, in position order, without gaps.
#[derive(Debug)]
pub(crate) struct Tail {
    inner: Mutex<Held>,
    max_events: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Held {
    events: VecDeque<SizedEvent>,
    bytes: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Tail::with_limits(TAIL_EVENTS, TAIL_BYTES)
    }
}

impl Tail {
    pub(crate) fn with_limits(max_events: usize, max_bytes: usize) -> Self {
        Tail { inner: Mutex::default(), max_events, max_bytes }
    }

    /// Adds the events just committed, in position order. A run that does not start right
    /// after the tail's last event replaces the tail; the oldest events go when the tail holds
    /// more than its limits (all of them, if the newest alone is over the byte limit).
    pub(crate) fn extend(&self, committed: Vec<SizedEvent>) {
        let Some(first) = committed.first().map(|(e, _)| e.position) else { return };
        let mut held = self.lock();
        if held.events.back().is_some_and(|(last, _)| last.position + 1 != first) {
            held.events.clear();
            held.bytes = 0;
        }
        for (event, size) in committed {
            held.bytes += size;
            held.events.push_back((event, size));
        }
        while held.events.len() > self.max_events || held.bytes > self.max_bytes {
            let Some((_, size)) = held.events.pop_front() else { break };
            held.bytes -= size;
        }
    }

    /// The events after `after`, at most `limit` of them, if the tail holds the next one;
    /// `None` when the database must be read (the tail starts later, or ends at or before
    /// `after`).
    pub(crate) fn read_after(&self, after: Position, limit: usize) -> Option<Vec<RecordedEvent>> {
        let held = self.lock();
        let first = held.events.front()?.0.position;
        let last = held.events.back()?.0.position;
        if after + 1 < first || after >= last || limit == 0 {
            return None;
        }
        // Contiguous positions: the event after `after` is at index `after + 1 - first`.
        let start = usize::try_from(after + 1 - first).ok()?;
        Some(held.events.iter().skip(start).take(limit).map(|(e, _)| e.clone()).collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The events of a committed batch as a reader of the database gets them: `rows` are the
/// batch's planned rows, `recorded_at` the time written into them, as stored (whole
/// microseconds), with the sizes of their payloads.
pub(crate) fn recorded(rows: &[PlannedRow<'_>], recorded_at: DateTime<Utc>) -> Vec<SizedEvent> {
    rows.iter()
        .map(|row| {
            let event = RecordedEvent {
                position: row.position,
                stream_id: row.stream_id.to_owned(),
                stream_version: row.stream_version,
                event_id: row.event.event_id,
                recorded_at,
                actor: row.metadata.original.actor.clone(),
                correlation_id: row.metadata.original.correlation_id,
                schema_version: row.event.schema_version,
                event: row.event.original.clone(),
            };
            (event, row.event.payload.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::ids::ServerId;
    use crate::domain::server::ServerRemoved;
    use crate::event::{Actor, CorrelationId, Event};

    fn at(position: Position) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: "s".into(),
            stream_version: position,
            event_id: uuid::Uuid::now_v7(),
            recorded_at: Utc::now(),
            actor: Actor::System { component: "tests".into() },
            correlation_id: CorrelationId::new(),
            schema_version: 1,
            event: Event::ServerRemoved(ServerRemoved {
                server_id: ServerId::parse(format!("s{position}")).unwrap(),
            }),
        }
    }

    fn sized(positions: std::ops::RangeInclusive<Position>, size: usize) -> Vec<SizedEvent> {
        positions.map(|p| (at(p), size)).collect()
    }

    fn positions(events: Option<Vec<RecordedEvent>>) -> Option<Vec<Position>> {
        events.map(|events| events.iter().map(|e| e.position).collect())
    }

    #[test]
    fn serves_only_reads_it_holds_from_their_start() {
        let tail = Tail::with_limits(4, 1000);
        assert_eq!(positions(tail.read_after(0, 10)), None, "empty");
        tail.extend(sized(5..=7, 10));
        assert_eq!(positions(tail.read_after(4, 10)), Some(vec![5, 6, 7]));
        assert_eq!(positions(tail.read_after(5, 1)), Some(vec![6]));
        assert_eq!(positions(tail.read_after(3, 10)), None, "position 4 is not held");
        assert_eq!(positions(tail.read_after(7, 10)), None, "after the end: storage");
        assert_eq!(positions(tail.read_after(5, 0)), None);
    }

    #[test]
    fn keeps_the_newest_and_restarts_on_a_gap() {
        let tail = Tail::with_limits(4, 1000);
        tail.extend(sized(1..=3, 10));
        tail.extend(sized(4..=6, 10));
        assert_eq!(positions(tail.read_after(2, 10)), Some(vec![3, 4, 5, 6]));
        assert_eq!(positions(tail.read_after(1, 10)), None, "trimmed");
        // Another process committed 7 and 8.
        tail.extend(sized(9..=9, 10));
        assert_eq!(positions(tail.read_after(6, 10)), None);
        assert_eq!(positions(tail.read_after(8, 10)), Some(vec![9]));
    }

    #[test]
    fn keeps_no_more_bytes_than_its_limit() {
        let tail = Tail::with_limits(1024, 100);
        tail.extend(sized(1..=4, 30));
        assert_eq!(positions(tail.read_after(1, 10)), Some(vec![2, 3, 4]), "90 bytes kept");
        assert_eq!(positions(tail.read_after(0, 10)), None, "the oldest went");
        // An event larger than the limit on its own: nothing is kept, storage serves it.
        tail.extend(sized(5..=5, 101));
        assert_eq!(positions(tail.read_after(4, 10)), None);
        tail.extend(sized(6..=6, 10));
        assert_eq!(positions(tail.read_after(5, 10)), Some(vec![6]));
    }
}
