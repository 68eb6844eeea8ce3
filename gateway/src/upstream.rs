//! Pooled connections to the upstream servers.
//!
//! One MCP connection per upstream server serves every session that uses the server's own
//! credential (`on_behalf: false`): requests from many sessions are multiplexed on it (rmcp
//! matches responses to requests by id), and its HTTP connections are kept alive by reqwest.
//! An OAuth server used on behalf of each person (`on_behalf: true`) has one connection per
//! person instead, carrying that person's own token ([`UpstreamGrants`]): one person's
//! token never serves another's call.
//! A connection is opened on first use, and again when the server's URL or credential (or the
//! OAuth token, after a refresh) changed or the old one closed. Each server and owner has its
//! own slot: a slow or dead upstream makes only its own callers wait (bounded by the connect
//! timeout), never another server's.
//!
//! Progress notifications from an upstream are relayed to the session whose request they
//! belong to: rmcp gives every request its own progress token, which [`Relay`] maps back to
//! the client's token and session. Tokens count from 0 on every connection, so a route is
//! keyed by the connection too.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico_core::domain::ids::ServerId;
use portico_core::domain::server::{AuthType, CredentialKind};
use portico_core::domain::upstream_auth::UpstreamGrantOwner;
use portico_core::vault::{SecretRef, Vault, credential_kind, server_owner};
use portico_projections::catalog::{CatalogServer, SyncStatus};
use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam, ProgressToken,
};
use rmcp::service::{NotificationContext, Peer, RunningService};
use rmcp::{ClientHandler, RoleClient, RoleServer};
use tokio::sync::mpsc;
use url::Url;

use crate::ssrf::UpstreamPolicy;
use crate::transport::{self, ConnectError, ConnectOptions, UpstreamTarget};
use crate::upstream_grants::{AccessToken, GrantError, UpstreamGrants};

/// Timeouts and address policy for upstream connections.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// How long opening a connection (including the MCP handshake) may take.
    pub connect_timeout: Duration,
    /// How long one call may wait for the upstream's answer.
    pub call_timeout: Duration,
    /// Which addresses may be connected to.
    pub policy: UpstreamPolicy,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(60),
            policy: UpstreamPolicy::default(),
        }
    }
}

/// What a connection was opened with; a change means a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnectionKey {
    url: String,
    auth_type: AuthType,
    credential_version: Option<u32>,
    /// The OAuth token's generation, for OAuth servers.
    token_generation: Option<u64>,
    secure_web_gateway: bool,
}

impl ConnectionKey {
    fn of(server: &CatalogServer, token: Option<&AccessToken>) -> Self {
        ConnectionKey {
            url: server.hostname.clone(),
            auth_type: server.auth_type,
            credential_version: server.credentials.get(&CredentialKind::AuthCredentials).copied(),
            token_generation: token.map(|t| t.generation),
            secure_web_gateway: server.settings.secure_web_gateway,
        }
    }
}

/// A server's slot in the pool: the server, and whose OAuth token its connection carries
/// (`None` for servers that are not OAuth).
type SlotKey = (ServerId, Option<UpstreamGrantOwner>);

/// Why no connection could be had.
#[derive(Debug, Clone)]
pub enum AccessError {
    /// The owner of the OAuth grant must authorize (again).
    Authorization { owner: UpstreamGrantOwner, reason: String },
    /// Connecting failed.
    Connect(ConnectError),
}

impl AccessError {
    /// The cause in words.
    pub fn cause(&self) -> String {
        match self {
            AccessError::Authorization { reason, .. } => {
                format!("authorization required: {reason}")
            }
            AccessError::Connect(error) => error.cause.clone(),
        }
    }
}

impl From<ConnectError> for AccessError {
    fn from(error: ConnectError) -> Self {
        AccessError::Connect(error)
    }
}

/// An open MCP connection to one upstream.
#[derive(Debug)]
pub struct Connection {
    key: ConnectionKey,
    slot: SlotKey,
    service: RunningService<RoleClient, UpstreamClient>,
    /// The URL the transport detection settled on.
    pub url: Url,
    /// Tells this connection's progress routes from other connections'.
    relay_id: u64,
    /// Posts a request on the upstream's session from the caller's task (streamable HTTP).
    direct: Option<crate::transport::DirectRoute>,
}

impl Connection {
    /// The key of this connection's progress routes in the [`Relay`].
    pub fn relay_id(&self) -> u64 {
        self.relay_id
    }

