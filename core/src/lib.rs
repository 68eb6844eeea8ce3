//! Portico's core: the domain of MCP servers and portals, the event log that records every change
//! (SQLite and PostgreSQL backends behind one trait), and the secret vault.
//!
//! Nothing here knows about HTTP, Cedar or MCP: the crates above add those and talk to this one
//! through its events, commands and traits.

pub mod domain;
pub mod event;
pub mod lease;
pub mod log;
pub mod metrics;
pub mod upcast;
pub mod vault;
pub mod wire;

pub use event::{Actor, CorrelationId, Event, EventMetadata, NewEvent, RecordedEvent};
pub use lease::{LeaseError, Leases, LocalLeases};
pub use log::{AppendError, Durability, EventLog, ExpectedVersion, LogError, Position};
pub use vault::{KeySource, MasterKey, SecretRef, SecretString, Vault, VaultError, VaultStore};

#[cfg(test)]
mod test_postgres;
#[cfg(feature = "testing")]
pub mod testing;
