//! Batches: which log positions go into a job's next object.
//!
//! The worker follows the log after the job's checkpoint and feeds every event to a
//! [`BatchBuilder`]. The batch covers every position it was fed (kept records or not), and is
//! full at the first of the job's three limits ([`Limits`]): records, bytes (estimated from the
//! records' text), or time since its first record. Once full, the worker records the range as
//! planned, then builds the object from exactly that range of the log ([`records_of`]), so a
//! batch rebuilt after a crash holds the same records, in the same order, encoded to the same
//! bytes.

use std::time::Duration;

use portico_core::{Position, RecordedEvent};

use crate::audit::AuditLogRecord;
use crate::dataset::Dataset;
use crate::filter::Filter;
use crate::options::OutputFormat;
use crate::record::{McpPortalLog, Record, Row};

/// `max_upload_records` when a job sets none (the product's default).
pub const DEFAULT_MAX_RECORDS: usize = 100_000;
/// `max_upload_bytes` when a job sets none (the product's default: 5 MB).
pub const DEFAULT_MAX_BYTES: usize = 5_000_000;
/// `max_upload_interval_seconds` when a job sets none (the product's default).
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(30);
/// A range with no record moves the checkpoint once it spans this many events, so a job whose
/// filter keeps nothing does not re-read an ever longer range after each restart.
pub const MAX_EMPTY_RANGE: u64 = 100_000;

/// When a batch is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_interval: Duration,
}

impl Limits {
    /// The limits of a job's `max_upload_*` settings (`None` or 0: the default; `interval`
    /// replaces the default interval, as the deployment's setting does).
    pub fn of_job(
        records: Option<i64>,
        bytes: Option<i64>,
        interval_seconds: Option<i64>,
        default_interval: Duration,
    ) -> Limits {
        let set = |v: Option<i64>| v.filter(|v| *v > 0).and_then(|v| usize::try_from(v).ok());
        Limits {
            max_records: set(records).unwrap_or(DEFAULT_MAX_RECORDS),
            max_bytes: set(bytes).unwrap_or(DEFAULT_MAX_BYTES),
            max_interval: set(interval_seconds)
                .map(|s| Duration::from_secs(s as u64))
                .unwrap_or(default_interval),
        }
    }
}

/// What a job keeps of the log: the records of its dataset (`format.dataset`) that pass its
/// filter and sampling.
#[derive(Debug, Clone)]
pub struct Selection {
    pub job_id: u64,
    pub filter: Option<Filter>,
    pub format: OutputFormat,
    /// The account (`OwnerID` of `audit_logs` rows).
    pub owner_id: String,
}

impl Selection {
    /// The record of `event`, if the job keeps it. An `audit_logs` record's `OldValue` and
    /// `NewValue` are not filled yet ([`crate::audit::fill_values`]).
    pub fn keep(&self, event: &RecordedEvent) -> Option<Record> {
        let record = match self.format.dataset {
            Dataset::McpPortalLogs => Record::Call(McpPortalLog::from_recorded(event)?),
            Dataset::AuditLogs => {
                Record::Audit(AuditLogRecord::from_recorded(event, &self.owner_id)?)
            }
        };
        if self.filter.as_ref().is_some_and(|f| !f.matches(&record)) {
            return None;
        }
        self.format.samples(self.job_id, record.position()).then_some(record)
    }
}

/// The records a job keeps from `events` (a range of the log, in order).
pub fn records_of<'a>(
    selection: &Selection,
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Vec<Record> {
    events.into_iter().filter_map(|e| selection.keep(e)).collect()
}

/// The batch being filled.
#[derive(Debug)]
pub struct BatchBuilder {
    limits: Limits,
    first: Position,
    last: Option<Position>,
    records: usize,
    bytes: usize,
    /// When the first record came in.
    opened: Option<tokio::time::Instant>,
}

impl BatchBuilder {
    /// An empty batch starting at position `first`.
    pub fn new(limits: Limits, first: Position) -> BatchBuilder {
        BatchBuilder { limits, first, last: None, records: 0, bytes: 0, opened: None }
    }

    /// Takes the next event of the log and whether the job keeps it.
    pub fn push(&mut self, event: &RecordedEvent, kept: Option<&impl Row>) {
        self.last = Some(event.position);
        if let Some(record) = kept {
            self.records += 1;
            self.bytes += record.estimated_size();
            self.opened.get_or_insert_with(tokio::time::Instant::now);
        }
    }

