//! Service tokens, as the admin API shows them and as MCP clients authenticate with them: by id
//! and by client id. Only the SHA-256 of a client secret is ever here.
//!
//! A deleted token stays (marked deleted) and a rotated-away secret hash is remembered, so that
//! authentication can tell, in its logs, why a presented credential failed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use portico_core::domain::service_token::{ServiceToken, ServiceTokenState};
use portico_core::{Actor, Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// How many rotated-away secret hashes a token remembers.
pub const RETIRED_SECRETS_KEPT: usize = 8;

/// One service token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTokenRecord {
    /// The token's state, folded with the domain's own `apply` (the admin API decides
    /// commands against it).
    pub state: ServiceTokenState,
    /// The token as it was last, kept after deletion.
    pub token: ServiceToken,
    /// The hashes of earlier secrets, newest last (at most [`RETIRED_SECRETS_KEPT`]).
    pub retired_secret_hashes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Actor,
    /// When it was deleted; a deleted token no longer authenticates.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl ServiceTokenRecord {
    /// Whether the token exists (was not deleted).
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.token.expires_at.is_some_and(|at| at <= now)
    }
}

/// Every service token, by id, with an index by client id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceTokens {
    by_id: BTreeMap<String, ServiceTokenRecord>,
    by_client_id: BTreeMap<String, String>,
}

impl ServiceTokens {
    /// The token `id`, deleted or not.
    pub fn get(&self, id: &str) -> Option<&ServiceTokenRecord> {
        self.by_id.get(id)
    }

    /// The token with this client id, deleted or not.
    pub fn by_client_id(&self, client_id: &str) -> Option<&ServiceTokenRecord> {
        self.by_client_id.get(client_id).and_then(|id| self.by_id.get(id))
    }

    /// The state of token `id` for deciding a command (the default state if it never existed).
    pub fn state(&self, id: &str) -> ServiceTokenState {
        self.by_id.get(id).map(|r| r.state.clone()).unwrap_or_default()
    }

    /// The tokens that were not deleted, oldest first (ties by id).
    pub fn live(&self) -> impl Iterator<Item = &ServiceTokenRecord> {
        let mut live: Vec<&ServiceTokenRecord> =
            self.by_id.values().filter(|r| r.is_live()).collect();
        live.sort_by(|a, b| {
            a.created_at.cmp(&b.created_at).then_with(|| a.token.token_id.cmp(&b.token.token_id))
        });
        live.into_iter()
    }
}

impl Projection for ServiceTokens {
    const NAME: &'static str = "service_tokens";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        let event = &recorded.event;
        let id = match event {
            Event::ServiceTokenCreated(e) => {
                let mut state = ServiceTokenState::default();
                state.apply(event);
                let Some(token) = state.token.clone() else { return };
                self.by_client_id.insert(e.client_id.clone(), e.token_id.clone());
                self.by_id.insert(
                    e.token_id.clone(),
                    ServiceTokenRecord {
                        state,
                        token,
                        retired_secret_hashes: Vec::new(),
                        created_at: recorded.recorded_at,
                        created_by: recorded.actor.clone(),
                        updated_at: recorded.recorded_at,
                        updated_by: recorded.actor.clone(),
                        deleted_at: None,
                    },
                );
                return;
            }
            Event::ServiceTokenUpdated(e) => &e.token_id,
            Event::ServiceTokenRotated(e) => &e.token_id,
            Event::ServiceTokenDeleted(e) => &e.token_id,
            // Other events are not service tokens'.
            _ => return,
        };
        let Some(record) = self.by_id.get_mut(id) else { return };
        let previous_hash = record.token.secret_hash.clone();
        record.state.apply(event);
        if let Some(token) = &record.state.token {
            record.token = token.clone();
        }
        if record.token.secret_hash != previous_hash {
            record.retired_secret_hashes.push(previous_hash);
            if record.retired_secret_hashes.len() > RETIRED_SECRETS_KEPT {
                record.retired_secret_hashes.remove(0);
            }
        }
        record.updated_at = recorded.recorded_at;
        record.updated_by = recorded.actor.clone();
        if matches!(event, Event::ServiceTokenDeleted(_)) {
            record.deleted_at = Some(recorded.recorded_at);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use portico_core::domain::service_token::{
        ServiceTokenCreated, ServiceTokenDeleted, ServiceTokenRotated, ServiceTokenUpdated,
    };

    use super::*;

    const ID: &str = "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    const CLIENT: &str = "4d4ea9a30cb4d4d5fc8f77e8a4c21d0c.access";

    fn recorded(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: format!("service-token-{ID}"),
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

    #[test]
    fn tokens_by_id_and_client_id_through_their_life() {
        let mut tokens = ServiceTokens::default();
        tokens.apply(&recorded(
            1,
            Event::ServiceTokenCreated(ServiceTokenCreated {
                token_id: ID.into(),
                client_id: CLIENT.into(),
                name: "CI".into(),
                secret_hash: "a".repeat(64),
                duration: "forever".into(),
                expires_at: None,
            }),
        ));
        assert_eq!(tokens.by_client_id(CLIENT).unwrap().token.name, "CI");
        assert_eq!(tokens.state(ID).stream_version, 1);
        tokens.apply(&recorded(
            2,
            Event::ServiceTokenRotated(ServiceTokenRotated {
                token_id: ID.into(),
                secret_hash: "b".repeat(64),
            }),
        ));
        tokens.apply(&recorded(
            3,
            Event::ServiceTokenUpdated(ServiceTokenUpdated {
                token_id: ID.into(),
                name: "Deploy".into(),
                duration: "1h".into(),
                expires_at: Some(Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap()),
            }),
        ));
        let record = tokens.get(ID).unwrap();
        assert_eq!(record.token.secret_hash, "b".repeat(64));
        assert_eq!(record.retired_secret_hashes, vec!["a".repeat(64)]);
        assert_eq!(record.token.name, "Deploy");
        assert!(record.updated_at > record.created_at);
        assert!(record.is_expired(Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap()));
        assert!(!record.is_expired(Utc.with_ymd_and_hms(2026, 1, 1, 0, 59, 59).unwrap()));
        assert_eq!(tokens.live().count(), 1);
        tokens.apply(&recorded(
            4,
            Event::ServiceTokenDeleted(ServiceTokenDeleted { token_id: ID.into() }),
        ));
        let record = tokens.by_client_id(CLIENT).unwrap();
        assert!(!record.is_live());
        assert_eq!(record.token.name, "Deploy", "the last state is kept");
        assert!(tokens.state(ID).deleted);
        assert_eq!(tokens.live().count(), 0);
    }
}
