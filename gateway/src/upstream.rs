//! Pooled connections to the upstream servers.
//!
//! One MCP connection per upstream server serves every session that uses the server's own
//! credential (`on_behalf: false`): requests from many sessions are multiplexed on it (rmcp
//! matches responses to requests by id), and its HTTP connections are kept alive by reqwest.
//! A connection is opened on first use, and again when the server's URL or credential changed
//! or the old one closed. Each server has its own slot: a slow or dead upstream makes only its
//! own callers wait (bounded by the connect timeout), never another server's.
//!
//! Progress notifications from an upstream are relayed to the session whose request they
//! belong to: rmcp gives every request its own progress token, which [`Relay`] maps back to
//! the client's token and session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico_core::domain::ids::ServerId;
use portico_core::domain::server::{AuthType, CredentialKind};
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
    secure_web_gateway: bool,
}

impl ConnectionKey {
    fn of(server: &CatalogServer) -> Self {
        ConnectionKey {
            url: server.hostname.clone(),
            auth_type: server.auth_type,
            credential_version: server.credentials.get(&CredentialKind::AuthCredentials).copied(),
            secure_web_gateway: server.settings.secure_web_gateway,
        }
    }
}

/// An open MCP connection to one upstream.
#[derive(Debug)]
pub struct Connection {
    key: ConnectionKey,
    service: RunningService<RoleClient, UpstreamClient>,
    /// The URL the transport detection settled on.
    pub url: Url,
}

impl Connection {
    /// The upstream's side of the connection, to send requests on.
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// Whether the connection is closed (the upstream went away).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed()
    }
}

#[derive(Debug, Default)]
struct Slot {
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

/// The pool of upstream connections, one slot per server.
#[derive(Debug)]
pub struct Upstreams {
    config: UpstreamConfig,
    vault: Arc<Vault>,
    slots: Mutex<HashMap<ServerId, Arc<Slot>>>,
    relay: Arc<Relay>,
    /// Upstreams that announced a change of their tools or prompts: to be synced.
    changed: mpsc::UnboundedSender<ServerId>,
}

impl Upstreams {
    /// A pool; `changed` receives the ids of upstreams that announced `list_changed`.
    pub fn new(
        config: UpstreamConfig,
        vault: Arc<Vault>,
        changed: mpsc::UnboundedSender<ServerId>,
    ) -> Self {
        Upstreams { config, vault, slots: Mutex::default(), relay: Arc::default(), changed }
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// The open connection to `server`, opening one if there is none (or the server's URL or
    /// credential changed since, or the old one closed).
    pub async fn connection(
        &self,
        server: &CatalogServer,
    ) -> Result<Arc<Connection>, ConnectError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(slots.entry(server.server_id.clone()).or_default())
        };
        let key = ConnectionKey::of(server);
        let mut current = slot.connection.lock().await;
        if let Some(connection) = current.as_ref()
            && connection.key == key
            && !connection.is_closed()
        {
            return Ok(Arc::clone(connection));
        }
        *current = None;
        let connection = Arc::new(self.open(server, key).await?);
        *current = Some(Arc::clone(&connection));
        if server.sync.status == SyncStatus::Error {
            // The upstream is back: sync it, so its status and lists catch up.
            let _ = self.changed.send(server.server_id.clone());
        }
        Ok(connection)
    }

