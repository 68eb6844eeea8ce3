//! The event log's metrics, recorded through the `metrics` facade: whichever recorder the
//! process installs (the HTTP front end installs a Prometheus one) receives them, and without
//! one they cost next to nothing.
//!
//! Every name is here, with its help text in [`describe`]; labels take only values from small
//! fixed sets (the backend, an outcome).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram};

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

/// Whether Portico's exporter is the process's recorder (see [`exporter_installed`]).
static EXPORTER: AtomicBool = AtomicBool::new(false);

/// Says that Portico's exporter is now the process's recorder, for the rest of its life (the
/// facade's global recorder is set once). From then on, [`Kept`] handles are registered once
/// and kept.
pub fn exporter_installed() {
    EXPORTER.store(true, Ordering::Release);
}

/// A metric handle with fixed labels, registered once and kept instead of looked up in the
/// registry at every use (a key built, hashed and compared: about a microsecond a metric, and
/// an audited call records a dozen). It is kept only once Portico's exporter is the process's
/// recorder: a handle belongs to the recorder it came from, so one taken before that (or under
/// a test's local recorder) would record nowhere. Until then every use registers afresh.
#[derive(Debug)]
pub struct Kept<H>(OnceLock<H>);

impl<H: Clone> Kept<H> {
    pub const fn new() -> Self {
        Kept(OnceLock::new())
    }

    /// The handle, registered by `register` the first time.
    pub fn get(&self, register: impl FnOnce() -> H) -> H {
        self.get_if(EXPORTER.load(Ordering::Acquire), register)
    }

    /// [`Kept::get`], with `installed` saying whether the exporter is the recorder.
    fn get_if(&self, installed: bool, register: impl FnOnce() -> H) -> H {
        if installed { self.0.get_or_init(register).clone() } else { register() }
    }
}

impl<H: Clone> Default for Kept<H> {
    fn default() -> Self {
        Kept::new()
    }
}

/// How many label sets a [`KeptBy`] keeps at most. Past that, a set it does not hold is
/// registered at each use: the registry still counts it, only the shortcut is missing.
pub const MAX_KEPT_LABEL_SETS: usize = 4096;

/// Metric handles whose labels vary (ids the admin configured, values from small fixed sets),
/// each registered once per label set and kept, as [`Kept`] keeps one. A use looks its set up
/// by a key written from the label values into a buffer of the thread, so a handle already
/// kept costs no allocation: registering afresh builds a key of owned labels (an allocation
/// each), hashes and compares it.
#[derive(Debug)]
pub struct KeptBy<H>(OnceLock<RwLock<HashMap<Box<str>, H>>>);