    /// The upstream's side of the connection, to send requests on.
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// How to post a request on this connection's upstream session without rmcp's client,
    /// when the session allows it (see [`crate::transport::DirectRoute::serves`]).
    /// Returns the route and the revision the session negotiated.
    pub fn direct(&self) -> Option<(&crate::transport::DirectRoute, rmcp::model::ProtocolVersion)> {
        let version = self.peer().peer_info()?.protocol_version.clone();
        self.direct.as_ref().filter(|direct| direct.serves(&version)).map(|d| (d, version))
    }

    /// The server this connection is to, announcing that its tools or prompts changed.
    pub fn list_changed(&self) {
        self.service.service().list_changed();
    }

    /// Whether the connection is closed (the upstream went away).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed()
    }

    /// Closes the connection: rmcp's service ends, and with it the requests waiting in its
    /// client; a request posted directly ends too.
    fn close(&self) {
        self.service.cancellation_token().cancel();
        if let Some(direct) = &self.direct {
            direct.close();
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// When the slot was last used (for closing a person's idle connections).
    used: Mutex<Option<std::time::Instant>>,
}

/// The pool of upstream connections, one slot per server.
#[derive(Debug)]
pub struct Upstreams {
    config: UpstreamConfig,
    vault: Arc<Vault>,
    grants: Arc<UpstreamGrants>,
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
    relay: Arc<Relay>,
    /// Upstreams that announced a change of their tools or prompts: to be synced.
    changed: mpsc::UnboundedSender<ServerId>,
}

impl Upstreams {
    /// A pool; `changed` receives the ids of upstreams that announced `list_changed`.
    pub fn new(
        config: UpstreamConfig,
        vault: Arc<Vault>,
        grants: Arc<UpstreamGrants>,
        changed: mpsc::UnboundedSender<ServerId>,
    ) -> Self {
        Upstreams { config, vault, grants, slots: Mutex::default(), relay: Arc::default(), changed }
    }

    /// The OAuth grants whose tokens OAuth servers' connections carry.
    pub fn grants(&self) -> &Arc<UpstreamGrants> {
        &self.grants
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// The open connection to `server`, opening one if there is none (or the server's URL or
    /// credential changed since, or the old one closed). An OAuth server's connection carries
    /// the token of `owner` (the server's own grant when `None`); an upstream that refuses
    /// the token (401) gets one refreshed token, once.
    pub async fn connection(
        &self,
        server: &CatalogServer,
        owner: Option<&UpstreamGrantOwner>,
    ) -> Result<Arc<Connection>, AccessError> {
        if server.auth_type != AuthType::Oauth {
            return Ok(self.connect_slot(server, (server.server_id.clone(), None), None).await?);
        }
        let owner = owner.cloned().unwrap_or(UpstreamGrantOwner::Server);
        let authorization = |error: GrantError| match error {
            GrantError::Required { reason } => {
                AccessError::Authorization { owner: owner.clone(), reason }
            }
            other => AccessError::Connect(ConnectError::local(other.to_string())),
        };
        let slot = (server.server_id.clone(), Some(owner.clone()));
        let token = self.grants.access_token(server, &owner).await.map_err(authorization)?;
        match self.connect_slot(server, slot.clone(), Some(&token)).await {
            Err(error) if error.status_code == Some(401) => {
                let token = self
                    .grants
                    .rejected(server, &owner, token.generation)
                    .await
                    .map_err(authorization)?;
                match self.connect_slot(server, slot, Some(&token)).await {
                    Err(mut error) if error.status_code == Some(401) => {
                        error.cause = format!(
                            "the upstream refused the OAuth token Portico holds for it, even \
                             freshly refreshed (HTTP 401): the token's audience (the `resource` \
                             its metadata advertises) or scopes do not match what it accepts; \
                             check the server's OAuth metadata, then authorize again ({})",
                            error.cause
                        );
                        Err(AccessError::Connect(error))
                    }
                    other => Ok(other?),
                }
            }
            other => Ok(other?),
        }
    }

    async fn connect_slot(
        &self,
        server: &CatalogServer,
        slot_key: SlotKey,
        token: Option<&AccessToken>,
    ) -> Result<Arc<Connection>, ConnectError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(slots.entry(slot_key.clone()).or_default())
        };
        *slot.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::time::Instant::now());
        let key = ConnectionKey::of(server, token);
        let mut current = slot.connection.lock().await;
        if let Some(connection) = current.as_ref()
            && connection.key == key
            && !connection.is_closed()
        {
            return Ok(Arc::clone(connection));
        }
        *current = None;
        // Boxed: opening a connection is rare, and its future (about 10 kB) would otherwise be
        // part of every call's future. Each level of the request path builds its callee's
        // future and moves it into its own, copying the whole size (the largest state it can
        // be in), so room for a rare state deep in the path is copied about ten times per call.
        let connection = Arc::new(Box::pin(self.open(server, key, slot_key, token)).await?);
        *current = Some(Arc::clone(&connection));
        if server.sync.status == SyncStatus::Error {
            // The upstream is back: sync it, so its status and lists catch up.
            let _ = self.changed.send(server.server_id.clone());
        }
        Ok(connection)
    }

    /// Forgets `broken` (a call found it dead), so that the next use opens a new one.
    pub async fn discard(&self, broken: &Arc<Connection>) {
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slots.get(&broken.slot).cloned()
        };
        if let Some(slot) = slot {
            let mut current = slot.connection.lock().await;
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
                *current = None;
            }
        }
    }

    /// Closes every open connection (the process is stopping): their tasks end, including the
    /// streams a client keeps reopening toward its upstream, which would otherwise hold a
    /// graceful stop open.
    pub async fn close_all(&self) {
        let slots: Vec<Arc<Slot>> = {
            let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slots.values().cloned().collect()
        };
        for slot in slots {
            if let Some(connection) = slot.connection.lock().await.take() {
                connection.close();
            }
        }
        crate::transport::http_client::release_pools();
    }

    /// Closes and forgets the connections of a server that was removed.
    pub fn remove(&self, server_id: &ServerId) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.retain(|(id, _), _| id != server_id);
    }

    /// Closes and forgets the connections carrying a person's token that were not used for
    /// `idle` (calls in flight keep theirs until they end); the next call opens a new one.
    /// Returns how many were closed. Servers' own connections stay.
    pub fn close_idle_personal(&self, idle: Duration) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = slots.len();
        slots.retain(|(_, owner), slot| {
            let personal = matches!(owner, Some(UpstreamGrantOwner::User { .. }));
            let used = *slot.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            !personal || used.is_some_and(|at| at.elapsed() < idle)
        });
        before - slots.len()
    }

    /// Closes and forgets the connections that carry a person's tokens (they signed out).
    pub fn remove_owner(&self, owner: &UpstreamGrantOwner) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.retain(|(_, o), _| o.as_ref() != Some(owner));
    }

    async fn open(
        &self,
        server: &CatalogServer,
        key: ConnectionKey,
        slot: SlotKey,
        token: Option<&AccessToken>,
    ) -> Result<Connection, ConnectError> {
        let url = Url::parse(&server.hostname).map_err(|e| {
            ConnectError::local(format!("the server's URL `{}` is not valid: {e}", server.hostname))
        })?;
        let headers = match token {
            Some(token) => transport::credential_headers(transport::UpstreamAuth::AccessToken(
                token.token.expose_secret(),
            ))?,
            None => self.credential_headers(server).await?,
        };
        let target =
            UpstreamTarget { url, headers, secure_web_gateway: server.settings.secure_web_gateway };
        let options = ConnectOptions {
            connect_timeout: self.config.connect_timeout,
            request_timeout: self.config.call_timeout,
            policy: self.config.policy,
        };
        let relay_id = self.relay.next_connection.fetch_add(1, Ordering::Relaxed);
        let handler = UpstreamClient {
            server_id: server.server_id.clone(),
            relay: Arc::clone(&self.relay),
            relay_id,
            changed: self.changed.clone(),
        };
        let connected = transport::connect(&target, &options, handler).await?;
        tracing::info!(server = %server.server_id, url = %connected.url, "connected to upstream");
        Ok(Connection {
            key,
            slot,
            service: connected.service,
            url: connected.url,
            relay_id,
            direct: connected.direct,
        })
    }

    /// The headers the server's stored credential turns into (none for `unauthenticated`).
    async fn credential_headers(
        &self,
        server: &CatalogServer,
    ) -> Result<http::HeaderMap, ConnectError> {
        let Some(version) = server.credentials.get(&CredentialKind::AuthCredentials) else {
            return Ok(http::HeaderMap::new());
        };
        if server.auth_type != AuthType::Bearer {
            // OAuth servers' tokens come from their grants (see `connection`).
            return Ok(http::HeaderMap::new());
        }
        let secret = SecretRef {
            owner: server_owner(&server.server_id),
            kind: credential_kind(CredentialKind::AuthCredentials).to_owned(),
            version: *version,
        };
        let value = self.vault.get(&secret).await.map_err(|e| {
            ConnectError::local(format!(
                "the server's credential cannot be read from the vault: {e}"
            ))
        })?;
        transport::credential_headers(transport::UpstreamAuth::Bearer(value.expose_secret()))
            .map_err(ConnectError::from)
    }
}

