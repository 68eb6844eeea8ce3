//! The event log's metrics, recorded through the `metrics` facade: whichever recorder the
//! process installs (the HTTP front end installs a Prometheus one) receives them, and without
//! one they cost next to nothing.
//!
//! Every name is here, with its help text in [`describe`]; labels take only values from small
//! fixed sets (the backend, an outcome).

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

use crate::log::AppendError;

/// Appends answered, by `outcome` (`ok`, `conflict`, `invalid`, `error`).
pub const LOG_APPENDS: &str = "portico_log_appends_total";
/// Time from an append's submission to its answer (queueing, the batch's commit).
pub const LOG_APPEND_DURATION: &str = "portico_log_append_duration_seconds";
/// Time one group-commit transaction takes, by `backend`.
pub const LOG_COMMIT_DURATION: &str = "portico_log_commit_duration_seconds";
/// Group-commit transactions, by `backend` and the `thread` that ran them: `writer` (the
/// backend's writer) or `appender` (an idle SQLite log's appender, on its own thread).
pub const LOG_COMMITS: &str = "portico_log_commits_total";
/// Appends that shared one group-commit transaction, by `backend`.
pub const LOG_COMMIT_APPENDS: &str = "portico_log_commit_appends";
/// Events written by one group-commit transaction, by `backend`.
pub const LOG_COMMIT_EVENTS: &str = "portico_log_commit_events";

/// Registers the help text and unit of every metric above with the installed recorder (call it
/// once the recorder is installed).
pub fn describe() {
    describe_counter!(LOG_APPENDS, Unit::Count, "Appends to the event log answered, by outcome.");
    describe_histogram!(
        LOG_APPEND_DURATION,
        Unit::Seconds,
        "Time from an append's submission to its answer, including the wait for its group commit."
    );
    describe_histogram!(
        LOG_COMMIT_DURATION,
        Unit::Seconds,
        "Time one group-commit transaction of the event log takes."
    );
    describe_counter!(
        LOG_COMMITS,
        Unit::Count,
        "Group-commit transactions of the event log, by the thread that ran them (writer, appender)."
    );
    describe_histogram!(
        LOG_COMMIT_APPENDS,
        Unit::Count,
        "Appends committed together in one group-commit transaction."
    );
    describe_histogram!(
        LOG_COMMIT_EVENTS,
        Unit::Count,
        "Events written by one group-commit transaction."
    );
}

/// Records an answered append.
pub(crate) fn append_answered<T>(outcome: &Result<T, AppendError>, took: Duration) {
    let outcome = match outcome {
        Ok(_) => "ok",
        Err(AppendError::Conflict { .. }) => "conflict",
        Err(AppendError::Invalid(_)) => "invalid",
        Err(AppendError::Log(_)) => "error",
    };
    counter!(LOG_APPENDS, "outcome" => outcome).increment(1);
    histogram!(LOG_APPEND_DURATION).record(took);
}

/// Records one committed (or failed) group-commit transaction of `backend`.
pub(crate) fn batch_committed(
    backend: &'static str,
    thread: &'static str,
    appends: usize,
    events: usize,
    took: Duration,
) {
    counter!(LOG_COMMITS, "backend" => backend, "thread" => thread).increment(1);
    histogram!(LOG_COMMIT_DURATION, "backend" => backend).record(took);
    histogram!(LOG_COMMIT_APPENDS, "backend" => backend).record(appends as f64);
    histogram!(LOG_COMMIT_EVENTS, "backend" => backend).record(events as f64);
}
