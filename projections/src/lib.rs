//! Read models folded from Portico's event log, and the runner that keeps them current.
//!
//! A read model is a [`Projection`]: a pure fold over [`RecordedEvent`]s. The
//! [`runner::ProjectionRunner`] drives it from the log by checkpoint (never by an in-process
//! callback after a commit), so a crash can only cause a replay, never a silently stale view.
//! Replaying from position 0 rebuilds exactly the state that incremental application reached.

pub mod access;
pub mod access_apps;
pub mod aggregates;
pub mod audit;
pub mod call_log;
pub mod catalog;
pub mod checkpoint;
pub mod grants;
pub mod identity_providers;
pub mod logpush_jobs;
pub mod metrics;
pub mod policies;
pub mod portal_views;
pub mod read_models;
pub mod runner;
pub mod service_tokens;
pub mod sign_ins;

use portico_core::RecordedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use access::{Access, TokenRecord};
pub use access_apps::{AccessAppRecord, AccessAppSettings, AccessApps, OAuthSettings};
pub use aggregates::Aggregates;
pub use audit::{AuditAction, AuditEntry, AuditTrail, ResourceType, audit_entry, resource_values};
pub use catalog::{CatalogServer, ServerCatalog};
pub use checkpoint::{Checkpoint, CheckpointStore, FileCheckpointStore, NoCheckpoints};
pub use grants::{Grants, LiveGrant};
pub use identity_providers::{IdentityProviderRecord, IdentityProviders};
pub use logpush_jobs::{LogpushJobRecord, LogpushJobs};
pub use policies::PolicyCatalog;
pub use portal_views::{
    EffectiveOverride, PortalRecord, PortalServerView, PortalView, PortalViews,
};
pub use read_models::ReadModels;
pub use runner::{ProjectionError, ProjectionRunner, RunnerOptions};
pub use service_tokens::{ServiceTokenRecord, ServiceTokens};
pub use sign_ins::{SignIns, UserRecord};

/// A read model: a fold over the log's events.
///
/// `apply` must be deterministic and depend only on the state and the event, so that a replay
/// from position 0 and incremental application reach the same state. The state is serialisable
/// so the runner can store it with its checkpoint and start from there.
///
/// A read model folds configuration, not calls: the runner is not woken by each call record
/// (`PortalRequestHandled`), and applies them in bulk with the next change, every
/// `RECORDS_PER_WAKE` positions or at its poll (see `EventLog::watch_changes`). Calls are the
/// call log's ([`call_log::CallLog`]), which follows every commit.
pub trait Projection:
    Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Names the projection's checkpoint.
    const NAME: &'static str;
    /// The shape of the stored state. Bump it when `apply` or the state changes: a checkpoint
    /// with another version is discarded and the projection is rebuilt from position 0.
    const VERSION: u32;

    /// Folds one event.
    fn apply(&mut self, event: &RecordedEvent);
}