/// How many progress notifications that arrived before their route are kept.
const MAX_EARLY_PROGRESS: usize = 256;

/// An upstream request's progress token, on one connection.
type RouteKey = (u64, ProgressToken);

/// Maps the progress tokens of upstream requests to the session and token of the client
/// request they serve.
///
/// The route of a request can only be set once rmcp has sent it (rmcp picks the token), and
/// rmcp handles notifications in tasks of their own: an upstream's first progress can reach
/// [`UpstreamClient::on_progress`] before its route exists. Such progress is kept (a bounded
/// number) and sent when the route is set, before any later progress of the same route.
#[derive(Debug, Default)]
pub struct Relay {
    inner: Mutex<Routes>,
    next_connection: AtomicU64,
}

#[derive(Debug, Default)]
struct Routes {
    routes: HashMap<RouteKey, Route>,
    early: VecDeque<(RouteKey, ProgressNotificationParam)>,
}

#[derive(Debug, Clone)]
struct Route {
    client: ProgressTo,
    token: ProgressToken,
    /// Held while sending, so that one route's notifications reach the client in order.
    sending: Arc<tokio::sync::Mutex<()>>,
}

/// Where a request's progress goes: through its session (rmcp puts it on the request's event
/// stream), or into the event stream of a request answered in place.
#[derive(Debug, Clone)]
pub enum ProgressTo {
    Session(Peer<RoleServer>),
    Stream(tokio::sync::mpsc::Sender<ProgressNotificationParam>),
}

