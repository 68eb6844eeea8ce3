//! Portico's tokens at OAuth-protected upstream servers: obtained through the OAuth flow of
//! [`crate::upstream_oauth`], kept encrypted in the vault, refreshed silently.
//!
//! A grant belongs to a server and an owner ([`UpstreamGrantOwner`]): the server itself (an
//! admin authorized it; used where the server is mapped with `on_behalf: false`, and by sync)
//! or one person (`on_behalf: true`). Its tokens live in the vault only, as one JSON record per
//! grant ([`GrantRecord`]): owner `server:<id>` kind `oauth_grant` for the server's, owner
//! `user:<user id>` kind `oauth_grant:<server id>` for a person's, so that signing out deletes
//! a person's grants with one call. The log records that a grant was obtained, refreshed,
//! failed or revoked, never a token.
//!
//! Refreshing is single-flight: each grant has one lock, held while its token is checked and,
//! when it expires within [`REFRESH_MARGIN`] (or half its lifetime, if shorter), refreshed;
//! concurrent calls wait for that one refresh and use its token. An upstream that answers 401
//! to a token still current makes the next use refresh it ([`UpstreamGrants::rejected`]). A
//! refresh the authorization server refuses deletes that one grant and asks its owner to
//! authorize again; other owners and servers are not touched. A refresh that fails for another
//! reason (the authorization server cannot be reached) keeps the grant for the next try.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::server::{AuthType, CredentialKind};
use portico_core::domain::upstream_auth::{
    UpstreamAuthorizationFailed, UpstreamAuthorizationRevoked, UpstreamAuthorized,
    UpstreamClientKind, UpstreamGrantOwner, UpstreamRevokeReason, UpstreamTokenRefreshed,
    upstream_auth_stream,
};
use portico_core::vault::{SecretRef, SecretString, Vault, credential_kind, server_owner};
use portico_core::{Actor, Event, EventLog, EventMetadata, ExpectedVersion, NewEvent};
use portico_projections::catalog::CatalogServer;
use portico_projections::{ProjectionRunner, ReadModels};
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, CredentialStore,
    InMemoryCredentialStore, OAuthClientConfig, OAuthHttpClient, OAuthState, OAuthTokenResponse,
    StoredCredentials,
};
use serde::{Deserialize, Serialize};

use crate::ssrf::UpstreamPolicy;
use crate::upstream_oauth::{self, ClientIdentity, GuardedOAuthHttp};

/// Where Portico publishes its Client ID Metadata Document, under its public URL.
pub const CLIENT_METADATA_PATH: &str = "/oauth/upstream-client.json";
/// Where upstream authorization servers send people back, under a portal's pages (or the
/// public URL, for an admin's authorization).
pub const CALLBACK_PATH: &str = "/servers-callback";
/// A token expiring sooner than this (or than half its lifetime) is refreshed before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How long an authorization started may wait for the person to come back.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Authorizations waiting at once, over every owner (the oldest go first).
pub const MAX_PENDING: usize = 10_000;
/// The vault kind of a server's own grant.
const SERVER_GRANT_KIND: &str = "oauth_grant";
/// How long writing a grant's event may wait for the read models.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(10);

/// Who Portico says it is to upstream authorization servers.
#[derive(Debug, Clone)]
pub struct UpstreamClientConfig {
    /// The `client_name` of Dynamic Client Registration.
    pub client_name: String,
    /// The https URL of Portico's Client ID Metadata Document, when it publishes one.
    pub metadata_url: Option<String>,
}

impl Default for UpstreamClientConfig {
    fn default() -> Self {
        UpstreamClientConfig { client_name: "Portico".to_owned(), metadata_url: None }
    }
}

/// What can go wrong with an upstream grant. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// There is no usable grant: its owner must authorize (again).
    #[error("authorization required: {reason}")]
    Required { reason: String },
    /// The authorization server or the vault failed; the grant is kept for the next try.
    #[error("{0}")]
    Unavailable(String),
    /// An authorization could not be started or completed.
    #[error("{0}")]
    Flow(String),
}

/// A token to present, and which refresh of its grant it came from.
pub struct AccessToken {
    pub token: SecretString,
    /// Changes with every new token of the grant (and differs between grants).
    pub generation: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("generation", &self.generation).finish_non_exhaustive()
    }
}

/// An authorization that came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub server_id: ServerId,
    pub owner: UpstreamGrantOwner,
    pub portal_id: Option<PortalId>,
    /// Where the person goes next (the page that sent them), as given to [`UpstreamGrants::begin`].
    pub resume: Option<String>,
}

/// What the vault holds for one grant.
#[derive(Clone, Serialize, Deserialize)]
struct GrantRecord {
    /// The server URL the grant was obtained for: a grant for another URL is void.
    resource: String,
    redirect_uri: String,
    client: UpstreamClientKind,
    credentials: StoredCredentials,
}

