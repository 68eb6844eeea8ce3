//! The projections' metrics, recorded through the `metrics` facade (see `portico_core::metrics`).

use metrics::{Unit, describe_gauge};

/// Events in the log that a projection has not applied yet, by `projection`.
pub const PROJECTION_LAG: &str = "portico_projection_lag_events";

/// Registers the help text and unit of every metric above with the installed recorder.
pub fn describe() {
    describe_gauge!(
        PROJECTION_LAG,
        Unit::Count,
        "Events in the log that a projection has not applied yet (log head minus projected position)."
    );
}
