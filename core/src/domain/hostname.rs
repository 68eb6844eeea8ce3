//! Portal hostnames are unique: a request reaches its portal by `Host`, so two portals with one
//! hostname would make one of them unreachable.
//!
//! Uniqueness across portals cannot be decided inside one portal's stream, so each hostname has
//! a claim stream of its own ([`hostname_stream`]). A portal create or rename first appends
//! [`PortalHostnameClaimed`] to the new hostname's stream, expecting the version it read; of two
//! concurrent claims only one append succeeds (on SQLite and PostgreSQL alike), and the loser
//! decides again and is refused. A delete or rename releases the old hostname afterwards.
//!
//! The claim and the portal's own event are two appends. If the process stops between them, the
//! claim names a portal that does not hold the hostname; such a claim stops counting after
//! [`CLAIM_GRACE`], far longer than the moment between the two appends, and the hostname can be
//! claimed again. Portals that hold a hostname count whatever the claim stream says (they may
//! predate it).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::PortalId;
use crate::event::Event;

/// How long a claim counts while its portal does not hold the hostname (yet).
pub const CLAIM_GRACE: TimeDelta = TimeDelta::seconds(60);

/// A portal claimed a hostname; no other portal may take it while it is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalHostnameClaimed {
    pub hostname: String,
    pub portal_id: PortalId,
    pub claimed_at: DateTime<Utc>,
}

/// A portal let its hostname go (it was deleted or renamed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalHostnameReleased {
    pub hostname: String,
    pub portal_id: PortalId,
}

/// The stream of one hostname's claims: `portal-hostname-{hostname}` (hostnames are validated
/// and lowercased before they get here). A name too long for a stream id is represented by its
/// SHA-256.
pub fn hostname_stream(hostname: &str) -> String {
    const PREFIX: &str = "portal-hostname-";
    if PREFIX.len() + hostname.len() <= crate::log::MAX_STREAM_ID_LEN {
        format!("{PREFIX}{hostname}")
    } else {
        use sha2::Digest;
        format!("{PREFIX}sha256-{}", hex::encode(sha2::Sha256::digest(hostname.as_bytes())))
    }
}

/// What the rules need to know of the portals as they are now.
pub trait PortalHostnames {
    /// The portal whose settings have `hostname` now, if any.
    fn portal_with_hostname(&self, hostname: &str) -> Option<PortalId>;
}

/// The state of one hostname's claim stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostnameClaim {
    /// The portal that claimed it last and has not released it, and when.
    pub holder: Option<(PortalId, DateTime<Utc>)>,
    pub stream_version: u64,
}

/// A command on a hostname's claim stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostnameCommand {
    /// Give `hostname` to `portal_id`, at `now`.
    Claim { hostname: String, portal_id: PortalId, now: DateTime<Utc> },
    /// `portal_id` no longer uses `hostname`.
    Release { hostname: String, portal_id: PortalId },
}

