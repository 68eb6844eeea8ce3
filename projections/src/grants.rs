//! OAuth grants, as the token endpoint decides against them and as the MCP endpoint
//! authenticates bearer tokens: by grant id, and by the hash of each live code and token.
//!
//! Only hashes are here. A revoked grant keeps its state (a replayed refresh token is told the
//! grant was revoked) but its access token and code stop resolving at once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use portico_core::domain::Aggregate;
use portico_core::domain::grant::{GrantAuthorized, GrantState};
use portico_core::domain::ids::PortalId;
use portico_core::{Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// Every grant, with indexes by token hash and by person and portal.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Grants {
    by_id: BTreeMap<String, GrantState>,
    by_code: BTreeMap<String, String>,
    by_access_token: BTreeMap<String, String>,
    /// Current and rotated-away refresh tokens.
    by_refresh_token: BTreeMap<String, String>,
    /// `(user id, portal id)` -> grant ids.
    by_user: BTreeMap<(String, PortalId), BTreeSet<String>>,
}

/// A live access token's grant, as the MCP endpoint needs it.
#[derive(Debug, Clone, Copy)]
pub struct LiveGrant<'a> {
    pub grant: &'a GrantAuthorized,
    pub access_expires_at: DateTime<Utc>,
}

impl Grants {
    /// The state of grant `id` for deciding a command (the default state if it never existed).
    pub fn state(&self, id: &str) -> GrantState {
        self.by_id.get(id).cloned().unwrap_or_default()
    }

    /// The id of the grant whose authorization code hashes to `hash`.
    pub fn by_code_hash(&self, hash: &str) -> Option<&str> {
        self.by_code.get(hash).map(String::as_str)
    }

    /// The id of the grant that issued the refresh token hashing to `hash` (current or
    /// rotated away).
    pub fn by_refresh_token_hash(&self, hash: &str) -> Option<&str> {
        self.by_refresh_token.get(hash).map(String::as_str)
    }

    /// The id of the grant whose current access token hashes to `hash`, revoked or not.
    pub fn by_access_token_hash(&self, hash: &str) -> Option<&str> {
        self.by_access_token.get(hash).map(String::as_str)
    }

    /// The grant of the access token hashing to `hash`, if the token is valid at `now`.
    pub fn live_access_token(&self, hash: &str, now: DateTime<Utc>) -> Option<LiveGrant<'_>> {
        let state = self.by_id.get(self.by_access_token.get(hash)?)?;
        if !state.access_valid(now) {
            return None;
        }
        Some(LiveGrant {
            grant: state.grant.as_ref()?,
            access_expires_at: state.access_expires_at?,
        })
    }

    /// The ids of the grants `user_id` holds at `portal`, live or not.
    pub fn of_user(&self, user_id: &str, portal: &PortalId) -> impl Iterator<Item = &str> {
        self.by_user
            .get(&(user_id.to_owned(), portal.clone()))
            .into_iter()
            .flat_map(|ids| ids.iter().map(String::as_str))
    }

    /// The ids of the grants issued to `client_id`.
    pub fn of_client<'a>(&'a self, client_id: &'a str) -> impl Iterator<Item = &'a str> {
        self.by_id
            .iter()
            .filter(move |(_, s)| s.grant.as_ref().is_some_and(|g| g.client_id == client_id))
            .map(|(id, _)| id.as_str())
    }

    /// The ids of the grants `user_id` holds at any portal.
    pub fn of_user_anywhere<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = &'a str> {
        self.by_user
            .iter()
            .filter(move |((user, _), _)| user == user_id)
            .flat_map(|(_, ids)| ids.iter().map(String::as_str))
    }
}