    /// The range fed so far.
    pub fn range(&self) -> Option<(Position, Position)> {
        self.last.map(|last| (self.first, last))
    }

    /// How many records the batch holds.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Whether the records or bytes limit is reached.
    pub fn is_full(&self) -> bool {
        self.records >= self.limits.max_records || self.bytes >= self.limits.max_bytes
    }

    /// When the interval limit closes the batch (`None` while it holds no record).
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.opened.map(|opened| opened + self.limits.max_interval)
    }

    /// Whether a batch with no record has grown long enough to move the checkpoint past it.
    pub fn is_long_and_empty(&self) -> bool {
        self.records == 0
            && self.last.is_some_and(|last| last.saturating_sub(self.first) + 1 >= MAX_EMPTY_RANGE)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{call_event, other_event};

    fn selection(filter: Option<Filter>) -> Selection {
        Selection { job_id: 1, filter, format: OutputFormat::default(), owner_id: "acct".into() }
    }

    fn limits(records: usize) -> Limits {
        Limits { max_records: records, max_bytes: 1 << 30, max_interval: Duration::from_secs(30) }
    }

    #[test]
    fn job_limits_take_the_defaults_for_unset_and_zero() {
        let default = Duration::from_secs(30);
        assert_eq!(
            Limits::of_job(None, Some(0), None, default),
            Limits {
                max_records: DEFAULT_MAX_RECORDS,
                max_bytes: DEFAULT_MAX_BYTES,
                max_interval: default
            }
        );
        let set = Limits::of_job(Some(1_000), Some(5_000_000), Some(60), Duration::from_secs(1));
        assert_eq!(
            set,
            Limits {
                max_records: 1_000,
                max_bytes: 5_000_000,
                max_interval: Duration::from_secs(60)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_covers_every_event_fed_and_fills_at_the_first_limit() {
        let selection = selection(None);
        let mut batch = BatchBuilder::new(limits(2), 5);
        assert_eq!((batch.range(), batch.deadline()), (None, None));
        let other = other_event(5);
        batch.push(&other, selection.keep(&other).as_ref());
        assert_eq!((batch.range(), batch.records(), batch.deadline()), (Some((5, 5)), 0, None));
        let call = call_event(6);
        batch.push(&call, selection.keep(&call).as_ref());
        let opened = tokio::time::Instant::now();
        assert_eq!(batch.deadline(), Some(opened + Duration::from_secs(30)));
        assert!(!batch.is_full());
        tokio::time::advance(Duration::from_secs(5)).await;
        let call = call_event(7);
        batch.push(&call, selection.keep(&call).as_ref());
        // The deadline runs from the first record.
        assert_eq!(batch.deadline(), Some(opened + Duration::from_secs(30)));
        assert!(batch.is_full());
        assert_eq!(batch.range(), Some((5, 7)));
    }

    #[test]
    fn the_bytes_limit_fills_a_batch() {
        let mut batch = BatchBuilder::new(
            Limits { max_records: 1_000, max_bytes: 1, max_interval: DEFAULT_MAX_INTERVAL },
            1,
        );
        let call = call_event(1);
        let record = McpPortalLog::from_recorded(&call);
        batch.push(&call, record.as_ref());
        assert!(batch.is_full());
    }

    #[test]
    fn the_filter_and_sampling_decide_what_is_kept() {
        let filter =
            Filter::parse(r#"{"where":{"key":"Success","operator":"eq","value":false}}"#).unwrap();
        let events = [call_event(1), other_event(2), call_event(3)];
        // The test calls succeed: the filter keeps none of them.
        assert!(records_of(&selection(Some(filter)), &events).is_empty());
        let kept: Vec<_> =
            records_of(&selection(None), &events).iter().map(Row::position).collect();
        assert_eq!(kept, [1, 3]);
    }

    #[test]
    fn a_long_range_without_records_is_reported() {
        let mut batch = BatchBuilder::new(limits(10), 1);
        batch.push(&other_event(MAX_EMPTY_RANGE - 1), None::<&Record>);
        assert!(!batch.is_long_and_empty());
        batch.push(&other_event(MAX_EMPTY_RANGE), None::<&Record>);
        assert!(batch.is_long_and_empty());
    }
}