impl GrantRecord {
    /// When the access token expires, if the server said.
    fn expires_at(&self) -> Option<SystemTime> {
        let response = self.credentials.token_response.as_ref()?;
        let lifetime = oauth2::TokenResponse::expires_in(response)?;
        let received = self.credentials.token_received_at?;
        Some(UNIX_EPOCH + Duration::from_secs(received) + lifetime)
    }

    /// Whether the access token should be refreshed before use.
    fn due(&self, now: SystemTime) -> bool {
        let (Some(expires), Some(response)) =
            (self.expires_at(), self.credentials.token_response.as_ref())
        else {
            return false;
        };
        let lifetime = oauth2::TokenResponse::expires_in(response).unwrap_or_default();
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        expires.duration_since(now).map_or(true, |left| left <= margin)
    }

    fn access_token(&self) -> Option<SecretString> {
        let response = self.credentials.token_response.as_ref()?;
        Some(SecretString::new(oauth2::TokenResponse::access_token(response).secret().clone()))
    }

    fn refreshable(&self) -> bool {
        self.credentials
            .token_response
            .as_ref()
            .is_some_and(|r| oauth2::TokenResponse::refresh_token(r).is_some())
    }
}

/// A grant in memory: the record, where it is in the vault, and the manager that refreshes it.
struct Held {
    record: GrantRecord,
    stored: SecretRef,
    generation: u64,
    /// Built at the first refresh after a restart (discovery again), kept after.
    manager: Option<AuthorizationManager>,
    store: InMemoryCredentialStore,
}

#[derive(Default)]
struct Slot {
    /// Whether the vault was read (a missing grant is remembered as `None`).
    loaded: bool,
    held: Option<Held>,
    /// When the grant was last looked at.
    used: Option<Instant>,
}

type GrantKey = (ServerId, UpstreamGrantOwner);

struct Pending {
    server_id: ServerId,
    owner: UpstreamGrantOwner,
    portal_id: Option<PortalId>,
    resource: String,
    redirect_uri: String,
    preregistered: bool,
    metadata_url: Option<String>,
    state: OAuthState,
    actor: Actor,
    resume: Option<String>,
    started: Instant,
}

/// Every upstream grant: the flows in progress and the tokens.
pub struct UpstreamGrants {
    log: Arc<dyn EventLog>,
    vault: Arc<Vault>,
    models: Arc<ProjectionRunner<ReadModels>>,
    policy: UpstreamPolicy,
    client: UpstreamClientConfig,
    pending: Mutex<HashMap<String, Pending>>,
    slots: Mutex<HashMap<GrantKey, Arc<tokio::sync::Mutex<Slot>>>>,
    generations: AtomicU64,
}

impl std::fmt::Debug for UpstreamGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamGrants").field("client", &self.client).finish_non_exhaustive()
    }
}

impl UpstreamGrants {
    pub fn new(
        log: Arc<dyn EventLog>,
        vault: Arc<Vault>,
        models: Arc<ProjectionRunner<ReadModels>>,
        policy: UpstreamPolicy,
        client: UpstreamClientConfig,
    ) -> Self {
        UpstreamGrants {
            log,
            vault,
            models,
            policy,
            client,
            pending: Mutex::default(),
            slots: Mutex::default(),
            generations: AtomicU64::new(1),
        }
    }

