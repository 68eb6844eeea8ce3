//! The account and its API tokens, as the admin API needs them to authenticate requests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use portico_core::domain::account::{AccountId, TokenScope};
use portico_core::{Actor, Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// One API token (never its secret: only the SHA-256 of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token_id: String,
    pub name: String,
    pub scope: TokenScope,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    /// When it was revoked; a revoked token no longer authenticates.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// The account id and every API token, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Access {
    account_id: Option<AccountId>,
    tokens: BTreeMap<String, TokenRecord>,
}

impl Access {
    /// The account id, once the account was created.
    pub fn account_id(&self) -> Option<&AccountId> {
        self.account_id.as_ref()
    }

    /// The token `id`, active or revoked.
    pub fn token(&self, id: &str) -> Option<&TokenRecord> {
        self.tokens.get(id)
    }

    /// Every token, ordered by id.
    pub fn tokens(&self) -> impl Iterator<Item = &TokenRecord> {
        self.tokens.values()
    }
}

impl Projection for Access {
    const NAME: &'static str = "access";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::AccountCreated(e) => self.account_id = Some(e.account_id.clone()),
            Event::ApiTokenCreated(e) => {
                self.tokens.insert(
                    e.token_id.clone(),
                    TokenRecord {
                        token_id: e.token_id.clone(),
                        name: e.name.clone(),
                        scope: e.scope,
                        secret_hash: e.secret_hash.clone(),
                        created_at: recorded.recorded_at,
                        created_by: recorded.actor.clone(),
                        revoked_at: None,
                    },
                );
            }
            Event::ApiTokenRevoked(e) => {
                if let Some(token) = self.tokens.get_mut(&e.token_id) {
                    token.revoked_at = Some(recorded.recorded_at);
                }
            }
            // Service tokens authenticate MCP clients, not the admin API: not here.
            _ => {}
        }
    }
}
