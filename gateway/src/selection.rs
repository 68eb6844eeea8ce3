//! Server selections in progress: what `portal_toggle_servers` (and a call to a server the
//! person has not authorized) hands out as `https://<portal host>/authorize?elicitationId=…`.
//!
//! A selection is bound to the person and portal it was made for (MCP elicitation's rule: the
//! page checks that whoever opens it is signed in as that person) and to the MCP session that
//! asked, whose server toggles the page changes. The id is 128 random bits and carries nothing
//! else: no person, no server, no credential. Selections expire after [`SELECTION_LIFETIME`];
//! a person holds at most [`MAX_PER_USER`] at once (the oldest go first).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portico_core::domain::ids::{PortalId, ServerId};

use crate::session::PortalSession;

/// How long a selection link works.
pub const SELECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Selections one person holds at once.
pub const MAX_PER_USER: usize = 16;
/// Selections held at once, over everyone.
pub const MAX_SELECTIONS: usize = 10_000;

/// One selection: whose, and the session it changes.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The `elicitationId`.
    pub id: String,
    pub portal_id: PortalId,
    pub user_id: String,
    /// The session that asked (its toggles are the ones the page shows and changes).
    pub session: PortalSession,
    created: Instant,
}

/// Every selection in progress.
#[derive(Debug, Default)]
pub struct Selections {
    inner: Mutex<HashMap<String, Selection>>,
}

impl Selections {
    /// Opens a selection for `user_id` at `portal_id` on behalf of `session`; returns its id.
    pub fn open(&self, portal_id: PortalId, user_id: String, session: PortalSession) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut inner = self.lock();
        inner.retain(|_, s| s.created.elapsed() < SELECTION_LIFETIME);
        let mut mine: Vec<(String, Instant)> = inner
            .iter()
            .filter(|(_, s)| s.user_id == user_id)
            .map(|(k, s)| (k.clone(), s.created))
            .collect();
        mine.sort_by_key(|(_, created)| *created);
        for (old, _) in mine.iter().take((mine.len() + 1).saturating_sub(MAX_PER_USER)) {
            inner.remove(old);
        }
        if inner.len() >= MAX_SELECTIONS {
            if let Some(oldest) =
                inner.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| k.clone())
            {
                inner.remove(&oldest);
            }
        }
        inner.insert(
            id.clone(),
            Selection { id: id.clone(), portal_id, user_id, session, created: Instant::now() },
        );
        id
    }

    /// The selection `id`, while it lasts.
    pub fn get(&self, id: &str) -> Option<Selection> {
        self.lock().get(id).filter(|s| s.created.elapsed() < SELECTION_LIFETIME).cloned()
    }

    /// Forgets every selection of a person (they signed out).
    pub fn remove_user(&self, user_id: &str) {
        self.lock().retain(|_, s| s.user_id != user_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Selection>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The servers toggled off in one session, or for one portal grant: `None` until first needed
/// (then the portal's `default_disabled` servers).
pub type Toggles = Arc<Mutex<Option<HashSet<ServerId>>>>;

/// Grants whose toggles are kept at once; past this the oldest half is forgotten (their
/// clients start again from the portal's defaults).
pub const MAX_GRANT_TOGGLES: usize = 100_000;

/// The toggles of stateless (2026-07-28) clients, which have no MCP session to keep them in:
/// per portal grant (MCP spec §1.7 of the product: "scoped to the user's portal OAuth grant").
#[derive(Debug, Default)]
pub struct GrantToggles {
    inner: Mutex<HashMap<(PortalId, String), (Toggles, Instant)>>,
}

impl GrantToggles {
    /// The toggles of grant `grant_id` at `portal_id`.
    pub fn of(&self, portal_id: &PortalId, grant_id: &str) -> Toggles {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.len() >= MAX_GRANT_TOGGLES {
            let mut ages: Vec<Instant> = inner.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            inner.retain(|_, (_, at)| *at > cut);
        }
        let entry = inner
            .entry((portal_id.clone(), grant_id.to_owned()))
            .or_insert_with(|| (Toggles::default(), Instant::now()));
        entry.1 = Instant::now();
        Arc::clone(&entry.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn grant_toggles_are_shared_per_portal_grant() {
        let toggles = GrantToggles::default();
        let portal = PortalId::try_from("team".to_owned()).unwrap();
        let other = PortalId::try_from("ops".to_owned()).unwrap();
        let first = toggles.of(&portal, "g1");
        first
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .insert(ServerId::parse("py").unwrap());
        assert!(Arc::ptr_eq(&first, &toggles.of(&portal, "g1")));
        assert!(toggles.of(&portal, "g2").lock().unwrap().is_none());
        assert!(toggles.of(&other, "g1").lock().unwrap().is_none());
    }
}