    /// Starts an authorization of `server` for `owner`: discovery, the client's identification
    /// (the admin's pre-registered client, else Portico's metadata document, else dynamic
    /// registration) and the authorization request. Returns the URL the person opens; they
    /// come back to `redirect_uri` ([`UpstreamGrants::complete`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn begin(
        &self,
        server: &CatalogServer,
        owner: UpstreamGrantOwner,
        portal_id: Option<PortalId>,
        redirect_uri: &str,
        actor: Actor,
        resume: Option<String>,
    ) -> Result<String, GrantError> {
        if server.auth_type != AuthType::Oauth {
            return Err(GrantError::Flow(format!(
                "server `{}` does not use OAuth (its auth_type is `{}`)",
                server.server_id,
                server.auth_type.as_str()
            )));
        }
        let mut identity = ClientIdentity {
            client_name: self.client.client_name.clone(),
            metadata_url: self.client.metadata_url.clone(),
            ..ClientIdentity::default()
        };
        let manual = self.manual_client(server).await?;
        let is_preregistered = manual.is_some();
        let mut endpoints = None;
        if let Some(manual) = manual {
            identity.client_id = Some(manual.client_id);
            identity.client_secret = manual.secret.map(|s| s.expose_secret().to_owned());
            identity.scopes = manual.scopes;
            endpoints = manual.endpoints;
        }
        let (state, url) = upstream_oauth::start_with(
            self.policy,
            &server.hostname,
            &identity,
            redirect_uri,
            None,
            endpoints,
        )
        .await
        .map_err(|e| start_error(&server.server_id, &e))?;
        let csrf = state_of(&url).ok_or_else(|| {
            GrantError::Flow("the authorization URL carries no `state`".to_owned())
        })?;
        let mut pending = self.lock_pending();
        pending.retain(|_, p| p.started.elapsed() < PENDING_LIFETIME);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) =
                pending.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            csrf,
            Pending {
                server_id: server.server_id.clone(),
                owner,
                portal_id,
                resource: server.hostname.clone(),
                redirect_uri: redirect_uri.to_owned(),
                preregistered: is_preregistered,
                metadata_url: identity.metadata_url,
                state,
                actor,
                resume,
                started: Instant::now(),
            },
        );
        Ok(url)
    }

    /// Completes the authorization the callback URL (with its `code`, `state` and maybe `iss`)
    /// answers: exchanges the code, stores the tokens, records [`UpstreamAuthorized`]. A
    /// person's authorization completes only for that person (`signed_in`, the user id of
    /// whoever came back): for anyone else it is refused and left waiting for its owner.
    /// Otherwise a state is used once, whatever the outcome.
    pub async fn complete(
        &self,
        callback_url: &str,
        signed_in: Option<&str>,
    ) -> Result<Completed, GrantError> {
        let url = url::Url::parse(callback_url)
            .map_err(|_| GrantError::Flow("the callback URL is not a URL".to_owned()))?;
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let state = query.get("state").ok_or_else(|| {
            GrantError::Flow("the authorization server's answer carries no `state`".to_owned())
        })?;
        let pending = {
            let mut pending = self.lock_pending();
            let fresh = pending.get(state).filter(|p| p.started.elapsed() < PENDING_LIFETIME);
            if let Some(UpstreamGrantOwner::User { id }) = fresh.map(|p| &p.owner) {
                if signed_in != Some(id.as_str()) {
                    return Err(GrantError::Flow(
                        "this authorization was started by another account: sign in as that \
                         person, or start again from your own link"
                            .to_owned(),
                    ));
                }
            }
            pending.remove(state)
        }
        .filter(|p| p.started.elapsed() < PENDING_LIFETIME)
        .ok_or_else(|| {
            GrantError::Flow(
                "this authorization is unknown or expired (each link works once, for 15 \
                     minutes): start again"
                    .to_owned(),
            )
        })?;
        if let Some(error) = query.get("error") {
            let detail =
                query.get("error_description").map(|d| format!(": {d}")).unwrap_or_default();
            return Err(GrantError::Flow(format!(
                "the authorization server of `{}` refused the authorization ({}{})",
                pending.server_id,
                truncate(error),
                truncate(&detail)
            )));
        }
        let server_id = pending.server_id.clone();
        let (mut manager, _token) =
            upstream_oauth::finish(pending.state, callback_url).await.map_err(|e| {
                GrantError::Flow(format!(
                    "the authorization at `{server_id}` could not be completed: {}",
                    describe(&e)
                ))
            })?;
        let (client_id, response) =
            manager.get_credentials().await.map_err(|e| GrantError::Flow(describe(&e)))?;
        let response = response.ok_or_else(|| {
            GrantError::Flow(format!("the authorization at `{server_id}` gave no token"))
        })?;
        let client = if pending.preregistered {
            UpstreamClientKind::Preregistered
        } else if pending.metadata_url.as_deref() == Some(client_id.as_str()) {
            UpstreamClientKind::MetadataDocument
        } else {
            UpstreamClientKind::DynamicRegistration
        };
        let scopes = manager.get_current_scopes().await;
        let credentials =
            StoredCredentials::new(client_id, Some(response), scopes.clone(), Some(now_secs()));
        let store = InMemoryCredentialStore::new();
        store.save(credentials.clone()).await.map_err(|e| GrantError::Unavailable(describe(&e)))?;
        manager.set_credential_store(store.clone());
        let record = GrantRecord {
            resource: pending.resource,
            redirect_uri: pending.redirect_uri,
            client,
            credentials,
        };
        let key = (server_id.clone(), pending.owner.clone());
        let slot = self.slot(&key);
        let mut slot = slot.lock().await;
        let stored = self.store(&vault_owner(&key), &vault_kind(&key), &record).await?;
        let previous = slot.held.take().map(|h| h.stored);
        let expires_at = record.expires_at().map(DateTime::<Utc>::from);
        let refreshable = record.refreshable();
        slot.loaded = true;
        slot.held = Some(Held {
            record,
            stored,
            generation: self.next_generation(),
            manager: Some(manager),
            store,
        });
        drop(slot);
        if let Some(previous) = previous {
            let _ = self.vault.delete(&previous).await;
        }
        let event = Event::UpstreamAuthorized(UpstreamAuthorized {
            server_id: server_id.clone(),
            owner: pending.owner.clone(),
            portal_id: pending.portal_id.clone(),
            issuer: None,
            client,
            scopes,
            expires_at,
            refreshable,
        });
        self.record(&server_id, event, pending.actor, true).await;
        Ok(Completed {
            server_id,
            owner: pending.owner,
            portal_id: pending.portal_id,
            resume: pending.resume,
        })
    }

    /// Whether `owner` holds a grant for server `server_id` now (without refreshing it); false
    /// for a server that does not exist.
    pub async fn has_grant(&self, server_id: &ServerId, owner: &UpstreamGrantOwner) -> bool {
        let Some(server) = self.models.read().catalog.get(server_id).cloned() else {
            return false;
        };
        let key = (server_id.clone(), owner.clone());
        let slot = self.slot(&key);
        let mut slot = slot.lock().await;
        self.load(&key, &mut slot).await.is_ok()
            && slot.held.as_ref().is_some_and(|h| h.record.resource == server.hostname)
    }

    /// The access token of `owner` at `server`, refreshed first when it is due.
    pub async fn access_token(
        &self,
        server: &CatalogServer,
        owner: &UpstreamGrantOwner,
    ) -> Result<AccessToken, GrantError> {
        self.token(server, owner, None).await
    }

    /// The upstream refused the token of `generation` (HTTP 401): refreshes the grant unless
    /// that happened already, and returns the token to retry with.
    pub async fn rejected(
        &self,
        server: &CatalogServer,
        owner: &UpstreamGrantOwner,
        generation: u64,
    ) -> Result<AccessToken, GrantError> {
        self.token(server, owner, Some(generation)).await
    }

    /// Forgets the people's grants held in memory that were not used for `idle` (they are read
    /// from the vault again at their next use); servers' grants stay. Returns how many.
    pub fn forget_idle(&self, idle: Duration) -> usize {
        let mut slots = self.lock_slots();
        let before = slots.len();
        slots.retain(|(_, owner), slot| {
            // INVARIANT: clones of a slot are only taken under this map's lock, so a slot no
            // one else holds now cannot be in use: forgetting it cannot leave two slots (and
            // two refreshes with one rotating refresh token) for one grant.
            *owner == UpstreamGrantOwner::Server
                || Arc::strong_count(slot) > 1
                || slot.try_lock().map_or(true, |s| s.used.is_some_and(|at| at.elapsed() < idle))
        });
        before - slots.len()
    }

    /// Deletes every upstream grant of a person (they signed out), recording each one.
    pub async fn revoke_user(&self, user_id: &str, actor: Actor) -> Result<usize, GrantError> {
        let owner = UpstreamGrantOwner::User { id: user_id.to_owned() };
        let keys: Vec<(GrantKey, Arc<tokio::sync::Mutex<Slot>>)> = self
            .lock_slots()
            .iter()
            .filter(|((_, o), _)| *o == owner)
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect();
        // Every grant in the vault, loaded or not: the catalog names the candidates.
        let servers: Vec<ServerId> =
            self.models.read().catalog.iter().map(|s| s.server_id.clone()).collect();
        let mut revoked = Vec::new();
        for server_id in servers {
            let key = (server_id.clone(), owner.clone());
            if let Ok(Some(_)) = self.vault.latest(&vault_owner(&key), &vault_kind(&key)).await {
                revoked.push(server_id);
            }
        }
        for (_, slot) in &keys {
            let mut slot = slot.lock().await;
            slot.held = None;
            slot.loaded = true;
        }
        self.vault.delete_owner(&user_owner(user_id)).await.map_err(vault_failed)?;
        for server_id in &revoked {
            let event = Event::UpstreamAuthorizationRevoked(UpstreamAuthorizationRevoked {
                server_id: server_id.clone(),
                owner: owner.clone(),
                reason: UpstreamRevokeReason::SignedOut,
            });
            self.record(server_id, event, actor.clone(), false).await;
        }
        Ok(revoked.len())
    }

    async fn token(
        &self,
        server: &CatalogServer,
        owner: &UpstreamGrantOwner,
        rejected: Option<u64>,
    ) -> Result<AccessToken, GrantError> {
        let key = (server.server_id.clone(), owner.clone());
        let slot = self.slot(&key);
        let mut slot = slot.lock().await;
        slot.used = Some(Instant::now());
        self.load(&key, &mut slot).await?;
        let Some(held) = slot.held.as_mut() else {
            return Err(GrantError::Required { reason: required_reason(owner) });
        };
        if held.record.resource != server.hostname {
            return Err(GrantError::Required {
                reason: "the server's URL changed since it was authorized".to_owned(),
            });
        }
        let forced = rejected.is_some_and(|g| g == held.generation);
        if forced || held.record.due(SystemTime::now()) {
            // Boxed: a refresh is rare and its future is large; every OAuth server's call awaits
            // this function (see `Upstreams::connect_slot`).
            match Box::pin(self.refresh(server, held, forced)).await {
                Ok(Renewed::Adopted) => held.generation = self.next_generation(),
                Ok(Renewed::Refreshed) => {
                    held.generation = self.next_generation();
                    let expires_at = held.record.expires_at().map(DateTime::<Utc>::from);
                    let event = Event::UpstreamTokenRefreshed(UpstreamTokenRefreshed {
                        server_id: server.server_id.clone(),
                        owner: owner.clone(),
                        expires_at,
                    });
                    self.record(&server.server_id, event, Actor::system("upstream-oauth"), false)
                        .await;
                }
                Err(GrantError::Required { reason }) => {
                    let stored = held.stored.clone();
                    slot.held = None;
                    let _ = self.vault.delete(&stored).await;
                    let event = Event::UpstreamAuthorizationFailed(UpstreamAuthorizationFailed {
                        server_id: server.server_id.clone(),
                        owner: owner.clone(),
                        reason: reason.clone(),
                    });
                    let waits = *owner == UpstreamGrantOwner::Server;
                    self.record(&server.server_id, event, Actor::system("upstream-oauth"), waits)
                        .await;
                    return Err(GrantError::Required { reason });
                }
                Err(other) => {
                    // Still valid: use it while the authorization server is away.
                    let usable =
                        !forced && held.record.expires_at().is_some_and(|e| e > SystemTime::now());
                    if !usable {
                        return Err(other);
                    }
                    tracing::warn!(server = %server.server_id, error = %other, "refresh failed; the current token is still valid");
                }
            }
        }
        let token = held
            .record
            .access_token()
            .ok_or_else(|| GrantError::Required { reason: required_reason(owner) })?;
        Ok(AccessToken { token, generation: held.generation })
    }

    /// Refreshes `held` with its refresh token and stores the new tokens.
    async fn refresh(
        &self,
        server: &CatalogServer,
        held: &mut Held,
        forced: bool,
    ) -> Result<Renewed, GrantError> {
        // Instances sharing a database share the vault: another one may have refreshed this
        // grant (its refresh token rotated: using the old one again would look like a replay
        // to the authorization server) or deleted it (the person signed out there).
        match self.read_latest(&held.stored.owner, &held.stored.kind).await? {
            None => {
                return Err(GrantError::Required {
                    reason: "the authorization was withdrawn (its owner signed out)".to_owned(),
                });
            }
            Some((latest, record)) if latest.version > held.stored.version => {
                held.record = record;
                held.stored = latest;
                if !forced && !held.record.due(SystemTime::now()) {
                    return Ok(Renewed::Adopted);
                }
            }
            Some(_) => {}
        }
        if !held.record.refreshable() {
            return Err(GrantError::Required {
                reason: "the access token expired and the authorization server gave no refresh \
                         token"
                    .to_owned(),
            });
        }
        if held.manager.is_none() {
            held.manager = Some(self.rebuild(server, &held.record, &held.store).await?);
        }
        let Some(manager) = held.manager.as_ref() else {
            return Err(GrantError::Unavailable("no OAuth client".to_owned()));
        };
        held.store
            .save(held.record.credentials.clone())
            .await
            .map_err(|e| GrantError::Unavailable(describe(&e)))?;
        let response: OAuthTokenResponse = match manager.refresh_token().await {
            Ok(response) => response,
            Err(
                error @ (AuthError::TokenRefreshRejected(_) | AuthError::AuthorizationRequired),
            ) => {
                let why = match error {
                    AuthError::TokenRefreshRejected(why) => why,
                    _ => "it holds no refresh token for Portico".to_owned(),
                };
                return Err(GrantError::Required {
                    reason: format!(
                        "the authorization server refused to refresh the token ({})",
                        truncate(&why)
                    ),
                });
            }
            Err(e) => {
                return Err(GrantError::Unavailable(format!(
                    "the token of `{}` could not be refreshed: {}",
                    server.server_id,
                    describe(&e)
                )));
            }
        };
        let mut record = held.record.clone();
        record.credentials.token_response = Some(response);
        record.credentials.token_received_at = Some(now_secs());
        let stored = self.store(&held.stored.owner, &held.stored.kind, &record).await?;
        let previous = std::mem::replace(&mut held.stored, stored);
        held.record = record;
        let _ = self.vault.delete(&previous).await;
        Ok(Renewed::Refreshed)
    }

    /// A manager for a grant loaded from the vault: discovery again (through the SSRF guard),
    /// the stored client, the stored tokens.
    async fn rebuild(
        &self,
        server: &CatalogServer,
        record: &GrantRecord,
        store: &InMemoryCredentialStore,
    ) -> Result<AuthorizationManager, GrantError> {
        let unavailable = |e: AuthError| {
            GrantError::Unavailable(format!(
                "the authorization server of `{}` cannot be reached: {}",
                server.server_id,
                describe(&e)
            ))
        };
        let http: Arc<dyn OAuthHttpClient> = Arc::new(GuardedOAuthHttp::new(self.policy));
        let mut manager =
            AuthorizationManager::new_with_oauth_http_client(record.resource.as_str(), http)
                .await
                .map_err(unavailable)?;
        let manual = match record.client {
            UpstreamClientKind::Preregistered => self.manual_client(server).await?,
            _ => None,
        };
        let metadata = match manual.as_ref().and_then(|m| m.endpoints.clone()) {
            Some(endpoints) => endpoints,
            None => manager.resolve_metadata().await.map_err(unavailable)?.metadata,
        };
        manager.set_metadata(metadata);
        let mut config = OAuthClientConfig::new(
            record.credentials.client_id.clone(),
            record.redirect_uri.clone(),
        );
        if let Some(secret) = manual.and_then(|m| m.secret) {
            config = config.with_client_secret(secret.expose_secret());
        }
        manager.configure_client(config).map_err(unavailable)?;
        manager.set_credential_store(store.clone());
        Ok(manager)
    }

    /// Reads the grant of `key` from the vault the first time it is needed.
    async fn load(&self, key: &GrantKey, slot: &mut Slot) -> Result<(), GrantError> {
        if slot.loaded {
            return Ok(());
        }
        if let Some((stored, record)) =
            self.read_latest(&vault_owner(key), &vault_kind(key)).await?
        {
            slot.held = Some(Held {
                record,
                stored,
                generation: self.next_generation(),
                manager: None,
                store: InMemoryCredentialStore::new(),
            });
        }
        slot.loaded = true;
        Ok(())
    }

    /// The newest version of the grant stored as (`owner`, `kind`), and the grant.
    async fn read_latest(
        &self,
        owner: &str,
        kind: &str,
    ) -> Result<Option<(SecretRef, GrantRecord)>, GrantError> {
        let Some(stored) = self.vault.latest(owner, kind).await.map_err(vault_failed)? else {
            return Ok(None);
        };
        let secret = self.vault.get(&stored).await.map_err(vault_failed)?;
        let record = serde_json::from_str(secret.expose_secret())
            .map_err(|e| GrantError::Unavailable(format!("a stored grant is unreadable: {e}")))?;
        Ok(Some((stored, record)))
    }

    /// Stores `record` as the next version of (`owner`, `kind`).
    async fn store(
        &self,
        owner: &str,
        kind: &str,
        record: &GrantRecord,
    ) -> Result<SecretRef, GrantError> {
        let plaintext = serde_json::to_string(record)
            .map_err(|e| GrantError::Unavailable(format!("cannot encode the grant: {e}")))?;
        self.vault.put(owner, kind, &SecretString::new(plaintext)).await.map_err(vault_failed)
    }

    /// The admin's manual OAuth configuration of a server: its pre-registered client (the id
    /// from the stored `auth_credentials`, the secret) and, when given, the authorization
    /// server's endpoints (used instead of discovery).
    async fn manual_client(
        &self,
        server: &CatalogServer,
    ) -> Result<Option<ManualClient>, GrantError> {
        let read = |kind: CredentialKind| {
            server.credentials.get(&kind).map(|version| {
                SecretRef::new(server_owner(&server.server_id), credential_kind(kind), *version)
            })
        };
        let Some(config) = read(CredentialKind::AuthCredentials) else { return Ok(None) };
        let vault_error = |e: portico_core::vault::VaultError| {
            GrantError::Unavailable(format!("the server's OAuth settings cannot be read: {e}"))
        };
        let config = self.vault.get(&config).await.map_err(vault_error)?;
        let parsed: serde_json::Value =
            serde_json::from_str(config.expose_secret()).map_err(|_| {
                GrantError::Flow("the server's manual OAuth configuration is not JSON".to_owned())
            })?;
        let Some(client_id) = parsed
            .pointer("/registration_info/client_id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        let secret = match read(CredentialKind::ClientSecret) {
            Some(secret) => Some(self.vault.get(&secret).await.map_err(vault_error)?),
            None => None,
        };
        let scopes = parsed
            .pointer("/registration_info/scope")
            .and_then(serde_json::Value::as_str)
            .map(|scope| scope.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Some(ManualClient { client_id, secret, endpoints: endpoints_of(&parsed), scopes }))
    }

    /// Appends a grant's event; `wait` waits until the read models show it (the admin's
    /// authorization changes the server's status). A failure is logged: the tokens are what
    /// matters to the caller, and the event never holds one.
    async fn record(&self, server_id: &ServerId, event: Event, actor: Actor, wait: bool) {
        let metadata = EventMetadata::new(actor);
        let appended = self
            .log
            .append(
                &upstream_auth_stream(server_id),
                ExpectedVersion::Any,
                vec![NewEvent::new(event)],
                &metadata,
            )
            .await;
        match appended {
            Ok(appended) if wait => {
                let _ = self.models.wait_for(appended.last_position, VISIBILITY_TIMEOUT).await;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(server = %server_id, %error, "upstream authorization event not recorded")
            }
        }
    }

    fn slot(&self, key: &GrantKey) -> Arc<tokio::sync::Mutex<Slot>> {
        Arc::clone(self.lock_slots().entry(key.clone()).or_default())
    }

    fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_slots(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<GrantKey, Arc<tokio::sync::Mutex<Slot>>>> {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How a due grant got a fresh token.
enum Renewed {
    /// This instance refreshed it.
    Refreshed,
    /// Another instance had already (found in the vault).
    Adopted,
}

/// A manual OAuth configuration's client.
struct ManualClient {
    client_id: String,
    secret: Option<SecretString>,
    endpoints: Option<AuthorizationMetadata>,
    /// `registration_info.scope`, split.
    scopes: Vec<String>,
}

/// The authorization server's metadata a manual OAuth configuration gives
/// (`config.authorization_endpoint` and `config.token_endpoint`, with `issuer` and
/// `revocation_endpoint` when present); `None` when either endpoint is missing.
fn endpoints_of(manual: &serde_json::Value) -> Option<AuthorizationMetadata> {
    let config = manual.get("config")?;
    let text = |key: &str| config.get(key).and_then(serde_json::Value::as_str);
    let mut metadata = serde_json::json!({
        "authorization_endpoint": text("authorization_endpoint")?,
        "token_endpoint": text("token_endpoint")?,
        // MCP requires PKCE S256; a manual configuration does not say, so it is assumed.
        "code_challenge_methods_supported": ["S256"],
    });
    for key in ["issuer", "revocation_endpoint"] {
        if let Some(value) = text(key) {
            metadata[key] = value.into();
        }
    }
    serde_json::from_value(metadata).ok()
}

/// The vault owner of a grant.
fn vault_owner(key: &GrantKey) -> String {
    match &key.1 {
        UpstreamGrantOwner::Server => server_owner(&key.0),
        UpstreamGrantOwner::User { id } => user_owner(id),
    }
}

/// The vault owner of a person's secrets: `user:<id>`.
pub fn user_owner(user_id: &str) -> String {
    format!("user:{user_id}")
}

fn vault_kind(key: &GrantKey) -> String {
    match &key.1 {
        UpstreamGrantOwner::Server => SERVER_GRANT_KIND.to_owned(),
        UpstreamGrantOwner::User { .. } => format!("{SERVER_GRANT_KIND}:{}", key.0.as_str()),
    }
}

fn required_reason(owner: &UpstreamGrantOwner) -> String {
    match owner {
        UpstreamGrantOwner::Server => "an admin has not authorized this server yet".to_owned(),
        UpstreamGrantOwner::User { .. } => "you have not authorized this server yet".to_owned(),
    }
}

/// Why an authorization could not start, with what to do about it.
fn start_error(server_id: &ServerId, error: &AuthError) -> GrantError {
    let advice = match error {
        AuthError::RegistrationFailed(_) => {
            "Portico could not register itself as a client there (its authorization server \
             refused or does not offer dynamic client registration): register a client for \
             Portico at that authorization server and give the server a manual OAuth \
             configuration (`auth_credentials` with `registration_info.client_id`, and \
             `client_secret`)"
        }
        AuthError::NoAuthorizationSupport => {
            "the server publishes no OAuth metadata (RFC 9728 protected-resource or RFC 8414 \
             authorization-server metadata)"
        }
        AuthError::PkceUnsupported => {
            "its authorization server does not support PKCE with S256, which MCP requires"
        }
        _ => "",
    };
    let detail = describe(error);
    GrantError::Flow(if advice.is_empty() {
        format!("cannot start the authorization at `{server_id}`: {detail}")
    } else {
        format!("cannot start the authorization at `{server_id}`: {advice} ({detail})")
    })
}

/// The `state` parameter of an authorization URL.
fn state_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned())
}

