//! Identity providers, as the admin API lists them and as sign-in finds them: by id, with the
//! OIDC configuration and where its client secret is in the vault (never the secret).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use portico_core::domain::identity_provider::{
    IdentityProviderConfig, IdentityProviderId, IdentityProviderState, IdentityProviderType,
    IdentityProviderUsage, OidcConfig,
};
use portico_core::domain::ids::PortalId;
use portico_core::vault::SecretRef;
use portico_core::{Actor, Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::{Projection, ReadModels};

/// One identity provider that exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProviderRecord {
    pub id: IdentityProviderId,
    /// Shown to people on the login page.
    pub name: String,
    pub config: IdentityProviderConfig,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Actor,
}

impl IdentityProviderRecord {
    pub fn provider_type(&self) -> IdentityProviderType {
        self.config.provider_type()
    }

    /// The OpenID Connect configuration, for an `oidc` provider.
    pub fn oidc(&self) -> Option<&OidcConfig> {
        match &self.config {
            IdentityProviderConfig::Oidc(oidc) => Some(oidc),
            IdentityProviderConfig::OneTimePin => None,
        }
    }

    /// Where the OIDC client secret is in the vault (`Vault::get` reads it).
    pub fn client_secret(&self) -> Option<SecretRef> {
        self.oidc().map(|oidc| oidc.client_secret(&self.id))
    }
}

/// Every identity provider that exists, and the state of every provider stream (deleted ones
/// included, for deciding commands).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdentityProviders {
    records: BTreeMap<IdentityProviderId, IdentityProviderRecord>,
    states: BTreeMap<IdentityProviderId, IdentityProviderState>,
}

impl IdentityProviders {
    /// Provider `id`, if it exists.
    pub fn get(&self, id: &IdentityProviderId) -> Option<&IdentityProviderRecord> {
        self.records.get(id)
    }

    /// Every provider that exists, oldest first (ties by id): the built-in one-time PIN
    /// provider of a fresh account comes first.
    pub fn iter(&self) -> impl Iterator<Item = &IdentityProviderRecord> {
        let mut all: Vec<&IdentityProviderRecord> = self.records.values().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        all.into_iter()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The state of provider `id`'s stream for deciding a command (the default state if it
    /// never existed).
    pub fn state(&self, id: &IdentityProviderId) -> IdentityProviderState {
        self.states.get(id).cloned().unwrap_or_default()
    }
}

impl Projection for IdentityProviders {
    const NAME: &'static str = "identity_providers";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        let event = &recorded.event;
        let id = match event {
            Event::IdentityProviderCreated(e) => e.identity_provider_id,
            Event::IdentityProviderUpdated(e) => e.identity_provider_id,
            Event::IdentityProviderDeleted(e) => e.identity_provider_id,
            // Other events are not identity providers'.
            _ => return,
        };
        let state = self.states.entry(id).or_default();
        state.apply(event);
        let Some(provider) = &state.provider else {
            self.records.remove(&id);
            return;
        };
        let (name, config) = (provider.settings.name.clone(), provider.settings.config.clone());
        let when = recorded.recorded_at;
        let who = recorded.actor.clone();
        match self.records.get_mut(&id) {
            Some(record) if !matches!(event, Event::IdentityProviderCreated(_)) => {
                record.name = name;
                record.config = config;
                record.updated_at = when;
                record.updated_by = who;
            }
            _ => {
                self.records.insert(
                    id,
                    IdentityProviderRecord {
                        id,
                        name,
                        config,
                        created_at: when,
                        created_by: who.clone(),
                        updated_at: when,
                        updated_by: who,
                    },
                );
            }
        }
    }
}

/// A provider is in use while an Access application lists it in `allowed_idps`.
impl IdentityProviderUsage for ReadModels {
    fn portals_allowing(&self, id: &IdentityProviderId) -> Vec<PortalId> {
        self.access_apps
            .iter()
            .filter(|app| app.configuration.allowed_idps.contains(id))
            .map(|app| app.portal_id.clone())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use chrono::TimeZone;
    use portico_core::domain::identity_provider::{
        IdentityProviderCreated, IdentityProviderDeleted, IdentityProviderSettings,
        IdentityProviderUpdated, one_time_pin_id,
    };

    use super::*;

    const OIDC: &str = "5b0b3f1e-8f7a-4c6e-9d2b-1a2b3c4d5e6f";

    fn recorded(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: "identity-provider-x".into(),
            stream_version: position,
            event_id: uuid::Uuid::now_v7(),
            schema_version: 1,
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + chrono::TimeDelta::seconds(i64::try_from(position).unwrap()),
            actor: Actor::system("test"),
            correlation_id: portico_core::CorrelationId::new(),
            event,
        }
    }

    fn oidc(secret_version: u32, client_id: &str) -> IdentityProviderSettings {
        IdentityProviderSettings {
            name: "SSO".into(),
            config: IdentityProviderConfig::Oidc(OidcConfig {
                client_id: client_id.into(),
                auth_url: "https://idp.example.com/a".into(),
                token_url: "https://idp.example.com/t".into(),
                certs_url: "https://idp.example.com/k".into(),
                scopes: vec!["openid".into()],
                claims: vec![],
                email_claim_name: "email".into(),
                pkce_enabled: true,
                groups_claim_name: "groups".into(),
                client_secret_version: secret_version,
            }),
        }
    }

    #[test]
    fn providers_through_their_life() {
        let id = IdentityProviderId::parse("id", OIDC).unwrap();
        let mut providers = IdentityProviders::default();
        providers.apply(&recorded(
            1,
            Event::IdentityProviderCreated(IdentityProviderCreated {
                identity_provider_id: id,
                settings: oidc(1, "a"),
            }),
        ));
        providers.apply(&recorded(
            2,
            Event::IdentityProviderCreated(IdentityProviderCreated {
                identity_provider_id: one_time_pin_id(),
                settings: IdentityProviderSettings {
                    name: "PIN".into(),
                    config: IdentityProviderConfig::OneTimePin,
                },
            }),
        ));
        let order: Vec<IdentityProviderId> = providers.iter().map(|r| r.id).collect();
        assert_eq!(order, [id, one_time_pin_id()], "oldest first");
        assert_eq!(providers.get(&one_time_pin_id()).unwrap().client_secret(), None);
        providers.apply(&recorded(
            3,
            Event::IdentityProviderUpdated(IdentityProviderUpdated {
                identity_provider_id: id,
                settings: oidc(2, "b"),
            }),
        ));
        let record = providers.get(&id).unwrap();
        assert_eq!(record.oidc().unwrap().client_id, "b");
        assert_eq!(
            record.client_secret(),
            Some(SecretRef::new(format!("identity-provider:{OIDC}"), "client_secret", 2))
        );
        assert!(record.updated_at > record.created_at);
        assert_eq!(providers.state(&id).stream_version, 2);
        providers.apply(&recorded(
            4,
            Event::IdentityProviderDeleted(IdentityProviderDeleted { identity_provider_id: id }),
        ));
        assert!(providers.get(&id).is_none());
        assert_eq!(providers.len(), 1);
        let state = providers.state(&id);
        assert_eq!((state.stream_version, state.next_client_secret_version()), (3, 3));
    }
}
