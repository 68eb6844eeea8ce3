//! The Access application of every portal, derived from the portals' events and the
//! applications' own ([`AccessAppUpdated`]): an application appears with its portal (with the
//! default settings), follows its name and hostname, and disappears with it.
//!
//! [`AccessApps::settings`] is what sign-in and the OAuth server read: every default resolved,
//! durations as [`Duration`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use portico_core::domain::access_app::{
    AccessAppConfiguration, AccessAppDirectory, AccessAppState, DynamicClientRegistration,
    access_app_aud, access_app_id,
};
use portico_core::domain::identity_provider::IdentityProviderId;
use portico_core::domain::ids::PortalId;
use portico_core::{Event, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Projection, ReadModels};

/// The Access application of one portal that exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessAppRecord {
    /// The application's id: the UUIDv5 of the portal id.
    pub id: Uuid,
    pub portal_id: PortalId,
    /// The audience tag, 64 hex characters derived from the portal id.
    pub aud: String,
    /// The portal's name.
    pub name: String,
    /// The portal's hostname.
    pub domain: String,
    /// The stream version of the `PortalAdded` that created the portal.
    pub generation: u64,
    pub configuration: AccessAppConfiguration,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A portal application's settings with every default resolved: what sign-in and the portal's
/// OAuth authorization server follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAppSettings {
    pub app_id: Uuid,
    /// The audience tag (`PortalAUD` in the portal's request logs).
    pub aud: String,
    /// The providers people may choose from. Empty: every provider of the account. An id whose
    /// provider no longer exists matches nothing (it is never widened to "every provider").
    pub allowed_idps: Vec<IdentityProviderId>,
    /// Go straight to the only allowed provider, without the choice page.
    pub auto_redirect_to_identity: bool,
    /// How long a sign-in lasts.
    pub session_duration: Duration,
    /// The block page's message.
    pub custom_deny_message: String,
    /// Where people who fail an identity rule are redirected instead of the block page.
    pub custom_deny_url: Option<String>,
    /// Where people who fail a non-identity rule are redirected.
    pub custom_non_identity_deny_url: Option<String>,
    pub oauth: OAuthSettings,
}

impl AccessAppSettings {
    /// Whether people may sign in to this application with provider `id` (which must exist:
    /// the caller looked it up).
    pub fn allows(&self, id: &IdentityProviderId) -> bool {
        self.allowed_idps.is_empty() || self.allowed_idps.contains(id)
    }
}

/// The portal's OAuth authorization server, with every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    pub enabled: bool,
    pub dynamic_client_registration: DynamicClientRegistration,
    /// How long an access token lives.
    pub access_token_lifetime: Duration,
    /// How long a grant (and the refresh tokens of it) lasts: `grant.session_duration`, else
    /// the application's `session_duration`.
    pub grant_session_duration: Duration,
}

impl AccessAppRecord {
    /// The settings with every default resolved.
    pub fn settings(&self) -> AccessAppSettings {
        let c = &self.configuration;
        let oauth = &c.oauth_configuration;
        AccessAppSettings {
            app_id: self.id,
            aud: self.aud.clone(),
            allowed_idps: c.allowed_idps.clone(),
            auto_redirect_to_identity: c.auto_redirect_to_identity,
            session_duration: c.session_duration.value(),
            custom_deny_message: c.custom_deny_message.clone(),
            custom_deny_url: c.custom_deny_url.clone(),
            custom_non_identity_deny_url: c.custom_non_identity_deny_url.clone(),
            oauth: OAuthSettings {
                enabled: oauth.enabled,
                dynamic_client_registration: oauth.dynamic_client_registration.clone(),
                access_token_lifetime: oauth.grant.access_token_lifetime.value(),
                grant_session_duration: oauth
                    .grant
                    .session_duration
                    .as_ref()
                    .unwrap_or(&c.session_duration)
                    .value(),
            },
        }
    }
}

