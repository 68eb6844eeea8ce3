//! Upstream authorization inside a session: whose OAuth token a call carries, the selection
//! link (`portal_toggle_servers`, and calls to a server the person has not authorized), and
//! what the selection page changes in the session.
//!
//! A call to an OAuth server mapped `on_behalf: true` carries the caller's own token. Without
//! one, the call fails with MCP's URL-elicitation-required error (-32042) whose data carries
//! the selection link; a `tools/call` from a client that cannot take URL elicitations gets the
//! same link in a tool error instead. `portal_toggle_servers` sends an `elicitation/create`
//! in URL mode where the client declared it, and always answers with the link too.

use std::collections::HashSet;
use std::time::Duration;

use portico_core::domain::ids::ServerId;
use portico_core::domain::server::AuthType;
use portico_core::domain::upstream_auth::UpstreamGrantOwner;
use portico_policies::Principal;
use portico_projections::catalog::AdminAuthorization;
use rmcp::RoleServer;
use rmcp::model::{
    CallToolResult, ContentBlock as Content, ElicitationAction, ErrorCode, ErrorData,
};
use rmcp::service::{ElicitationMode, Peer};
use serde_json::json;

use super::{PortalCaller, PortalSession, UPSTREAM_UNAVAILABLE};

/// MCP's URLElicitationRequiredError.
pub const URL_ELICITATION_REQUIRED: ErrorCode = ErrorCode(-32042);
/// How long `portal_toggle_servers` waits for the client to answer its elicitation.
const ELICITATION_TIMEOUT: Duration = Duration::from_secs(600);

impl PortalSession {
    /// Whose OAuth grant a call to `server_id` in this session uses: the caller's own where the
    /// portal maps the server `on_behalf: true`, the server's otherwise; `None` for servers
    /// that do not use OAuth.
    pub(super) fn grant_owner(&self, server_id: &ServerId) -> Option<UpstreamGrantOwner> {
        let caller = self.state.bound.get()?;
        let models = self.gateway.models.read();
        if models.catalog.get(server_id)?.auth_type != AuthType::Oauth {
            return None;
        }
        let portal = models.portals.get(&caller.portal_id)?;
        let on_behalf =
            portal.settings.servers.iter().find(|m| m.server_id == *server_id)?.on_behalf;
        Some(match (&caller.principal, on_behalf) {
            (Principal::User { id, .. }, true) => UpstreamGrantOwner::User { id: id.clone() },
            _ => UpstreamGrantOwner::Server,
        })
    }

    /// Whether the caller holds what a call to `server_id` needs: their own grant where the
    /// server is theirs to authorize (true for every other server).
    pub(super) async fn authorized(&self, server_id: &ServerId) -> bool {
        let Some(owner @ UpstreamGrantOwner::User { .. }) = self.grant_owner(server_id) else {
            return true;
        };
        // A server gone since the exposure was computed needs nothing more.
        if self.gateway.models.read().catalog.get(server_id).is_none() {
            return true;
        }
        self.gateway.grants.has_grant(server_id, &owner).await
    }

    /// Why a server used with its own (admin) OAuth grant cannot be called now, if so.
    pub(super) fn admin_authorization_problem(&self, server_id: &ServerId) -> Option<String> {
        if self.grant_owner(server_id)? != UpstreamGrantOwner::Server {
            return None;
        }
        let models = self.gateway.models.read();
        match &models.catalog.get(server_id)?.admin_authorization {
            AdminAuthorization::Connected { .. } => None,
            AdminAuthorization::Required => {
                Some("an admin has not authorized this server yet".to_owned())
            }
            AdminAuthorization::Stale { reason, .. } => Some(format!(
                "the admin's authorization expired and cannot be refreshed ({reason}); an admin \
                 must authorize it again"
            )),
        }
    }

    /// The error of a call that needs an authorization first: for the caller's own, the
    /// selection link as a URL elicitation; for the server's, that an admin must authorize.
    pub(super) fn authorization_error(
        &self,
        server_id: &ServerId,
        owner: &UpstreamGrantOwner,
        reason: &str,
    ) -> ErrorData {
        let selection = match (owner, self.state.bound.get()) {
            (UpstreamGrantOwner::User { .. }, Some(caller)) => self.selection_link(caller),
            _ => None,
        };
        let Some((elicitation_id, url)) = selection else {
            return ErrorData::new(
                UPSTREAM_UNAVAILABLE,
                format!(
                    "server `{server_id}` is unavailable: {reason}; an admin must authorize it \
                     (POST …/mcp/servers/{server_id}/authorize)"
                ),
                None,
            );
        };
        let message = format!(
            "Server `{server_id}` needs your authorization ({reason}). Open {url} to authorize it."
        );
        ErrorData::new(
            URL_ELICITATION_REQUIRED,
            message.clone(),
            Some(json!({"elicitations": [{
                "mode": "url",
                "elicitationId": elicitation_id,
                "url": url,
                "message": message,
            }]})),
        )
    }

    /// A `tools/call` that failed for want of the caller's authorization, as the client can
    /// take it: the error as is where the client declared URL elicitation, else a tool error
    /// carrying the link.
    pub(super) fn authorization_as_tool_error(
        error: ErrorData,
        peer: &Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if error.code != URL_ELICITATION_REQUIRED
            || peer.supported_elicitation_modes().contains(&ElicitationMode::Url)
        {
            return Err(error);
        }
        let mut result = CallToolResult::error(vec![Content::text(error.message.to_string())]);
        result.structured_content = error.data;
        Ok(result)
    }

