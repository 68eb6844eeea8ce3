//! Recording calls: every `tools/call`, `prompts/get` and `resources/read` through a portal
//! appends one `PortalRequestHandled` event, and a call whose event cannot be appended is not
//! answered (fail closed). [`AuditHealth`] remembers that appends are failing, for readiness.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use portico_core::AppendError;

/// A failing audit log keeps the instance unready for this long after its last failure, unless
/// an append succeeds first. Without the limit an instance taken out of rotation would never
/// see the call whose successful append clears the failure.
pub const FAILURE_HOLD: Duration = Duration::from_secs(60);

/// A call's audit event could not be appended: the call must not be answered.
#[derive(Debug, thiserror::Error)]
#[error("the call's audit event could not be appended: {0}")]
pub struct AuditError(#[from] pub AppendError);

/// Appends of audit events that are failing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    /// When the first failure since the last successful append happened.
    pub since: DateTime<Utc>,
    /// When the latest failure happened.
    pub last: DateTime<Utc>,
    /// Failures since the last successful append.
    pub count: u64,
}

/// Whether audit appends are failing: set by a failure, cleared by the next success.
#[derive(Debug, Default)]
pub struct AuditHealth {
    failing: Mutex<Option<AuditFailure>>,
}

impl AuditHealth {
    /// Records a failed append at `now`.
    pub fn failed(&self, now: DateTime<Utc>) {
        let mut failing = self.lock();
        match failing.as_mut() {
            Some(failure) => {
                failure.last = now;
                failure.count += 1;
            }
            None => *failing = Some(AuditFailure { since: now, last: now, count: 1 }),
        }
    }

    /// Records a successful append: the log takes audit events again.
    pub fn succeeded(&self) {
        let mut failing = self.lock();
        if failing.is_some() {
            *failing = None;
        }
    }

    /// The current failure, if the last append failed less than [`FAILURE_HOLD`] before `now`.
    pub fn failing(&self, now: DateTime<Utc>) -> Option<AuditFailure> {
        let hold = chrono::Duration::from_std(FAILURE_HOLD).unwrap_or(chrono::Duration::MAX);
        self.lock().clone().filter(|failure| now - failure.last < hold)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<AuditFailure>> {
        self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    #[test]
    fn failures_are_counted_until_a_success_clears_them() {
        let health = AuditHealth::default();
        assert_eq!(health.failing(at(0)), None);
        health.failed(at(1));
        health.failed(at(5));
        assert_eq!(
            health.failing(at(6)),
            Some(AuditFailure { since: at(1), last: at(5), count: 2 })
        );
        health.succeeded();
        assert_eq!(health.failing(at(7)), None);
        health.failed(at(8));
        assert_eq!(health.failing(at(8)).map(|f| (f.since, f.count)), Some((at(8), 1)));
    }

    #[test]
    fn a_failure_stops_counting_against_readiness_after_the_hold() {
        let health = AuditHealth::default();
        health.failed(at(0));
        let hold = i64::try_from(FAILURE_HOLD.as_secs()).unwrap_or(i64::MAX);
        assert!(health.failing(at(hold - 1)).is_some());
        assert_eq!(health.failing(at(hold)), None);
        // A new failure makes it count again, with the first failure kept.
        health.failed(at(hold + 1));
        assert_eq!(health.failing(at(hold + 1)).map(|f| (f.since, f.count)), Some((at(0), 2)));
    }
}