    /// Forgets the connection to `server_id` if it is `broken` (a call found it dead), so that
    /// the next use opens a new one.
    pub async fn discard(&self, server_id: &ServerId, broken: &Arc<Connection>) {
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slots.get(server_id).cloned()
        };
        if let Some(slot) = slot {
            let mut current = slot.connection.lock().await;
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
                *current = None;
            }
        }
    }

    /// Closes and forgets the connection of a server that was removed.
    pub fn remove(&self, server_id: &ServerId) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.remove(server_id);
    }

    async fn open(
        &self,
        server: &CatalogServer,
        key: ConnectionKey,
    ) -> Result<Connection, ConnectError> {
        let url = Url::parse(&server.hostname).map_err(|e| {
            ConnectError::local(format!("the server's URL `{}` is not valid: {e}", server.hostname))
        })?;
        let headers = self.credential_headers(server).await?;
        let target =
            UpstreamTarget { url, headers, secure_web_gateway: server.settings.secure_web_gateway };
        let options = ConnectOptions {
            connect_timeout: self.config.connect_timeout,
            request_timeout: self.config.call_timeout,
            policy: self.config.policy,
        };
        let handler = UpstreamClient {
            server_id: server.server_id.clone(),
            relay: Arc::clone(&self.relay),
            changed: self.changed.clone(),
        };
        let connected = transport::connect(&target, &options, handler).await?;
        tracing::info!(server = %server.server_id, url = %connected.url, "connected to upstream");
        Ok(Connection { key, service: connected.service, url: connected.url })
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
            // OAuth servers get their tokens from the OAuth flow (a later part), not from here.
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

/// Maps the progress tokens of upstream requests to the session and token of the client
/// request they serve.
///
/// rmcp picks an upstream request's progress token as it sends the request, so the route can
/// only be registered once the request is on its way, and an early notification may come
/// first: such notifications wait in `pending` (bounded, and dropped after a few seconds if no
/// route claims them), and [`Relay::route`] sends them, in order, before it installs the route.
#[derive(Debug, Default)]
pub struct Relay {
    inner: Mutex<RelayState>,
}

#[derive(Debug, Default)]
struct RelayState {
    routes: HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>,
    pending: HashMap<ProgressToken, (std::time::Instant, Vec<ProgressNotificationParam>)>,
}

/// How long an unclaimed progress notification waits for its route.
const PENDING_TTL: Duration = Duration::from_secs(5);
/// At most this many unclaimed notifications per token, and tokens.
const PENDING_LIMIT: usize = 256;

impl Relay {
    /// Routes the upstream's progress on `upstream` to `client` as `client_token` until the
    /// returned guard is dropped; notifications that arrived before are relayed first.
    pub async fn route(
        self: &Arc<Self>,
        upstream: ProgressToken,
        client: Peer<RoleServer>,
        client_token: ProgressToken,
    ) -> RelayGuard {
        loop {
            let early = {
                let mut state = self.lock();
                match state.pending.remove(&upstream) {
                    Some((_, early)) => early,
                    None => {
                        state.routes.insert(upstream.clone(), (client, client_token));
                        break;
                    }
                }
            };
            for mut notification in early {
                notification.progress_token = client_token.clone();
                let _ = client.notify_progress(notification).await;
            }
        }
        RelayGuard { relay: Arc::clone(self), token: upstream }
    }

    /// The route of an upstream notification, or `None` after keeping it for a route to come.
    fn claim(
        &self,
        params: &ProgressNotificationParam,
    ) -> Option<(Peer<RoleServer>, ProgressToken)> {
        let mut state = self.lock();
        if let Some(route) = state.routes.get(&params.progress_token) {
            return Some(route.clone());
        }
        let now = std::time::Instant::now();
        state.pending.retain(|_, (since, _)| now.duration_since(*since) < PENDING_TTL);
        if state.pending.len() < PENDING_LIMIT || state.pending.contains_key(&params.progress_token)
        {
            let (_, early) =
                state.pending.entry(params.progress_token.clone()).or_insert((now, Vec::new()));
            if early.len() < PENDING_LIMIT {
                early.push(params.clone());
            }
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RelayState> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Ends a progress route when dropped.
#[derive(Debug)]
pub struct RelayGuard {
    relay: Arc<Relay>,
    token: ProgressToken,
}

impl Drop for RelayGuard {
    fn drop(&mut self) {
        self.relay.lock().routes.remove(&self.token);
    }
}

/// Portico as an MCP client of one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    server_id: ServerId,
    relay: Arc<Relay>,
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
        if let Some((client, token)) = self.relay.claim(&params) {
            let mut forwarded = params;
            forwarded.progress_token = token;
            if let Err(error) = client.notify_progress(forwarded).await {
                tracing::debug!(server = %self.server_id, %error, "progress not relayed");
            }
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changed.send(self.server_id.clone());
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changed.send(self.server_id.clone());
    }
}
