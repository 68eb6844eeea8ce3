//! The time the application decides expiries by.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The system clock, which a test may move forward (never back) to reach an expiry (an access
/// token's lifetime, a grant's session, a service token's duration) without waiting for it.
/// Every expiry the application checks reads this clock, so what a test sees after
/// [`Clock::advance`] is what a client would see that much later.
#[derive(Debug, Default)]
pub struct Clock {
    advanced_ms: AtomicI64,
}

impl Clock {
    /// Now, as the application sees it.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.advanced_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.advanced_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_by_that_much() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now();
        assert!(after - before >= TimeDelta::hours(1), "{before} → {after}");
        assert!(after - before < TimeDelta::hours(1) + TimeDelta::seconds(5), "{before} → {after}");
    }
}
