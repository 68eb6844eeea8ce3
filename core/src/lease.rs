//! Leases: which Portico instance does a piece of background work (runs a Logpush job) when
//! several instances share one database.
//!
//! A lease is a name (`logpush-job:7`), a holder (one instance: `portico serve` uses the
//! instance id kept in its data directory, so a restarted instance gets its leases back at once)
//! and an expiry. [`Leases::hold`] takes a free or expired lease, or renews the caller's own, for a
//! time to live; while it has not expired nobody else gets it. A holder that stops renewing
//! (killed, partitioned from the database) loses it when the time to live runs out, and
//! another instance takes over.
//!
//! Two stores implement [`Leases`]: [`LocalLeases`] (in memory: the embedded SQLite log is
//! used by one process, so every lease is settled inside it) and [`postgres::PostgresLeases`]
//! (a table beside the PostgreSQL log, shared by every instance, with the database's clock as
//! the only clock). Both pass the same conformance suite.
//!
//! A lease is not a fence: an instance that stalls for longer than the time to live may still
//! finish the work it started while another has taken over. The work itself must tolerate that
//! (the Logpush worker records its batches with the job stream's expected version, so a stale
//! holder cannot record a batch twice).

pub mod postgres;

#[cfg(test)]
mod conformance;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// The longest lease name or holder accepted, in bytes.
pub const MAX_LEASE_NAME_LEN: usize = 200;
/// The shortest time to live accepted.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest time to live accepted.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("invalid lease request: {0}")]
    Invalid(String),
    #[error("lease storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl LeaseError {
    pub(crate) fn storage(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        LeaseError::Storage(Box::new(e))
    }
}

/// The operations every lease store offers.
#[async_trait]
pub trait Leases: Send + Sync + fmt::Debug {
    /// Takes the lease `name` for `holder` if it is free, expired or already `holder`'s, until
    /// `ttl` from now; whether `holder` holds it now. `false` means another holder has it.
    async fn hold(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, LeaseError>;

    /// Gives the lease up if `holder` holds it; does nothing otherwise.
    async fn release(&self, name: &str, holder: &str) -> Result<(), LeaseError>;

    /// Who holds the lease now, if anyone.
    async fn holder(&self, name: &str) -> Result<Option<String>, LeaseError>;
}

/// Checks the bounds of a lease request before it reaches a store.
pub(crate) fn validate(name: &str, holder: &str, ttl: Duration) -> Result<(), LeaseError> {
    for (what, value) in [("name", name), ("holder", holder)] {
        if value.is_empty() {
            return Err(LeaseError::Invalid(format!("the lease {what} must not be empty")));
        }
        if value.len() > MAX_LEASE_NAME_LEN {
            return Err(LeaseError::Invalid(format!(
                "the lease {what} is longer than {MAX_LEASE_NAME_LEN} bytes"
            )));
        }
    }
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(LeaseError::Invalid(format!(
            "a lease lives from {} s to {} s, not {ttl:?}",
            MIN_TTL.as_secs(),
            MAX_TTL.as_secs()
        )));
    }
    Ok(())
}

/// Leases kept in this process's memory: for the embedded SQLite log, which one process uses.
#[derive(Debug, Default)]
pub struct LocalLeases {
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl LocalLeases {
    pub fn new() -> LocalLeases {
        LocalLeases::default()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // A panic while the lock was held cannot leave the map half-written: every change is
        // one insert or remove.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Leases for LocalLeases {
    async fn hold(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, LeaseError> {
        validate(name, holder, ttl)?;
        let now = Instant::now();
        let mut held = self.held();
        let free = match held.get(name) {
            None => true,
            Some((current, expires)) => current == holder || *expires <= now,
        };
        if free {
            held.insert(name.to_owned(), (holder.to_owned(), now + ttl));
        }
        Ok(free)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), LeaseError> {
        let mut held = self.held();
        if held.get(name).is_some_and(|(current, _)| current == holder) {
            held.remove(name);
        }
        Ok(())
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, LeaseError> {
        let now = Instant::now();
        Ok(self
            .held()
            .get(name)
            .filter(|(_, expires)| *expires > now)
            .map(|(holder, _)| holder.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_leases_pass_the_conformance_suite() {
        conformance::run_all(Arc::new(LocalLeases::new())).await;
    }
}
