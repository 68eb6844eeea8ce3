//! MCP portals: create, change and delete portals, with their hostnames unique across portals.
//!
//! A portal's hostname is claimed on its own stream before the portal's event is appended (see
//! `portico_core::domain::hostname`): of concurrent creates or renames to one hostname exactly
//! one wins, on every log backend. A write that fails after its claim releases the claim again;
//! a delete or rename releases the old hostname once the portal's event is in.

use portico_core::Actor;
use portico_core::domain::hostname::{HostnameClaim, HostnameCommand, hostname_stream};
use portico_core::domain::ids::PortalId;
use portico_core::domain::portal::{
    AddPortal, CodeMode, PortalInput, PortalServer, RemovePortal, UpdatePortal,
};
use portico_core::domain::{DomainError, PortalCommand, portal_stream};
use portico_core::{Event, EventLog};

use crate::{App, AppError, Decided, decide, load};

/// A `PUT` of a portal: every setting is replaced, except that an omitted `name` or `hostname`
/// keeps its value.
#[derive(Debug, Default)]
pub struct PortalChanges {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub code_mode: Option<CodeMode>,
    pub allow_code_mode: Option<bool>,
    pub secure_web_gateway: bool,
    pub servers: Vec<PortalServer>,
}

/// How often a claim that lost a race is decided again (the second decision normally names the
/// winner).
const CLAIM_ATTEMPTS: usize = 3;

impl App {
    /// Creates a portal.
    pub async fn create_portal(
        &self,
        id: &PortalId,
        input: PortalInput,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let command = AddPortal { portal_id: id.clone(), input };
        self.write_portal(id, command.into(), actor).await
    }

    /// Replaces a portal's settings.
    pub async fn update_portal(
        &self,
        id: &PortalId,
        changes: PortalChanges,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let existing = self.read(|m| m.aggregates.portal(id).portal.map(|p| p.settings));
        let Some(existing) = existing else {
            return Err(DomainError::NotFound { kind: "portal", id: id.to_string() }.into());
        };
        let input = PortalInput {
            name: changes.name.unwrap_or(existing.name),
            hostname: changes.hostname.unwrap_or(existing.hostname),
            description: changes.description,
            code_mode: changes.code_mode,
            allow_code_mode: changes.allow_code_mode,
            secure_web_gateway: changes.secure_web_gateway,
            servers: changes.servers,
        };
        let command = UpdatePortal { portal_id: id.clone(), input };
        self.write_portal(id, command.into(), actor).await
    }

    /// Deletes a portal and releases its hostname.
    pub async fn delete_portal(&self, id: &PortalId, actor: &Actor) -> Result<(), AppError> {
        let command: PortalCommand = RemovePortal { portal_id: id.clone() }.into();
        self.write_portal(id, command, actor).await
    }

    /// Decides a portal command; claims the hostname it gives the portal if that changed,
    /// appends, and releases the hostname the portal no longer has.
    async fn write_portal(
        &self,
        id: &PortalId,
        command: PortalCommand,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let (decided, before) = self.read(|m| {
            let current = m.aggregates.portal(id);
            let before = current.portal.as_ref().map(|p| p.settings.hostname.clone());
            decide(&current, command, &m.aggregates).map(|decided| (decided, before))
        })?;
        let after = hostname_of(&decided.events);
        let claim = after.as_ref().filter(|after| before.as_ref() != Some(*after));
        if let Some(hostname) = claim {
            self.claim_hostname(hostname, id, actor).await?;
        }
        let written = self.execute(&portal_stream(id), actor, |_| Ok(decided)).await;
        // What the portal no longer holds: the old hostname after a rename or delete, or the new
        // one if the write failed.
        let released = match &written {
            Ok(_) if before != after => before.as_ref(),
            Ok(_) => None,
            Err(_) => claim,
        };
        if let Some(hostname) = released {
            if let Err(error) = self.release_hostname(hostname, id, actor).await {
                // The claim stops counting on its own once it is older than the grace period.
                tracing::warn!(portal_id = %id, %hostname, %error, "could not release a portal hostname");
            }
        }
        written.map(|_| ())
    }

    /// Gives `hostname` to portal `id` on the hostname's claim stream.
    async fn claim_hostname(
        &self,
        hostname: &str,
        id: &PortalId,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let stream = hostname_stream(hostname);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let command = HostnameCommand::Claim {
                hostname: hostname.to_owned(),
                portal_id: id.clone(),
                now: self.clock.now(),
            };
            match self.execute_claim(&stream, command, actor).await {
                // Lost a race with another claim: decide again against the winner's claim.
                Err(AppError::Conflict(_)) if attempt < CLAIM_ATTEMPTS => continue,
                outcome => return outcome,
            }
        }
    }

    async fn release_hostname(
        &self,
        hostname: &str,
        id: &PortalId,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let command =
            HostnameCommand::Release { hostname: hostname.to_owned(), portal_id: id.clone() };
        self.execute_claim(&hostname_stream(hostname), command, actor).await
    }

    /// Claims are not kept in a read model: the stream is folded from the log, decided against
    /// the portals as the read models show them, and appended expecting the folded version.
    async fn execute_claim(
        &self,
        stream: &str,
        command: HostnameCommand,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let log: &dyn EventLog = self.log.as_ref();
        let state: HostnameClaim = load(log, stream).await?;
        let decided: Decided = self.read(|m| decide(&state, command, &m.portals))?;
        crate::append(log, stream, decided, actor).await?;
        Ok(())
    }
}

/// The hostname a portal event gives its portal (`None` for a removal).
fn hostname_of(events: &[Event]) -> Option<String> {
    events.iter().rev().find_map(|event| match event {
        Event::PortalAdded(e) => Some(e.settings.hostname.clone()),
        Event::PortalUpdated(e) => Some(e.settings.hostname.clone()),
        _ => None,
    })
}