impl Projection for Grants {
    const NAME: &'static str = "grants";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        let event = &recorded.event;
        let id = match event {
            Event::GrantAuthorized(e) => {
                self.by_code.insert(e.code_hash.clone(), e.grant_id.clone());
                self.by_user
                    .entry((e.user.id.clone(), e.portal_id.clone()))
                    .or_default()
                    .insert(e.grant_id.clone());
                &e.grant_id
            }
            Event::GrantCodeRedeemed(e) => {
                self.by_access_token.insert(e.access_token_hash.clone(), e.grant_id.clone());
                self.by_refresh_token.insert(e.refresh_token_hash.clone(), e.grant_id.clone());
                &e.grant_id
            }
            Event::GrantRefreshed(e) => {
                if let Some(old) =
                    self.by_id.get(&e.grant_id).and_then(|s| s.access_token_hash.as_ref())
                {
                    self.by_access_token.remove(old);
                }
                self.by_access_token.insert(e.access_token_hash.clone(), e.grant_id.clone());
                self.by_refresh_token.insert(e.refresh_token_hash.clone(), e.grant_id.clone());
                &e.grant_id
            }
            Event::GrantRevoked(e) => &e.grant_id,
            _ => return,
        };
        let state = self.by_id.entry(id.clone()).or_default();
        state.apply(event);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use portico_core::domain::grant::{
        GrantCodeRedeemed, GrantRefreshed, GrantRevoked, GrantUser, RevokeReason,
    };
    use portico_core::{Actor, CorrelationId};
    use uuid::Uuid;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap()
    }

    fn recorded(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: "grant-g".into(),
            stream_version: position,
            event_id: Uuid::now_v7(),
            recorded_at: t0(),
            actor: Actor::system("test"),
            correlation_id: CorrelationId::new(),
            schema_version: 1,
            event,
        }
    }

    #[test]
    fn tokens_resolve_while_live_and_stop_on_rotation_and_revocation() {
        let mut grants = Grants::default();
        let portal = PortalId::parse("team").unwrap();
        grants.apply(&recorded(
            1,
            Event::GrantAuthorized(GrantAuthorized {
                grant_id: "g".into(),
                portal_id: portal.clone(),
                client_id: "c".into(),
                redirect_uri: "http://127.0.0.1/cb".into(),
                code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
                code_hash: "code".into(),
                code_expires_at: t0() + TimeDelta::minutes(1),
                resource: "https://team.example.com/mcp".into(),
                scope: None,
                user: GrantUser {
                    id: "u".into(),
                    email: "u@example.com".into(),
                    name: "U".into(),
                    idp: "otp".into(),
                    groups: vec![],
                    claims: Default::default(),
                },
                session_expires_at: t0() + TimeDelta::hours(1),
            }),
        ));
        assert_eq!(grants.by_code_hash("code"), Some("g"));
        grants.apply(&recorded(
            2,
            Event::GrantCodeRedeemed(GrantCodeRedeemed {
                grant_id: "g".into(),
                access_token_hash: "a1".into(),
                access_expires_at: t0() + TimeDelta::minutes(15),
                refresh_token_hash: "r1".into(),
            }),
        ));
        let now = t0() + TimeDelta::minutes(1);
        assert_eq!(grants.live_access_token("a1", now).unwrap().grant.user.id, "u");
        assert!(grants.live_access_token("a1", t0() + TimeDelta::minutes(16)).is_none());
        grants.apply(&recorded(
            3,
            Event::GrantRefreshed(GrantRefreshed {
                grant_id: "g".into(),
                access_token_hash: "a2".into(),
                access_expires_at: t0() + TimeDelta::minutes(30),
                refresh_token_hash: "r2".into(),
            }),
        ));
        assert!(grants.live_access_token("a1", now).is_none(), "the old access token is gone");
        assert!(grants.live_access_token("a2", now).is_some());
        assert_eq!(grants.by_refresh_token_hash("r1"), Some("g"), "kept to detect replays");
        assert_eq!(grants.of_user("u", &portal).collect::<Vec<_>>(), ["g"]);
        grants.apply(&recorded(
            4,
            Event::GrantRevoked(GrantRevoked {
                grant_id: "g".into(),
                reason: RevokeReason::SignedOut,
            }),
        ));
        assert!(grants.live_access_token("a2", now).is_none());
    }
}