/// The application of every portal, by portal id, with an index by application id; and the
/// state of every application stream (for deciding commands).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessApps {
    records: BTreeMap<PortalId, AccessAppRecord>,
    by_id: BTreeMap<Uuid, PortalId>,
    states: BTreeMap<PortalId, AccessAppState>,
}

impl AccessApps {
    /// The settings of portal `portal`'s application, every default resolved; `None` if the
    /// portal does not exist.
    pub fn settings(&self, portal: &PortalId) -> Option<AccessAppSettings> {
        self.records.get(portal).map(AccessAppRecord::settings)
    }

    /// The application with id `id`.
    pub fn get(&self, id: &Uuid) -> Option<&AccessAppRecord> {
        self.by_id.get(id).and_then(|portal| self.records.get(portal))
    }

    /// Portal `portal`'s application.
    pub fn by_portal(&self, portal: &PortalId) -> Option<&AccessAppRecord> {
        self.records.get(portal)
    }

    /// Every application, ordered by portal id.
    pub fn iter(&self) -> impl Iterator<Item = &AccessAppRecord> {
        self.records.values()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The state of portal `portal`'s application stream, for deciding a command.
    pub fn state(&self, portal: &PortalId) -> AccessAppState {
        self.states.get(portal).cloned().unwrap_or_default()
    }
}

impl Projection for AccessApps {
    const NAME: &'static str = "access_apps";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        let when = recorded.recorded_at;
        match &recorded.event {
            Event::PortalAdded(e) => {
                let id = access_app_id(&e.portal_id);
                self.by_id.insert(id, e.portal_id.clone());
                self.records.insert(
                    e.portal_id.clone(),
                    AccessAppRecord {
                        id,
                        portal_id: e.portal_id.clone(),
                        aud: access_app_aud(&e.portal_id),
                        name: e.settings.name.clone(),
                        domain: e.settings.hostname.clone(),
                        generation: recorded.stream_version,
                        configuration: AccessAppConfiguration::default(),
                        created_at: when,
                        updated_at: when,
                    },
                );
            }
            Event::PortalUpdated(e) => {
                if let Some(record) = self.records.get_mut(&e.portal_id) {
                    if record.name != e.settings.name || record.domain != e.settings.hostname {
                        record.name = e.settings.name.clone();
                        record.domain = e.settings.hostname.clone();
                        record.updated_at = when;
                    }
                }
            }
            Event::PortalRemoved(e) => {
                if let Some(record) = self.records.remove(&e.portal_id) {
                    self.by_id.remove(&record.id);
                }
            }
            Event::AccessAppUpdated(e) => {
                self.states.entry(e.portal_id.clone()).or_default().apply(&recorded.event);
                // Settings decided for an earlier portal with this id do not apply to this one.
                if let Some(record) = self.records.get_mut(&e.portal_id) {
                    if record.generation == e.portal_generation {
                        record.configuration = e.configuration.clone();
                        record.updated_at = when;
                    }
                }
            }
            // Other events do not change applications.
            _ => {}
        }
    }
}

/// The facts the application rules look up: the portals (by their applications, which exist
/// exactly while their portals do) and the identity providers.
impl AccessAppDirectory for ReadModels {
    fn portal_generation(&self, id: &PortalId) -> Option<u64> {
        self.access_apps.by_portal(id).map(|record| record.generation)
    }

    fn identity_provider_exists(&self, id: &IdentityProviderId) -> bool {
        self.identity_providers.get(id).is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use chrono::TimeZone;
    use portico_core::Actor;
    use portico_core::domain::access_app::AccessAppUpdated;
    use portico_core::domain::duration::GoDuration;
    use portico_core::domain::portal::{PortalAdded, PortalRemoved, PortalSettings, PortalUpdated};

    use super::*;

    fn recorded(position: u64, stream_version: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: "s".into(),
            stream_version,
            event_id: uuid::Uuid::now_v7(),
            schema_version: 1,
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + chrono::TimeDelta::seconds(i64::try_from(position).unwrap()),
            actor: Actor::system("test"),
            correlation_id: portico_core::CorrelationId::new(),
            event,
        }
    }

