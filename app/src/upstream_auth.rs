//! Portico's authorizations at OAuth-protected upstream servers, for the frontends: an admin
//! authorizing a server's own credential (`POST …/mcp/servers/{id}/authorize`), a person
//! authorizing a server for themself from the server-selection page, and the callback both
//! come back to. The protocol and the tokens are the gateway's ([`UpstreamGrants`]).
//!
//! [`UpstreamGrants`]: portico_gateway::upstream_grants::UpstreamGrants

use portico_core::Actor;
use portico_core::domain::DomainError;
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::server::AuthType;
use portico_core::domain::upstream_auth::UpstreamGrantOwner;
use portico_gateway::upstream_grants::{Completed, GrantError};
use portico_projections::catalog::{AdminAuthorization, CatalogServer, SyncStatus};

use crate::{App, AppError};

impl App {
    /// Starts an admin's authorization of `id`'s own OAuth credential; returns the URL the
    /// admin opens. `callback_url` is Portico's `/servers-callback` as the admin reaches it.
    pub async fn authorize_server(
        &self,
        id: &ServerId,
        actor: Actor,
        callback_url: &str,
    ) -> Result<String, AppError> {
        let server = self.oauth_server(id)?;
        self.gateway
            .grants
            .begin(&server, UpstreamGrantOwner::Server, None, callback_url, actor, None)
            .await
            .map_err(grant_error)
    }

    /// Starts a person's own authorization of `id` from portal `portal_id`'s selection page;
    /// `resume` is where they go once it is done.
    pub async fn authorize_server_for_user(
        &self,
        id: &ServerId,
        user_id: &str,
        actor: Actor,
        portal_id: &PortalId,
        callback_url: &str,
        resume: String,
    ) -> Result<String, AppError> {
        let server = self.oauth_server(id)?;
        let owner = UpstreamGrantOwner::User { id: user_id.to_owned() };
        self.gateway
            .grants
            .begin(&server, owner, Some(portal_id.clone()), callback_url, actor, Some(resume))
            .await
            .map_err(grant_error)
    }

    /// Whether the person `user_id` holds their own grant for server `id`.
    pub async fn user_authorized(&self, id: &ServerId, user_id: &str) -> bool {
        let owner = UpstreamGrantOwner::User { id: user_id.to_owned() };
        self.gateway.grants.has_grant(id, &owner).await
    }

    /// Completes the authorization the upstream's authorization server sent someone back from
    /// (`callback_url`, with its `code` and `state`). A person's authorization completes only
    /// for that person (`signed_in`, the user id of the browser's session): a link that
    /// reached someone else does nothing. Then the server is synced with the new grant if it
    /// has never been synced (an admin's authorization always syncs), before answering.
    pub async fn complete_upstream_authorization(
        &self,
        callback_url: &str,
        signed_in: Option<&str>,
    ) -> Result<Completed, AppError> {
        let completed =
            self.gateway.grants.complete(callback_url, signed_in).await.map_err(grant_error)?;
        let server = self.read(|m| m.catalog.get(&completed.server_id).cloned());
        let sync_with = match (&completed.owner, server) {
            (UpstreamGrantOwner::Server, _) => Some(None),
            (owner @ UpstreamGrantOwner::User { .. }, Some(server))
                if server.sync.status != SyncStatus::Ready
                    && !matches!(
                        server.admin_authorization,
                        AdminAuthorization::Connected { .. }
                    ) =>
            {
                Some(Some(owner.clone()))
            }
            _ => None,
        };
        if let Some(owner) = sync_with {
            // Awaited: the person goes back to a client whose next list should show the tools.
            let id = &completed.server_id;
            if let Err(error) = self.gateway.syncer.sync_as(id, owner.as_ref()).await {
                tracing::warn!(server = %id, %error, "sync after authorization failed");
            }
        }
        Ok(completed)
    }

    fn oauth_server(&self, id: &ServerId) -> Result<CatalogServer, AppError> {
        let server = self
            .read(|m| m.catalog.get(id).cloned())
            .ok_or_else(|| DomainError::NotFound { kind: "server", id: id.to_string() })?;
        if server.auth_type != AuthType::Oauth {
            return Err(AppError::Invalid(format!(
                "server `{id}` does not use OAuth (its auth_type is `{}`): there is nothing to \
                 authorize",
                server.auth_type.as_str()
            )));
        }
        Ok(server)
    }
}

fn grant_error(error: GrantError) -> AppError {
    match error {
        GrantError::Unavailable(cause) => AppError::unavailable(cause),
        GrantError::Required { reason } => AppError::Invalid(reason),
        GrantError::Flow(message) => AppError::Invalid(message),
    }
}