thread_local! {
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<H: Clone> KeptBy<H> {
    pub const fn new() -> Self {
        KeptBy(OnceLock::new())
    }

    /// The handle of the label set written by `key` (its values, in a fixed order and with a
    /// separator none of them can contain), registered by `register` the first time.
    pub fn get(&self, key: fmt::Arguments<'_>, register: impl FnOnce() -> H) -> H {
        self.get_if(EXPORTER.load(Ordering::Acquire), key, register)
    }

    /// [`KeptBy::get`], with `installed` saying whether the exporter is the recorder.
    fn get_if(&self, installed: bool, key: fmt::Arguments<'_>, register: impl FnOnce() -> H) -> H {
        if !installed {
            return register();
        }
        let kept = self.0.get_or_init(RwLock::default);
        // The thread's buffer is released before `register` runs, so that `register` may use
        // another `KeptBy` on this thread without finding the buffer borrowed.
        let found = KEY.with_borrow_mut(|buffer| {
            buffer.clear();
            // Writing to a `String` does not fail.
            let _ = buffer.write_fmt(key);
            let kept = kept.read().unwrap_or_else(PoisonError::into_inner);
            kept.get(&**buffer).cloned().ok_or_else(|| Box::<str>::from(buffer.as_str()))
        });
        let key = match found {
            Ok(handle) => return handle,
            Err(key) => key,
        };
        let mut kept = kept.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = kept.get(&key) {
            return handle.clone();
        }
        let handle = register();
        if kept.len() < MAX_KEPT_LABEL_SETS {
            kept.insert(key, handle.clone());
        }
        handle
    }
}

impl<H: Clone> Default for KeptBy<H> {
    fn default() -> Self {
        KeptBy::new()
    }
}

/// Records an answered append.
pub(crate) fn append_answered<T>(outcome: &Result<T, AppendError>, took: Duration) {
    static OUTCOMES: [Kept<Counter>; 4] = [Kept::new(), Kept::new(), Kept::new(), Kept::new()];
    static DURATION: Kept<Histogram> = Kept::new();
    let (index, outcome) = match outcome {
        Ok(_) => (0, "ok"),
        Err(AppendError::Conflict { .. }) => (1, "conflict"),
        Err(AppendError::Invalid(_)) => (2, "invalid"),
        Err(AppendError::Log(_)) => (3, "error"),
    };
    OUTCOMES[index].get(|| counter!(LOG_APPENDS, "outcome" => outcome)).increment(1);
    DURATION.get(|| histogram!(LOG_APPEND_DURATION)).record(took);
}

/// The metrics of one backend's commits on one thread (see [`batch_committed`]).
#[derive(Debug)]
pub(crate) struct CommitMetrics {
    backend: &'static str,
    thread: &'static str,
    handles: Kept<CommitHandles>,
}

#[derive(Debug, Clone)]
struct CommitHandles {
    commits: Counter,
    duration: Histogram,
    appends: Histogram,
    events: Histogram,
}

impl CommitMetrics {
    /// The commits of `backend` run by `thread` (`writer` or `appender`).
    pub(crate) const fn new(backend: &'static str, thread: &'static str) -> Self {
        CommitMetrics { backend, thread, handles: Kept::new() }
    }
}

/// Records one committed (or failed) group-commit transaction.
pub(crate) fn batch_committed(
    metrics: &CommitMetrics,
    appends: usize,
    events: usize,
    took: Duration,
) {
    let (backend, thread) = (metrics.backend, metrics.thread);
    let handles = metrics.handles.get(|| CommitHandles {
        commits: counter!(LOG_COMMITS, "backend" => backend, "thread" => thread),
        duration: histogram!(LOG_COMMIT_DURATION, "backend" => backend),
        appends: histogram!(LOG_COMMIT_APPENDS, "backend" => backend),
        events: histogram!(LOG_COMMIT_EVENTS, "backend" => backend),
    });
    handles.commits.increment(1);
    handles.duration.record(took);
    handles.appends.record(appends as f64);
    handles.events.record(events as f64);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Until the exporter is installed, a kept handle is registered at every use (the recorder
    /// in effect may change); from then on, once.
    #[test]
    fn a_handle_is_kept_only_once_the_exporter_is_installed() {
        let registered = AtomicUsize::new(0);
        let kept: Kept<u8> = Kept::new();
        let register = || {
            registered.fetch_add(1, Ordering::Relaxed);
            7
        };
        // Through `get_if`: installing the exporter for real is for the rest of the process.
        assert_eq!((kept.get_if(false, register), kept.get_if(false, register)), (7, 7));
        assert_eq!(registered.load(Ordering::Relaxed), 2);
        assert_eq!((kept.get_if(true, register), kept.get_if(true, register)), (7, 7));
        assert_eq!(registered.load(Ordering::Relaxed), 3);
    }

    /// A label set is registered once, told apart from the others by its key; past the limit,
    /// a new set is registered at each use and the sets already kept stay kept.
    #[test]
    fn a_handle_is_kept_per_label_set_up_to_the_limit() {
        let registered = AtomicUsize::new(0);
        let kept: KeptBy<usize> = KeptBy::new();
        let get = |installed, set: usize| {
            kept.get_if(installed, format_args!("portal-{set} server"), || {
                registered.fetch_add(1, Ordering::Relaxed);
                set
            })
        };
        assert_eq!((get(false, 1), get(false, 1)), (1, 1));
        assert_eq!(registered.load(Ordering::Relaxed), 2, "not kept before the exporter");
        assert_eq!((get(true, 1), get(true, 2), get(true, 1), get(true, 2)), (1, 2, 1, 2));
        assert_eq!(registered.load(Ordering::Relaxed), 4);
        for set in 3..=MAX_KEPT_LABEL_SETS {
            assert_eq!(get(true, set), set);
        }
        assert_eq!(registered.load(Ordering::Relaxed), 2 + MAX_KEPT_LABEL_SETS);
        let over = MAX_KEPT_LABEL_SETS + 1;
        assert_eq!((get(true, over), get(true, over)), (over, over));
        assert_eq!(registered.load(Ordering::Relaxed), 4 + MAX_KEPT_LABEL_SETS, "not kept");
        assert_eq!(get(true, 7), 7);
        assert_eq!(registered.load(Ordering::Relaxed), 4 + MAX_KEPT_LABEL_SETS, "still kept");
    }
}