/// An rmcp error in words, bounded. rmcp's messages name endpoints and OAuth error codes,
/// never tokens.
fn describe(error: &AuthError) -> String {
    truncate(&error.to_string())
}

fn truncate(text: &str) -> String {
    const MAX: usize = 300;
    let kept = crate::prefix(text, MAX);
    if kept.len() == text.len() { text.to_owned() } else { format!("{kept}…") }
}

fn vault_failed(error: portico_core::vault::VaultError) -> GrantError {
    GrantError::Unavailable(format!("the vault failed: {error}"))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record(lifetime: Option<u64>, received: u64, refresh: bool) -> GrantRecord {
        let mut response = serde_json::json!({"access_token": "at-1", "token_type": "bearer"});
        if let Some(lifetime) = lifetime {
            response["expires_in"] = lifetime.into();
        }
        if refresh {
            response["refresh_token"] = "rt-1".into();
        }
        let response: OAuthTokenResponse = serde_json::from_value(response).unwrap();
        GrantRecord {
            resource: "https://mcp.example.com/mcp".to_owned(),
            redirect_uri: "https://portal.example.com/servers-callback".to_owned(),
            client: UpstreamClientKind::DynamicRegistration,
            credentials: StoredCredentials::new(
                "client".to_owned(),
                Some(response),
                vec![],
                Some(received),
            ),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_token_is_refreshed_within_a_minute_or_half_its_lifetime_of_expiry() {
        // An hour's token: due in its last minute.
        let hour = record(Some(3600), 1_000, true);
        assert_eq!(hour.expires_at(), Some(at(4_600)));
        assert!(!hour.due(at(4_539)));
        assert!(hour.due(at(4_540)));
        assert!(hour.due(at(5_000)));
        // A 4 s token: due in its last 2 s (half its lifetime), not a minute early.
        let short = record(Some(4), 1_000, true);
        assert!(!short.due(at(1_001)));
        assert!(short.due(at(1_002)));
        // No lifetime given: never due (the upstream's 401 says when).
        let open = record(None, 1_000, true);
        assert!(!open.due(at(1_000_000)));
        assert!(open.refreshable());
        assert!(!record(Some(60), 0, false).refreshable());
    }

    #[test]
    fn a_grant_record_round_trips_through_json_and_never_prints_its_tokens() {
        let original = record(Some(60), 5, true);
        let json = serde_json::to_string(&original).unwrap();
        let back: GrantRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.access_token().unwrap().expose_secret(), "at-1");
        assert_eq!(back.expires_at(), original.expires_at());
        let token = AccessToken { token: SecretString::from("at-1"), generation: 7 };
        assert!(!format!("{token:?}").contains("at-1"));
    }

    #[test]
    fn grants_are_named_per_server_and_per_person_in_the_vault() {
        let server = ServerId::parse("github").unwrap();
        let admin = (server.clone(), UpstreamGrantOwner::Server);
        let person = (server, UpstreamGrantOwner::User { id: "u-1".to_owned() });
        assert_eq!(
            (vault_owner(&admin), vault_kind(&admin)),
            ("server:github".to_owned(), "oauth_grant".to_owned())
        );
        // Every grant of a person shares one owner: signing out deletes them with one call.
        assert_eq!(
            (vault_owner(&person), vault_kind(&person)),
            ("user:u-1".to_owned(), "oauth_grant:github".to_owned())
        );
    }

    #[test]
    fn a_manual_configuration_gives_the_endpoints_when_it_has_both() {
        let manual = serde_json::json!({"auth_mode": "manual", "config": {
            "authorization_endpoint": "https://as.example.com/authorize",
            "token_endpoint": "https://as.example.com/token",
            "issuer": "https://as.example.com",
        }, "registration_info": {"client_id": "portico"}});
        let metadata = endpoints_of(&manual).unwrap();
        assert_eq!(metadata.token_endpoint, "https://as.example.com/token");
        assert_eq!(metadata.issuer.as_deref(), Some("https://as.example.com"));
        assert_eq!(metadata.code_challenge_methods_supported, Some(vec!["S256".to_owned()]));
        let partial =
            serde_json::json!({"config": {"authorization_endpoint": "https://as.example.com/a"}});
        assert!(endpoints_of(&partial).is_none());
        assert!(endpoints_of(&serde_json::json!({"registration_info": {}})).is_none());
    }

    #[test]
    fn the_state_of_an_authorization_url_is_its_key() {
        assert_eq!(
            state_of("https://as.example.com/authorize?client_id=c&state=abc%2Bd&x=1").as_deref(),
            Some("abc+d")
        );
        assert_eq!(state_of("https://as.example.com/authorize?client_id=c"), None);
        assert_eq!(state_of("not a url"), None);
    }

    #[test]
    fn errors_that_need_the_admin_say_what_to_do() {
        let server = ServerId::parse("linear").unwrap();
        let refused = start_error(
            &server,
            &AuthError::RegistrationFailed("Dynamic client registration not supported".to_owned()),
        );
        let text = refused.to_string();
        assert!(
            text.contains("`linear`") && text.contains("registration_info.client_id"),
            "{text}"
        );
        let pkce = start_error(&server, &AuthError::PkceUnsupported).to_string();
        assert!(pkce.contains("PKCE with S256"), "{pkce}");
        let long = truncate(&"x".repeat(1000));
        assert!(long.len() < 310 && long.ends_with('…'));
    }
}
