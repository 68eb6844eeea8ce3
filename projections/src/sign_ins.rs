//! People and the clients they use: registered OAuth clients, browser sessions of the portals'
//! pages (by the hash of their cookie), consents, and every person who signed in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use portico_core::domain::Aggregate;
use portico_core::domain::ids::PortalId;
use portico_core::domain::sign_in::{BrowserSessionState, OAuthClientRegistered, UserSignedIn};
use portico_core::{Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// A person who signed in at least once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub name: String,
    /// The identity provider of their last sign-in.
    pub idp: String,
    pub first_seen: DateTime<Utc>,
    pub last_login: DateTime<Utc>,
}

/// Registered clients, browser sessions, consents and people.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignIns {
    clients: BTreeMap<String, OAuthClientRegistered>,
    sessions: BTreeMap<String, BrowserSessionState>,
    by_session_hash: BTreeMap<String, String>,
    /// `(user id, client id, portal)`.
    consents: BTreeSet<(String, String, PortalId)>,
    users: BTreeMap<String, UserRecord>,
}

impl SignIns {
    /// The registered client `client_id`.
    pub fn client(&self, client_id: &str) -> Option<&OAuthClientRegistered> {
        self.clients.get(client_id)
    }

    /// The registered clients of `portal`.
    pub fn clients_of<'a>(
        &'a self,
        portal: &'a PortalId,
    ) -> impl Iterator<Item = &'a OAuthClientRegistered> {
        self.clients.values().filter(move |c| &c.portal_id == portal)
    }

    /// The state of browser session `id` for deciding a command.
    pub fn session_state(&self, id: &str) -> BrowserSessionState {
        self.sessions.get(id).cloned().unwrap_or_default()
    }

    /// The browser session whose cookie hashes to `hash`, if it is signed in at `now`.
    pub fn live_session(&self, hash: &str, now: DateTime<Utc>) -> Option<&UserSignedIn> {
        let state = self.sessions.get(self.by_session_hash.get(hash)?)?;
        if state.is_live(now) { state.session.as_ref() } else { None }
    }

    /// The live browser sessions of `user_id` at `portal`.
    pub fn sessions_of<'a>(
        &'a self,
        user_id: &'a str,
        portal: &'a PortalId,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a UserSignedIn> {
        self.sessions.values().filter(move |s| s.is_live(now)).filter_map(move |s| {
            s.session.as_ref().filter(|s| s.user.id == user_id && &s.portal_id == portal)
        })
    }

    /// The live browser sessions of `user_id` at any portal.
    pub fn sessions_of_user<'a>(
        &'a self,
        user_id: &'a str,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a UserSignedIn> {
        self.sessions
            .values()
            .filter(move |s| s.is_live(now))
            .filter_map(move |s| s.session.as_ref().filter(|s| s.user.id == user_id))
    }

    /// Whether `user_id` let `client_id` use `portal` as them.
    pub fn has_consent(&self, user_id: &str, client_id: &str, portal: &PortalId) -> bool {
        self.consents.contains(&(user_id.to_owned(), client_id.to_owned(), portal.clone()))
    }

    /// Everyone who signed in, by email.
    pub fn users(&self) -> impl Iterator<Item = &UserRecord> {
        self.users.values()
    }

    /// The person with this email address (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<&UserRecord> {
        self.users.get(&email.to_ascii_lowercase())
    }
}

impl Projection for SignIns {
    const NAME: &'static str = "sign_ins";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::OAuthClientRegistered(e) => {
                self.clients.insert(e.client_id.clone(), e.clone());
            }
            Event::OAuthClientRemoved(e) => {
                self.clients.remove(&e.client_id);
            }
            Event::ConsentGiven(e) => {
                self.consents.insert((e.user_id.clone(), e.client_id.clone(), e.portal_id.clone()));
            }
            event @ Event::UserSignedIn(e) => {
                self.by_session_hash.insert(e.session_hash.clone(), e.session_id.clone());
                self.sessions.entry(e.session_id.clone()).or_default().apply(event);
                let at = recorded.recorded_at;
                let user =
                    self.users.entry(e.user.email.to_ascii_lowercase()).or_insert_with(|| {
                        UserRecord {
                            id: e.user.id.clone(),
                            email: e.user.email.clone(),
                            name: e.user.name.clone(),
                            idp: e.user.idp.clone(),
                            first_seen: at,
                            last_login: at,
                        }
                    });
                user.name.clone_from(&e.user.name);
                user.idp.clone_from(&e.user.idp);
                user.last_login = at;
            }
            event @ Event::UserSignedOut(e) => {
                if let Some(state) = self.sessions.get_mut(&e.session_id) {
                    state.apply(event);
                    if let Some(session) = &state.session {
                        self.by_session_hash.remove(&session.session_hash);
                    }
                }
            }
            _ => {}
        }
    }
}