    /// `portal_toggle_servers`: a link to the selection page, offered as a URL elicitation
    /// where the client takes them.
    pub(super) async fn select_servers(
        &self,
        caller: &PortalCaller,
        peer: &Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some((elicitation_id, url)) = self.selection_link(caller) else {
            return Err(ErrorData::invalid_params(
                "server selection is for people signed in to the portal; a service token uses \
                 every server its policies allow",
                None,
            ));
        };
        let message = "Choose which of this portal's servers to use, and authorize the ones that \
                       need your sign-in.";
        let mut answer = None;
        if peer.supported_elicitation_modes().contains(&ElicitationMode::Url) {
            if let Ok(link) = url::Url::parse(&url) {
                answer = Some(
                    match peer
                        .elicit_url_with_timeout(
                            message,
                            link,
                            elicitation_id.clone(),
                            Some(ELICITATION_TIMEOUT),
                        )
                        .await
                    {
                        Ok(ElicitationAction::Accept) => "accept",
                        Ok(ElicitationAction::Decline) => "decline",
                        Ok(ElicitationAction::Cancel) => "cancel",
                        Ok(_) | Err(_) => "failed",
                    },
                );
            }
        }
        let body = json!({
            "url": url,
            "elicitationId": elicitation_id,
            "message": message,
            "elicitation": answer,
        });
        let text = format!("{message} Open {url}");
        let mut result = CallToolResult::success(vec![Content::text(text)]);
        result.structured_content = Some(body);
        Ok(result)
    }

    /// The servers of `exposed` that need each person's authorization and that this session
    /// has not looked at yet.
    pub(super) fn unprompted<'a>(
        &self,
        exposed: &'a crate::exposed::Exposed,
    ) -> Vec<&'a crate::exposed::ExposedServer> {
        let prompted =
            self.state.prompted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        exposed.servers.iter().filter(|s| s.per_user_oauth && !prompted.contains(&s.id)).collect()
    }

    /// Asks the person, once per batch, to authorize the servers of the portal that need their
    /// own authorization and that this session has not asked about yet (a server an admin just
    /// added, say): one URL elicitation for all of them, sent without holding up the call.
    /// Only for clients that take URL elicitations; the others see `authorized: false` in
    /// `portal_list_servers` and get the link when they call such a server.
    pub(super) async fn prompt_for_new_servers(
        &self,
        caller: &PortalCaller,
        exposed: &crate::exposed::Exposed,
        peer: &Peer<RoleServer>,
    ) {
        if !matches!(caller.principal, Principal::User { .. })
            || !peer.supported_elicitation_modes().contains(&ElicitationMode::Url)
        {
            return;
        }
        let candidates = self.unprompted(exposed);
        if candidates.is_empty() {
            return;
        }
        let mut waiting = Vec::new();
        for server in &candidates {
            if !self.authorized(&server.id).await {
                waiting.push(*server);
            }
        }
        // Every server looked at counts as known to the session: later calls cost nothing.
        self.state
            .prompted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(candidates.iter().map(|s| s.id.clone()));
        if waiting.is_empty() {
            return;
        }
        let Some((elicitation_id, url)) = self.selection_link(caller) else { return };
        let Ok(link) = url::Url::parse(&url) else { return };
        let names: Vec<&str> = waiting.iter().map(|s| s.name.as_str()).collect();
        let message = format!(
            "{} of this portal {} your authorization before your client can use {}: {}.",
            if names.len() == 1 { "A server" } else { "Servers" },
            if names.len() == 1 { "needs" } else { "need" },
            if names.len() == 1 { "it" } else { "them" },
            names.join(", ")
        );
        let peer = peer.clone();
        tokio::spawn(async move {
            let _ = peer
                .elicit_url_with_timeout(message, link, elicitation_id, Some(ELICITATION_TIMEOUT))
                .await;
        });
    }

    /// Opens a selection for the caller (a person) and returns its id and link.
    fn selection_link(&self, caller: &PortalCaller) -> Option<(String, String)> {
        let Principal::User { id, .. } = &caller.principal else { return None };
        let elicitation_id =
            self.gateway.selections.open(caller.portal_id.clone(), id.clone(), self.clone());
        let url = format!("{}/authorize?elicitationId={elicitation_id}", caller.pages_url);
        Some((elicitation_id, url))
    }

    /// The servers toggled off in this session now (for the selection page).
    pub fn servers_off(&self) -> Option<HashSet<ServerId>> {
        let caller = self.state.bound.get()?;
        let exposed = self.exposed(caller).ok()?;
        Some(self.toggled_off(&exposed))
    }

    /// The selection page's answer: exactly `enabled` of the servers the caller may use are on
    /// in this session. Tells the client when its lists changed.
    pub async fn apply_selection(&self, enabled: &HashSet<ServerId>) {
        let Some(caller) = self.state.bound.get().cloned() else { return };
        let Ok(exposed) = self.exposed(&caller) else { return };
        let off: HashSet<ServerId> = exposed
            .servers
            .iter()
            .filter(|s| !enabled.contains(&s.id))
            .map(|s| s.id.clone())
            .collect();
        *self.toggles().lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(off);
        if let Some(peer) = self.state.peer.get() {
            let _ = self.notify_changes(peer, &caller).await;
        }
    }
}
