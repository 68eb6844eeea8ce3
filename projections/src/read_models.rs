//! The read models one Portico instance keeps, folded together so that a reader sees the
//! catalog and the portals at the same position, and composed into portal views on read.

use portico_core::RecordedEvent;
use portico_core::domain::ids::PortalId;
use serde::{Deserialize, Serialize};

use crate::access_apps::AccessApps;
use crate::grants::Grants;
use crate::identity_providers::IdentityProviders;
use crate::logpush_jobs::LogpushJobs;
use crate::portal_views::PortalRecord;
use crate::service_tokens::ServiceTokens;
use crate::sign_ins::SignIns;
use crate::{
    Access, Aggregates, AuditTrail, PolicyCatalog, PortalView, PortalViews, Projection,
    ServerCatalog,
};

/// The server catalog and the portals, at one position of the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadModels {
    pub catalog: ServerCatalog,
    pub portals: PortalViews,
    pub access: Access,
    pub audit: AuditTrail,
    pub aggregates: Aggregates,
    pub service_tokens: ServiceTokens,
    pub policies: PolicyCatalog,
    /// OAuth grants of signed-in people.
    #[serde(default)]
    pub grants: Grants,
    /// OAuth clients, browser sessions, consents and people.
    #[serde(default)]
    pub sign_ins: SignIns,
    /// The identity providers people sign in with.
    #[serde(default)]
    pub identity_providers: IdentityProviders,
    /// The Access application of every portal.
    #[serde(default)]
    pub access_apps: AccessApps,
    /// The Logpush jobs of the account.
    #[serde(default)]
    pub logpush_jobs: LogpushJobs,
    /// The position of the last event that changed what a portal shows (everything but the
    /// calls through portals): the data plane watches it to tell sessions their lists changed.
    #[serde(default)]
    pub config_position: u64,
}

impl ReadModels {
    /// The view of portal `id`: its existing servers with their effective overrides.
    pub fn portal(&self, id: &PortalId) -> Option<PortalView> {
        self.portals.get(id).map(|r| self.view(r))
    }

    /// The view of the portal served at `hostname`.
    pub fn portal_by_hostname(&self, hostname: &str) -> Option<PortalView> {
        self.portals.by_hostname(hostname).map(|r| self.view(r))
    }

    /// Composes the view of one portal record with the catalog.
    pub fn view(&self, record: &PortalRecord) -> PortalView {
        record.view(|id| self.catalog.get(id).map(|s| &s.settings))
    }
}

impl Projection for ReadModels {
    const NAME: &'static str = "read_models";
    // Versions only ever go up, so any part's bump changes this sum.
    const VERSION: u32 = ServerCatalog::VERSION
        + PortalViews::VERSION
        + Access::VERSION
        + AuditTrail::VERSION
        + Aggregates::VERSION
        + ServiceTokens::VERSION
        + PolicyCatalog::VERSION
        + Grants::VERSION
        + SignIns::VERSION
        + IdentityProviders::VERSION
        + AccessApps::VERSION
        + LogpushJobs::VERSION;

    fn apply(&mut self, event: &RecordedEvent) {
        use portico_core::Event;
        match &event.event {
            // A call changes no read model here; the call log is the Logpush worker's.
            Event::PortalRequestHandled(_) => return,
            // Sign-ins change no portal's contents: sessions are not told their lists changed.
            Event::GrantAuthorized(_)
            | Event::GrantCodeRedeemed(_)
            | Event::GrantRefreshed(_)
            | Event::GrantRevoked(_) => {
                self.grants.apply(event);
                return;
            }
            Event::UserSignedIn(_)
            | Event::UserSignedOut(_)
            | Event::SignInFailed(_)
            | Event::OAuthClientRegistered(_)
            | Event::OAuthClientRemoved(_)
            | Event::ConsentGiven(_) => {
                self.sign_ins.apply(event);
                return;
            }
            // Upstream authorizations change only a server's authentication status.
            Event::UpstreamAuthorized(_)
            | Event::UpstreamTokenRefreshed(_)
            | Event::UpstreamAuthorizationFailed(_)
            | Event::UpstreamAuthorizationRevoked(_) => {
                self.catalog.apply(event);
                return;
            }
            // Logpush jobs change no portal's contents either (and the worker reports every
            // delivery): only their own read model and the audit trail see them.
            Event::LogpushJobIdReserved(_)
            | Event::LogpushJobCreated(_)
            | Event::LogpushJobUpdated(_)
            | Event::LogpushJobDeleted(_)
            | Event::LogpushJobDelivered(_)
            | Event::LogpushJobFailed(_)
            | Event::LogpushJobBatchPlanned(_) => {
                self.logpush_jobs.apply(event);
                self.audit.apply(event);
                return;
            }
            _ => {}
        }
        self.config_position = event.position;
        self.catalog.apply(event);
        self.portals.apply(event);
        self.access.apply(event);
        self.audit.apply(event);
        self.aggregates.apply(event);
        self.service_tokens.apply(event);
        self.policies.apply(event);
        self.identity_providers.apply(event);
        self.access_apps.apply(event);
    }
}
