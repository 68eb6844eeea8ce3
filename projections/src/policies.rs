//! The current Cedar policy set, folded with the domain's own `apply`: what the admin API lists
//! and decides policy commands against, and what the authorizer evaluates.

use portico_core::domain::ids::PolicyId;
use portico_core::domain::policy::{PolicyRecord, PolicySetState};
use portico_core::{Event, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::Projection;

/// Every policy, by id, and the policy set's version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyCatalog {
    state: PolicySetState,
}

impl PolicyCatalog {
    /// The policy set's state, to decide commands against (its `stream_version` is the version
    /// to expect when appending).
    pub fn state(&self) -> &PolicySetState {
        &self.state
    }

    /// The policy set version: how many changes the set has had. Any policy change increases it.
    pub fn version(&self) -> u64 {
        self.state.stream_version
    }

    /// Policy `id`, if it exists.
    pub fn get(&self, id: &PolicyId) -> Option<&PolicyRecord> {
        self.state.policies.get(id)
    }

    /// Every policy, by id.
    pub fn iter(&self) -> impl Iterator<Item = &PolicyRecord> {
        self.state.policies.values()
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.state.policies.len()
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.state.policies.is_empty()
    }
}

impl Projection for PolicyCatalog {
    const NAME: &'static str = "policy_catalog";
    const VERSION: u32 = 1;

    fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::PolicyCreated(_)
            | Event::PolicyUpdated(_)
            | Event::PolicyDeleted(_)
            | Event::PolicySetReplaced(_) => self.state.apply(&recorded.event),
            // Only the policy stream's events change the set.
            _ => {}
        }
    }
}