    fn eng() -> PortalId {
        PortalId::parse("eng").unwrap()
    }

    fn settings(name: &str, hostname: &str) -> PortalSettings {
        PortalSettings { name: name.into(), hostname: hostname.into(), ..PortalSettings::default() }
    }

    fn added(name: &str) -> Event {
        Event::PortalAdded(PortalAdded {
            portal_id: eng(),
            settings: settings(name, "eng.example.com"),
        })
    }

    fn configured(generation: u64, message: &str) -> Event {
        let mut configuration = AccessAppConfiguration {
            custom_deny_message: message.into(),
            ..AccessAppConfiguration::default()
        };
        configuration.oauth_configuration.grant.session_duration =
            Some(GoDuration::parse("f", "2h").unwrap());
        Event::AccessAppUpdated(AccessAppUpdated {
            portal_id: eng(),
            portal_generation: generation,
            configuration,
        })
    }

    #[test]
    fn an_application_lives_and_dies_with_its_portal() {
        let mut apps = AccessApps::default();
        apps.apply(&recorded(1, 1, added("Engineering")));
        let app = apps.by_portal(&eng()).unwrap().clone();
        assert_eq!(app.id, access_app_id(&eng()));
        assert_eq!(apps.get(&app.id).unwrap().portal_id, eng());
        assert_eq!((app.name.as_str(), app.domain.as_str()), ("Engineering", "eng.example.com"));
        assert_eq!(app.aud, access_app_aud(&eng()));
        assert_eq!(app.configuration, AccessAppConfiguration::default());

        let settings = apps.settings(&eng()).unwrap();
        assert_eq!(settings.session_duration, Duration::from_secs(86_400));
        assert_eq!(settings.oauth.access_token_lifetime, Duration::from_secs(900));
        assert_eq!(settings.oauth.grant_session_duration, Duration::from_secs(86_400));
        assert!(settings.allows(&portico_core::domain::identity_provider::one_time_pin_id()));

        apps.apply(&recorded(2, 1, configured(1, "No")));
        let settings = apps.settings(&eng()).unwrap();
        assert_eq!(settings.custom_deny_message, "No");
        assert_eq!(settings.oauth.grant_session_duration, Duration::from_secs(7200));

        apps.apply(&recorded(
            3,
            2,
            Event::PortalUpdated(PortalUpdated { portal_id: eng(), settings: settings_renamed() }),
        ));
        let app = apps.by_portal(&eng()).unwrap();
        assert_eq!((app.name.as_str(), app.domain.as_str()), ("Eng", "mcp.example.com"));
        assert_eq!(app.configuration.custom_deny_message, "No", "a rename keeps the settings");

        apps.apply(&recorded(4, 3, Event::PortalRemoved(PortalRemoved { portal_id: eng() })));
        assert!(apps.settings(&eng()).is_none());
        assert!(apps.get(&access_app_id(&eng())).is_none());
        assert_eq!(apps.state(&eng()).stream_version, 1, "the stream's state stays");

        // A portal created again with the same id starts from the defaults, and a change
        // decided for the old portal does not apply to it.
        apps.apply(&recorded(5, 4, added("Again")));
        assert_eq!(
            apps.settings(&eng()).unwrap().custom_deny_message,
            "That account does not have access"
        );
        apps.apply(&recorded(6, 2, configured(1, "stale")));
        assert_eq!(
            apps.settings(&eng()).unwrap().custom_deny_message,
            "That account does not have access"
        );
        apps.apply(&recorded(7, 3, configured(4, "fresh")));
        assert_eq!(apps.settings(&eng()).unwrap().custom_deny_message, "fresh");
        assert_eq!(apps.state(&eng()).stream_version, 3);
    }

    fn settings_renamed() -> PortalSettings {
        settings("Eng", "mcp.example.com")
    }
}
