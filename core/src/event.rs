//! The events of Portico's log and the envelope that records them.
//!
//! Every admin change and every call through a portal is one [`Event`]: a past-tense fact that
//! wraps a payload struct. The enum is `#[serde(tag = "type")]`, so the stored JSON of a
//! `ServerAdded` is `{"type":"ServerAdded", ...payload}`. A shipped payload never changes
//! incompatibly: a new shape bumps the variant's schema version in [`Event::schema_version`]
//! and gets an upcaster in [`crate::upcast`] that rewrites old JSON on read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::access_app::AccessAppUpdated;
use crate::domain::account::{AccountCreated, ApiTokenCreated, ApiTokenRevoked};
use crate::domain::call::PortalRequestHandled;
use crate::domain::grant::{GrantAuthorized, GrantCodeRedeemed, GrantRefreshed, GrantRevoked};
use crate::domain::hostname::{PortalHostnameClaimed, PortalHostnameReleased};
use crate::domain::identity_provider::{
    IdentityProviderCreated, IdentityProviderDeleted, IdentityProviderUpdated,
};
use crate::domain::logpush_job::{
    LogpushJobBatchPlanned, LogpushJobCreated, LogpushJobDeleted, LogpushJobDelivered,
    LogpushJobFailed, LogpushJobIdReserved, LogpushJobUpdated,
};
use crate::domain::policy::{PolicyCreated, PolicyDeleted, PolicySetReplaced, PolicyUpdated};
use crate::domain::portal::{PortalAdded, PortalRemoved, PortalUpdated};
use crate::domain::server::{
    ServerAdded, ServerCredentialSet, ServerRemoved, ServerSyncFailed, ServerSynced, ServerUpdated,
};
use crate::domain::service_token::{
    ServiceTokenCreated, ServiceTokenDeleted, ServiceTokenRotated, ServiceTokenUpdated,
};
use crate::domain::sign_in::{
    ConsentGiven, OAuthClientRegistered, OAuthClientRemoved, SignInFailed, UserSignedIn,
    UserSignedOut,
};
use crate::domain::upstream_auth::{
    UpstreamAuthorizationFailed, UpstreamAuthorizationRevoked, UpstreamAuthorized,
    UpstreamTokenRefreshed,
};

/// Declares the [`Event`] enum from one list of variants (each wraps the payload struct of the
/// same name), with the functions that must name every variant: adding an event is one line.
macro_rules! events {
    ($($variant:ident),* $(,)?) => {
        /// One fact in the log.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Event {
            $($variant($variant),)*
        }

        impl Event {
            /// The variant's name, as stored in the `type` field and the log's `event_type`
            /// column.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => stringify!($variant),)*
                }
            }

            /// Decodes a current-version payload straight into the variant named by
            /// `event_type`, skipping the buffering that serde needs to find an internal tag
            /// (this is the replay hot path). `None` for an unknown type.
            pub(crate) fn from_payload(
                event_type: &str,
                payload: &str,
            ) -> Option<serde_json::Result<Event>> {
                Some(match event_type {
                    $(stringify!($variant) => serde_json::from_str(payload).map(Event::$variant),)*
                    _ => return None,
                })
            }
        }
    };
}

events!(
    ServerAdded,
    ServerUpdated,
    ServerRemoved,
    ServerCredentialSet,
    ServerSynced,
    ServerSyncFailed,
    PortalAdded,
    PortalUpdated,
    PortalRemoved,
    PortalHostnameClaimed,
    PortalHostnameReleased,
    AccountCreated,
    ApiTokenCreated,
    ApiTokenRevoked,
    PolicyCreated,
    PolicyUpdated,
    PolicyDeleted,
    PolicySetReplaced,
    ServiceTokenCreated,
    ServiceTokenUpdated,
    ServiceTokenRotated,
    ServiceTokenDeleted,
    PortalRequestHandled,
    GrantAuthorized,
    GrantCodeRedeemed,
    GrantRefreshed,
    GrantRevoked,
    UserSignedIn,
    UserSignedOut,
    SignInFailed,
    OAuthClientRegistered,
    OAuthClientRemoved,
    ConsentGiven,
    IdentityProviderCreated,
    IdentityProviderUpdated,
    IdentityProviderDeleted,
    AccessAppUpdated,
    LogpushJobIdReserved,
    LogpushJobCreated,
    LogpushJobUpdated,
    LogpushJobDeleted,
    LogpushJobDelivered,
    LogpushJobFailed,
    LogpushJobBatchPlanned,
    UpstreamAuthorized,
    UpstreamTokenRefreshed,
    UpstreamAuthorizationFailed,
    UpstreamAuthorizationRevoked,
);

impl Event {
    /// The current schema version of this variant's payload. Bump it together with an upcaster
    /// in [`crate::upcast`] whenever the payload's shape changes.
    pub fn schema_version(&self) -> u16 {
        crate::upcast::current_version(self.event_type())
    }

    /// Whether this is the record of a call through a portal: the log's high-volume event,
    /// which changes no configuration. Followers that fold only configuration (the read
    /// models) are not woken for these one by one (see [`crate::EventLog::watch_changes`]).
    pub fn is_call_record(&self) -> bool {
        matches!(self, Event::PortalRequestHandled(_))
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A person, logged in through an identity provider.
    User { id: String, email: String },
    /// An admin API token, by its id (never its secret).
    ApiToken { id: String, name: String },
    /// A service token (machine client), by its token id: the id of
    /// `GET .../access/service_tokens/{id}` and of `Portico::ServiceToken::"<id>"` in policies,
    /// which stays the same for the token's life. Never its client id (the
    /// `CF-Access-Client-Id` header, a credential's public half), nor its secret.
    ServiceToken { id: String },
    /// Portico itself: start-up, background sync, migrations.
    System { component: String },
}

impl Actor {
    /// The actor for work Portico does on its own.
    pub fn system(component: impl Into<String>) -> Self {
        Actor::System { component: component.into() }
    }
}

/// Ties together the events caused by one request (an API call, an MCP call, a sync run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(pub Uuid);

impl CorrelationId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        CorrelationId(Uuid::now_v7())
    }
}

impl Default for CorrelationId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What the caller of an append says about the events it appends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub actor: Actor,
    pub correlation_id: CorrelationId,
}

impl EventMetadata {
    pub fn new(actor: Actor) -> Self {
        EventMetadata { actor, correlation_id: CorrelationId::new() }
    }

    pub fn with_correlation(actor: Actor, correlation_id: CorrelationId) -> Self {
        EventMetadata { actor, correlation_id }
    }
}

/// An event ready to be appended: the log assigns its position, stream version and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event: Event,
}

impl NewEvent {
    pub fn new(event: Event) -> Self {
        NewEvent { event_id: Uuid::now_v7(), event }
    }
}

impl From<Event> for NewEvent {
    fn from(event: Event) -> Self {
        NewEvent::new(event)
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position: starts at 1, gap-free, in commit order.
    pub position: u64,
    pub stream_id: String,
    /// Position within the stream: starts at 1, gap-free.
    pub stream_version: u64,
    /// UUIDv7, unique across the log.
    pub event_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    pub correlation_id: CorrelationId,
    /// The schema version the payload was written with (it has been upcast to the current
    /// shape in `event` if it was older).
    pub schema_version: u16,
    pub event: Event,
}
