//! The projections' metrics, recorded through the `metrics` facade (see `portico_core::metrics`).

use metrics::{Unit, describe_gauge, gauge};
use portico_core::Position;

/// Events in the log that a projection has not applied yet, by `projection`.
pub const PROJECTION_LAG: &str = "portico_projection_lag_events";

/// Registers the help text and unit of every metric above with the installed recorder.
pub fn describe() {
    describe_gauge!(
        PROJECTION_LAG,
        Unit::Count,
        "Events in the log that a projection has not applied yet (log head minus projected position); the read models apply call records in bulk, up to 256 or 500 ms of them late."
    );
}

/// Sets `projection`'s lag: the log's `head` minus the `position` it has applied. Called when
/// the metrics are rendered rather than as events are applied, which took a task per projection
/// woken by every append and again by the projection's progress, only to set a gauge.
pub fn projection_lag(projection: &'static str, head: Position, position: Position) {
    gauge!(PROJECTION_LAG, "projection" => projection).set(head.saturating_sub(position) as f64);
}