impl super::Aggregate for HostnameClaim {
    type Command = HostnameCommand;
    type Services = dyn PortalHostnames;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::PortalHostnameClaimed(e) => {
                self.holder = Some((e.portal_id.clone(), e.claimed_at));
            }
            Event::PortalHostnameReleased(e) => {
                if self.holder.as_ref().is_some_and(|(holder, _)| holder == &e.portal_id) {
                    self.holder = None;
                }
            }
            _ => return,
        }
        self.stream_version += 1;
    }

    /// A claim is refused while another portal holds the hostname, or claimed it less than
    /// [`CLAIM_GRACE`] ago. A release by a portal that does not hold the claim changes nothing
    /// (no events).
    fn decide(
        &self,
        command: HostnameCommand,
        portals: &dyn PortalHostnames,
    ) -> Result<Vec<Event>, DomainError> {
        match command {
            HostnameCommand::Claim { hostname, portal_id, now } => {
                let taken = |holder: PortalId| DomainError::HostnameTaken {
                    hostname: hostname.clone(),
                    portal_id: holder.to_string(),
                };
                if let Some(holder) =
                    portals.portal_with_hostname(&hostname).filter(|p| p != &portal_id)
                {
                    return Err(taken(holder));
                }
                if let Some((holder, claimed_at)) = &self.holder {
                    if holder != &portal_id && now < *claimed_at + CLAIM_GRACE {
                        return Err(taken(holder.clone()));
                    }
                }
                Ok(vec![Event::PortalHostnameClaimed(PortalHostnameClaimed {
                    hostname,
                    portal_id,
                    claimed_at: now,
                })])
            }
            HostnameCommand::Release { hostname, portal_id } => match &self.holder {
                Some((holder, _)) if holder == &portal_id => {
                    Ok(vec![Event::PortalHostnameReleased(PortalHostnameReleased {
                        hostname,
                        portal_id,
                    })])
                }
                _ => Ok(vec![]),
            },
        }
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::testing::given;

    fn id(s: &str) -> PortalId {
        PortalId::try_from(s.to_owned()).unwrap()
    }

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn claim(portal: &str, at: i64) -> HostnameCommand {
        HostnameCommand::Claim {
            hostname: "mcp.example.com".into(),
            portal_id: id(portal),
            now: t(at),
        }
    }

    fn claimed(portal: &str, at: i64) -> Event {
        Event::PortalHostnameClaimed(PortalHostnameClaimed {
            hostname: "mcp.example.com".into(),
            portal_id: id(portal),
            claimed_at: t(at),
        })
    }

    fn released(portal: &str) -> Event {
        Event::PortalHostnameReleased(PortalHostnameReleased {
            hostname: "mcp.example.com".into(),
            portal_id: id(portal),
        })
    }

    fn taken(portal: &str) -> DomainError {
        DomainError::HostnameTaken { hostname: "mcp.example.com".into(), portal_id: portal.into() }
    }

    #[test]
    fn a_free_hostname_is_claimed() {
        given([]).when(claim("a", 0)).then_expect([claimed("a", 0)]);
        given([claimed("a", 0), released("a")]).when(claim("b", 1)).then_expect([claimed("b", 1)]);
    }

    #[test]
    fn a_fresh_claim_of_another_portal_refuses() {
        given([claimed("a", 0)]).when(claim("b", 59)).then_expect_error(taken("a"));
    }

    #[test]
    fn a_portal_that_holds_the_hostname_refuses_whatever_the_claims_say() {
        let held = BTreeMap::from([("mcp.example.com".to_owned(), id("old"))]);
        given([]).with_hostnames(held.clone()).when(claim("b", 0)).then_expect_error(taken("old"));
        given([claimed("old", 0)])
            .with_hostnames(held)
            .when(claim("b", 3600))
            .then_expect_error(taken("old"));
    }

    #[test]
    fn a_stale_claim_whose_portal_never_took_the_hostname_is_taken_over() {
        given([claimed("a", 0)]).when(claim("b", 61)).then_expect([claimed("b", 61)]);
    }

    #[test]
    fn the_holder_claims_again_and_only_the_holder_releases() {
        given([claimed("a", 0)]).when(claim("a", 5)).then_expect([claimed("a", 5)]);
        let release = |portal: &str| HostnameCommand::Release {
            hostname: "mcp.example.com".into(),
            portal_id: id(portal),
        };
        given([claimed("a", 0)]).when(release("a")).then_expect([released("a")]);
        given([claimed("a", 0)]).when(release("b")).then_expect([]);
        given([]).when(release("a")).then_expect([]);
    }

    #[test]
    fn long_hostnames_fit_in_a_stream_id() {
        let long = format!("{}.example.com", "a".repeat(240));
        let stream = hostname_stream(&long);
        assert!(stream.len() <= crate::log::MAX_STREAM_ID_LEN);
        assert_ne!(stream, hostname_stream(&format!("{}.example.com", "b".repeat(240))));
        assert_eq!(hostname_stream("mcp.example.com"), "portal-hostname-mcp.example.com");
    }
}