impl Route {
    async fn send(&self, server_id: &ServerId, mut params: ProgressNotificationParam) {
        params.progress_token = self.token.clone();
        let sent = match &self.client {
            ProgressTo::Session(peer) => {
                peer.notify_progress(params).await.map_err(|e| e.to_string())
            }
            ProgressTo::Stream(stream) => stream.send(params).await.map_err(|e| e.to_string()),
        };
        if let Err(error) = sent {
            tracing::debug!(server = %server_id, %error, "progress not relayed");
        }
    }
}

impl Relay {
    /// Routes the upstream's progress on `upstream` (a token of connection `relay_id`) to
    /// `client` as `client_token` until the returned guard is dropped, first sending what
    /// arrived for it already.
    pub async fn route(
        self: &Arc<Self>,
        server_id: &ServerId,
        relay_id: u64,
        upstream: ProgressToken,
        client: ProgressTo,
        client_token: ProgressToken,
    ) -> RelayGuard {
        let key = (relay_id, upstream);
        let sending = Arc::new(tokio::sync::Mutex::new(()));
        // A new mutex: locking it cannot fail, and later progress waits for the early one.
        let held = Arc::clone(&sending).try_lock_owned().ok();
        let route = Route { client, token: client_token, sending };
        let early: Vec<ProgressNotificationParam> = {
            let mut inner = self.lock();
            inner.routes.insert(key.clone(), route.clone());
            let (mine, rest): (VecDeque<_>, VecDeque<_>) =
                inner.early.drain(..).partition(|(k, _)| *k == key);
            inner.early = rest;
            mine.into_iter().map(|(_, params)| params).collect()
        };
        let guard = RelayGuard { relay: Arc::clone(self), key };
        for params in early {
            route.send(server_id, params).await;
        }
        drop(held);
        guard
    }

    /// Relays one progress notification of connection `relay_id`, or keeps it for a route
    /// not set yet.
    async fn relay(&self, server_id: &ServerId, relay_id: u64, params: ProgressNotificationParam) {
        let key = (relay_id, params.progress_token.clone());
        let route = {
            let mut inner = self.lock();
            match inner.routes.get(&key) {
                Some(route) => route.clone(),
                None => {
                    if inner.early.len() >= MAX_EARLY_PROGRESS {
                        inner.early.pop_front();
                    }
                    inner.early.push_back((key, params));
                    return;
                }
            }
        };
        let _in_order = route.sending.lock().await;
        route.send(server_id, params).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Ends a progress route when dropped.
#[derive(Debug)]
pub struct RelayGuard {
    relay: Arc<Relay>,
    key: RouteKey,
}

impl Drop for RelayGuard {
    fn drop(&mut self) {
        let mut inner = self.relay.lock();
        inner.routes.remove(&self.key);
        inner.early.retain(|(k, _)| *k != self.key);
    }
}

/// Portico as an MCP client of one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    server_id: ServerId,
    relay: Arc<Relay>,
    relay_id: u64,
    changed: mpsc::UnboundedSender<ServerId>,
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.capabilities = ClientCapabilities::default();
        info.client_info = Implementation::new("portico", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.relay.relay(&self.server_id, self.relay_id, params).await;
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed();
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed();
    }
}

impl UpstreamClient {
    /// The upstream announced that its tools or prompts changed: it is to be synced.
    fn list_changed(&self) {
        let _ = self.changed.send(self.server_id.clone());
    }
}
