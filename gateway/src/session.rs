//! One client's MCP session with a portal: rmcp's [`ServerHandler`] for the portal endpoint.
//!
//! The HTTP front end authenticates every request and hands the handler a [`PortalCaller`] (portal,
//! principal, client address) through the request's extensions. The first request binds the
//! session to that caller; a later request from anyone else is refused. Lists come from the
//! caller's [`Exposed`] view (the synced catalog filtered by Cedar), minus the servers toggled
//! off in this session; calls are resolved, checked with Cedar, sent to the pooled upstream
//! connection, and audited with one event each.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use chrono::Utc;
use portico_core::Actor;
use portico_core::domain::call::{AuditedMethod, CallStatus};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_policies::{Principal, RequestContext};
use rmcp::model::{
    CallToolRequestMethod, CancelTaskMethod, CompleteRequestMethod, ConstString, CustomRequest,
    CustomResult, DiscoverRequestMethod, GetPromptRequestMethod, GetSkillRequestMethod,
    GetTaskMethod, InitializeResultMethod, ListPromptsRequestMethod,
    ListResourceTemplatesRequestMethod, ListResourcesRequestMethod, ListSkillsRequestMethod,
    ListToolsRequestMethod, PingRequestMethod, ReadResourceDirectoryRequestMethod,
    ReadResourceRequestMethod, SetLevelRequestMethod, SubscribeRequestMethod,
    SubscriptionsListenRequestMethod, UnsubscribeRequestMethod, UpdateTaskMethod,
};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientRequest, CompleteRequestParams,
    CompleteResult, ErrorCode, ErrorData, GetPromptRequestParams, GetPromptResponse,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, Reference, ServerCapabilities, ServerConfig,
    ServerResult, Tool,
};
use rmcp::service::{NotificationContext, Peer, RequestContext as McpContext};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::Gateway;
use crate::context::ContextMode;
use crate::exposed::Exposed;
use crate::metrics::OpenSession;
use crate::selection::Toggles;

mod audit;
mod authorize;
mod builtins;
mod codemode;
mod direct;
mod forward;
mod paging;
mod resources;

use audit::Audit;
pub use builtins::builtin_tools;
pub use direct::{ProgressStream, SessionRegistry};
use forward::complete;
use paging::{offset, page};
pub use resources::portal_uri;
use resources::{remap_uris, upstream_uri};

/// The built-in tools, always listed first.
pub const BUILTIN_LIST_SERVERS: &str = "portal_list_servers";
pub const BUILTIN_TOGGLE_SERVER: &str = "portal_toggle_single_server";
/// The built-in tool that sends the person to the server-selection page.
pub const BUILTIN_TOGGLE_SERVERS: &str = "portal_toggle_servers";
/// The built-in tools of the context modes (see [`crate::context`]).
pub const BUILTIN_QUERY_TOOLS: &str = "portal_query_tools";
pub const BUILTIN_EXECUTE: &str = "portal_execute";
pub const BUILTIN_CODEMODE_SEARCH: &str = "portal_codemode_search";
pub const BUILTIN_CODEMODE_EXECUTE: &str = "portal_codemode_execute";
/// Every built-in name: no upstream tool is exposed under one of them.
pub const BUILTINS: [&str; 7] = [
    BUILTIN_LIST_SERVERS,
    BUILTIN_TOGGLE_SERVER,
    BUILTIN_TOGGLE_SERVERS,
    BUILTIN_QUERY_TOOLS,
    BUILTIN_EXECUTE,
    BUILTIN_CODEMODE_SEARCH,
    BUILTIN_CODEMODE_EXECUTE,
];
/// Tools and prompts per page of a list answer.
pub const PAGE_SIZE: usize = 500;
/// A JSON-RPC error code for a call a policy does not allow (implementation-defined range).
pub const POLICY_DENIED: ErrorCode = ErrorCode(-32003);
/// A JSON-RPC error code for an upstream that cannot be reached or did not answer in time.
pub const UPSTREAM_UNAVAILABLE: ErrorCode = ErrorCode(-32004);
/// The URI scheme of resources exposed through a portal: `portico+<server id>:<upstream URI>`
/// would not be a valid scheme for every id, so the server goes in the authority.
pub const RESOURCE_PREFIX: &str = "portico://";

/// What the caller sees, computed by the HTTP front end when it admitted the request.
#[derive(Debug, Clone)]
pub struct AdmittedView(pub Arc<Exposed>);

/// Who is calling: set by the HTTP front end on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalCaller {
    pub portal_id: PortalId,
    pub principal: Principal,
    pub client_ip: Option<IpAddr>,
    /// How this request's session presents the tools (from the portal URL's query).
    pub mode: ContextMode,
    /// The portal OAuth grant the request's access token belongs to (people's requests): a
    /// stateless client's server toggles are kept per grant.
    pub grant_id: Option<String>,
    /// Where the portal's pages are (`https://<portal host>`, or `<origin>/portals/<id>`):
    /// the server-selection page's links start with it.
    pub pages_url: String,
}

impl PortalCaller {
    fn user_id(&self) -> String {
        self.principal.id().to_owned()
    }

    fn user_email(&self) -> Option<String> {
        match &self.principal {
            Principal::User { email, .. } => Some(email.clone()),
            _ => None,
        }
    }

    /// The actor recorded on the caller's audit events.
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::User { id, email, .. } => {
                Actor::User { id: id.clone(), email: email.clone() }
            }
            Principal::ServiceToken { id, .. } => Actor::ServiceToken { id: id.clone() },
        }
    }

    fn context(&self) -> RequestContext {
        RequestContext::new(Utc::now(), self.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }
}

#[derive(Debug)]
struct SessionState {
    /// Counts the session as open while it lives.
    _open: OpenSession,
    bound: OnceLock<PortalCaller>,
    /// Servers toggled off in this session; `None` until first needed (then the portal's
    /// `default_disabled` servers).
    /// For a stateless (2026-07-28) client, the toggles of its portal grant, shared by every
    /// request of that grant (see [`crate::selection::GrantToggles`]); set when the caller is
    /// bound, else a fresh set on first use.
    toggled_off: OnceLock<Toggles>,
    /// Fingerprints of the tool and prompt lists last seen by the client.
    seen: Mutex<(u64, u64)>,
    watching: OnceLock<()>,
    /// The client, kept from its first tool call: the selection page tells it when its lists
    /// changed.
    peer: OnceLock<Peer<RoleServer>>,
    /// Servers the person was already asked to authorize in this session (one prompt per
    /// batch of servers new to it).
    prompted: Mutex<HashSet<ServerId>>,
    /// The session's place among those answering `tools/call` in place (see [`direct`]).
    listing: OnceLock<direct::Listing>,
    /// Its requests being answered in place.
    in_flight: direct::InFlight,
}

/// The handler of one MCP session with a portal.
#[derive(Debug, Clone)]
pub struct PortalSession {
    gateway: Arc<Gateway>,
    state: Arc<SessionState>,
}

impl PortalSession {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        let state = SessionState {
            _open: OpenSession::open(),
            bound: OnceLock::new(),
            toggled_off: OnceLock::new(),
            seen: Mutex::new((0, 0)),
            watching: OnceLock::new(),
            peer: OnceLock::new(),
            prompted: Mutex::default(),
            listing: OnceLock::new(),
            in_flight: direct::InFlight::default(),
        };
        PortalSession { gateway, state: Arc::new(state) }
    }

    /// The caller of this request, bound to the session on first use.
    fn caller(&self, extensions: &rmcp::model::Extensions) -> Result<PortalCaller, ErrorData> {
        let caller = extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<rmcp::model::Extensions>())
            .and_then(|ext| ext.get::<PortalCaller>())
            .cloned()
            .ok_or_else(|| {
                ErrorData::internal_error("the request carries no authenticated caller", None)
            })?;
        let bound = self.state.bound.get_or_init(|| caller.clone());
        if let (true, Some(grant)) = (Self::stateless(extensions), &caller.grant_id) {
            // No MCP session: a stateless client, whose toggles live with its grant.
            self.state
                .toggled_off
                .get_or_init(|| self.gateway.grant_toggles.of(&caller.portal_id, grant));
        }
        if bound.portal_id != caller.portal_id || bound.principal.id() != caller.principal.id() {
            return Err(ErrorData::invalid_request(
                "this session belongs to another caller or portal; initialize a new session",
                None,
            ));
        }
        Ok(caller)
    }

    /// Whether the request is of a stateless revision (2026-07-28): no MCP session, and a
    /// protocol version without the initialize handshake.
    fn stateless(extensions: &rmcp::model::Extensions) -> bool {
        let Some(parts) = extensions.get::<http::request::Parts>() else { return false };
        if parts.headers.contains_key("mcp-session-id") {
            return false;
        }
        parts
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_value::<rmcp::model::ProtocolVersion>(v.into()).ok())
            .is_some_and(|v| !v.has_initialize())
    }

    fn session_id(extensions: &rmcp::model::Extensions) -> Option<String> {
        let parts = extensions.get::<http::request::Parts>()?;
        Some(parts.headers.get("mcp-session-id")?.to_str().ok()?.to_owned())
    }

    /// The exposure the front end computed when it admitted this request (so one request
    /// computes it once), else the caller's exposure now.
    fn request_view(
        &self,
        extensions: &rmcp::model::Extensions,
        caller: &PortalCaller,
    ) -> Result<Arc<Exposed>, ErrorData> {
        let admitted = extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<rmcp::model::Extensions>())
            .and_then(|ext| ext.get::<AdmittedView>());
        match admitted {
            Some(view) => Ok(Arc::clone(&view.0)),
            None => self.exposed(caller),
        }
    }

    /// The caller's exposure of the portal now.
    fn exposed(&self, caller: &PortalCaller) -> Result<Arc<Exposed>, ErrorData> {
        self.gateway.exposed(caller).map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    /// The servers toggled off, shared where they are the grant's.
    fn toggles(&self) -> &Toggles {
        self.state.toggled_off.get_or_init(Toggles::default)
    }

    fn toggled_off(&self, exposed: &Exposed) -> HashSet<ServerId> {
        let mut slot = self.toggles().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert_with(|| {
            exposed.servers.iter().filter(|s| s.default_disabled).map(|s| s.id.clone()).collect()
        })
        .clone()
    }

    fn fingerprints(&self, exposed: &Exposed) -> (u64, u64) {
        use std::hash::{Hash, Hasher};
        let off = self.toggled_off(exposed);
        let mut tools = std::collections::hash_map::DefaultHasher::new();
        let mut prompts = std::collections::hash_map::DefaultHasher::new();
        for server in exposed.servers.iter().filter(|s| !off.contains(&s.id)) {
            server.tools_fingerprint.hash(&mut tools);
            server.prompts_fingerprint.hash(&mut prompts);
        }
        (tools.finish(), prompts.finish())
    }

    /// Tells the client its lists changed, for those that did since it last looked.
    async fn notify_changes(
        &self,
        peer: &Peer<RoleServer>,
        caller: &PortalCaller,
    ) -> Result<(), ()> {
        let Ok(exposed) = self.exposed(caller) else { return Ok(()) };
        let now = self.fingerprints(&exposed);
        let before = {
            let mut seen =
                self.state.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::replace(&mut *seen, now)
        };
        if now.0 != before.0 {
            peer.notify_tool_list_changed().await.map_err(|_| ())?;
        }
        if now.1 != before.1 {
            peer.notify_prompt_list_changed().await.map_err(|_| ())?;
        }
        Ok(())
    }

    /// Watches the read models for changes that alter what this session shows, until the
    /// session ends.
    fn watch(&self, peer: Peer<RoleServer>, caller: PortalCaller) {
        if self.state.watching.set(()).is_err() {
            return;
        }
        let weak: Weak<SessionState> = Arc::downgrade(&self.state);
        let gateway = Arc::clone(&self.gateway);
        let mut changes = gateway.config_changes();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(state) = weak.upgrade() else { return };
                let session = PortalSession { gateway: Arc::clone(&gateway), state };
                if session.notify_changes(&peer, &caller).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Calls the exposed tool `request.name` as the caller: resolved in the caller's view,
    /// refused when its server is toggled off, checked with Cedar, sent upstream and audited
    /// with one event. A direct `tools/call`, `portal_execute` and every call from code mode
    /// come here, so policy and audit follow the tool wherever it is called from;
    /// `execution_id` links a code-mode call to its execution.
    pub(super) async fn call_exposed_tool(
        &self,
        caller: &PortalCaller,
        exposed: &Exposed,
        request: CallToolRequestParams,
        context: &McpContext<RoleServer>,
        execution_id: Option<&str>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = request.name.to_string();
        let mut audit = Audit::new(
            caller,
            AuditedMethod::ToolsCall,
            Self::session_id(&context.extensions),
            name.clone(),
        );
        audit.execution_id = execution_id.map(str::to_owned);
        let Some((server, tool)) = exposed.tool(&name) else {
            let message = format!("unknown tool `{}`", truncate(&name));
            audit.record(&self.gateway, CallStatus::NotFound, Some(message.clone()), None).await?;
            return Err(ErrorData::invalid_params(message, None));
        };
        audit.server = Some((&server.id, server.url.as_str()));
        audit.upstream_name = Some(tool.upstream_name.clone());
        if !self.is_enabled(exposed, &server.id) {
            let message = format!(
                "server `{}` is toggled off in this session; turn it on with `{BUILTIN_TOGGLE_SERVER}`",
                server.id
            );
            audit.record(&self.gateway, CallStatus::Denied, Some(message.clone()), None).await?;
            return Err(ErrorData::invalid_params(message, None));
        }
        let decision = match self.gateway.decide_call(caller, exposed, &server.id, &name, &tool.raw)
        {
            Ok(decision) => decision,
            Err(error) => {
                let message = format!("the call could not be authorized: {error}");
                audit
                    .record(&self.gateway, CallStatus::Denied, Some(message.clone()), None)
                    .await?;
                return Err(ErrorData::new(POLICY_DENIED, message, None));
            }
        };
        audit.policies = decision.policy_ids.clone();
        if !decision.allowed {
            let message = if decision.policy_ids.is_empty() {
                format!(
                    "calling `{name}` is not allowed: no policy permits `call_tool` on it (default deny)"
                )
            } else {
                format!("calling `{name}` is forbidden by {}", decision.policy_ids.join(", "))
            };
            audit.record(&self.gateway, CallStatus::Denied, Some(message.clone()), None).await?;
            return Err(ErrorData::new(POLICY_DENIED, message, None));
        }
        let mut upstream_request = request;
        upstream_request.name = tool.upstream_name.clone().into();
        upstream_request.meta = None;
        let request =
            ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(upstream_request));
        self.audited(audit, &server.id, "tools/call", request, context, |answer| match answer {
            ServerResult::CallToolResult(mut result) => {
                complete(&mut result.result_type);
                let status = if result.is_error == Some(true) {
                    CallStatus::ToolError
                } else {
                    CallStatus::Ok
                };
                Some((result, status))
            }
            _ => None,
        })
        .await
    }

    fn is_enabled(&self, exposed: &Exposed, server_id: &ServerId) -> bool {
        !self.toggled_off(exposed).contains(server_id)
    }
}

/// The tools a session in `mode` lists, in order: `builtins`, then the upstream tools of the
/// servers not toggled off as the mode shows them (fully, by name only, or not at all).
pub fn tool_list<'a>(
    mode: ContextMode,
    builtins: &'a [Tool],
    exposed: &'a Exposed,
    off: &'a HashSet<ServerId>,
) -> impl Iterator<Item = Cow<'a, Tool>> + 'a {
    let upstream = exposed
        .servers
        .iter()
        .filter(move |s| !off.contains(&s.id))
        .flat_map(|s| s.tools.iter().map(|t| &t.item));
    let upstream: Box<dyn Iterator<Item = Cow<'a, Tool>> + 'a> = match mode {
        ContextMode::Full => Box::new(upstream.map(Cow::Borrowed)),
        ContextMode::MinimizeTools => {
            Box::new(upstream.map(|t| Cow::Owned(codemode::name_only(t))))
        }
        ContextMode::SearchAndExecute | ContextMode::CodeMode => Box::new(std::iter::empty()),
    };
    builtins.iter().map(Cow::Borrowed).chain(upstream)
}

/// `value`, cut to its first 80 characters and `…` when longer: names and values a client sent,
/// quoted back in error messages.
pub(crate) fn truncate(value: &str) -> String {
    const LIMIT: usize = 80;
    if value.chars().count() <= LIMIT {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(LIMIT).collect::<String>())
    }
}

impl ServerHandler for PortalSession {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = serde_json::from_value(json!({"listChanged": true})).ok();
        capabilities.prompts = serde_json::from_value(json!({"listChanged": true})).ok();
        capabilities.resources = serde_json::from_value(json!({})).ok();
        capabilities.completions = Some(serde_json::Map::new());
        capabilities.logging = Some(serde_json::Map::new());
        let mut info = InitializeResult::default();
        info.capabilities = capabilities;
        info.server_info = rmcp::model::Implementation::new("portico", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(format!(
            "Tools are named `<server id>_<tool>`. `{BUILTIN_LIST_SERVERS}` lists this portal's servers; `{BUILTIN_TOGGLE_SERVER}` turns one on or off for this session."
        ));
        info.protocol_version = ProtocolVersion::V_2025_06_18;
        info
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.caller(&context.extensions)?;
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Ok(caller) = self.caller(&context.extensions) {
            if let Ok(exposed) = self.exposed(&caller) {
                let now = self.fingerprints(&exposed);
                *self.state.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
            }
            if let Some(id) = Self::session_id(&context.extensions) {
                self.list(&id, &context.peer);
            }
            self.watch(context.peer.clone(), caller);
        }
    }

    async fn on_cancelled(
        &self,
        notification: rmcp::model::CancelledNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        if let Some(id) = &notification.request_id {
            self.cancel_direct(id);
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let start = offset(request.as_ref())?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let off = self.toggled_off(&exposed);
        {
            let now = self.fingerprints(&exposed);
            *self.state.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        }
        let builtins = builtin_tools(caller.mode, &exposed, &off);
        let (tools, next_cursor) = page(tool_list(caller.mode, &builtins, &exposed, &off), start)?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let name = request.name.to_string();
        if name == BUILTIN_LIST_SERVERS {
            return Ok(CallToolResponse::Complete(self.list_servers(&exposed).await));
        }
        self.state.peer.get_or_init(|| context.peer.clone());
        // The selection tool sends its own elicitation: no second prompt beside it.
        if name != BUILTIN_TOGGLE_SERVERS && !Self::stateless(&context.extensions) {
            self.prompt_for_new_servers(&caller, &exposed, &context.peer).await;
        }
        if name == BUILTIN_TOGGLE_SERVERS {
            return self
                .select_servers(&caller, &context.peer)
                .await
                .map(CallToolResponse::Complete);
        }
        if name == BUILTIN_TOGGLE_SERVER {
            return self
                .toggle_server(&exposed, request.arguments.as_ref(), &context.peer, &caller)
                .await
                .map(CallToolResponse::Complete);
        }
        if let Some(answer) = self.mode_tool(&name, &caller, &exposed, &request, &context).await {
            return answer.map(CallToolResponse::Complete);
        }
        match self.call_exposed_tool(&caller, &exposed, request, &context, None).await {
            Ok(result) => Ok(CallToolResponse::Complete(result)),
            Err(error) => Self::authorization_as_tool_error(error, &context.peer)
                .map(CallToolResponse::Complete),
        }
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let start = offset(request.as_ref())?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let off = self.toggled_off(&exposed);
        let prompts = exposed
            .servers
            .iter()
            .filter(|s| !off.contains(&s.id))
            .flat_map(|s| s.prompts.iter().map(|p| &p.item));
        let (prompts, next_cursor) = page(prompts.map(Cow::Borrowed), start)?;
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let name = request.name.clone();
        let mut audit = Audit::new(
            &caller,
            AuditedMethod::PromptsGet,
            Self::session_id(&context.extensions),
            name.clone(),
        );
        let found = exposed.prompt(&name).filter(|(s, _)| self.is_enabled(&exposed, &s.id));
        let Some((server, prompt)) = found else {
            let message = format!("unknown prompt `{}`", truncate(&name));
            audit.record(&self.gateway, CallStatus::NotFound, Some(message.clone()), None).await?;
            return Err(ErrorData::invalid_params(message, None));
        };
        audit.server = Some((&server.id, server.url.as_str()));
        audit.upstream_name = Some(prompt.upstream_name.clone());
        // Visible means `get_prompt` was allowed when the view was computed (this request's
        // minute when a policy reads the context).
        let mut upstream_request = request.clone();
        upstream_request.name = prompt.upstream_name.clone();
        upstream_request.meta = None;
        let request =
            ClientRequest::GetPromptRequest(rmcp::model::GetPromptRequest::new(upstream_request));
        self.audited(audit, &server.id, "prompts/get", request, &context, |answer| match answer {
            ServerResult::GetPromptResult(mut result) => {
                complete(&mut result.result_type);
                Some((GetPromptResponse::Complete(result), CallStatus::Ok))
            }
            _ => None,
        })
        .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let resources = self.live_list(&exposed, "resources/list", "uri").await;
        serde_json::from_value(json!({"resources": resources})).map_err(|e| {
            ErrorData::internal_error(format!("upstream resources are malformed: {e}"), None)
        })
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: McpContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let templates = self.live_list(&exposed, "resources/templates/list", "uriTemplate").await;
        serde_json::from_value(json!({"resourceTemplates": templates})).map_err(|e| {
            ErrorData::internal_error(
                format!("upstream resource templates are malformed: {e}"),
                None,
            )
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let uri = request.uri.clone();
        let mut audit = Audit::new(
            &caller,
            AuditedMethod::ResourcesRead,
            Self::session_id(&context.extensions),
            uri.clone(),
        );
        let resolved = upstream_uri(&uri)
            .and_then(|(server, upstream)| Some((exposed.server(server)?, upstream)))
            .filter(|(s, _)| self.is_enabled(&exposed, &s.id));
        let Some((server, upstream)) = resolved else {
            let message = format!("unknown resource `{}`", truncate(&uri));
            audit.record(&self.gateway, CallStatus::NotFound, Some(message.clone()), None).await?;
            return Err(ErrorData::resource_not_found(message, None));
        };
        audit.server = Some((&server.id, server.url.as_str()));
        audit.upstream_name = Some(upstream.to_owned());
        let mut upstream_request = request.clone();
        upstream_request.uri = upstream.to_owned();
        upstream_request.meta = None;
        let request = ClientRequest::ReadResourceRequest(rmcp::model::ReadResourceRequest::new(
            upstream_request,
        ));
        self.audited(
            audit,
            &server.id,
            "resources/read",
            request,
            &context,
            |answer| match answer {
                ServerResult::ReadResourceResult(result) => {
                    let mut value = serde_json::to_value(&result).unwrap_or(Value::Null);
                    if let Some(contents) = value.get_mut("contents") {
                        remap_uris(contents, &server.id, "uri");
                    }
                    let mut result: rmcp::model::ReadResourceResult =
                        serde_json::from_value(value).unwrap_or(result);
                    complete(&mut result.result_type);
                    Some((ReadResourceResponse::Complete(result), CallStatus::Ok))
                }
                _ => None,
            },
        )
        .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let exposed = self.request_view(&context.extensions, &caller)?;
        let mut upstream_request = request.clone();
        let server_id = match &mut upstream_request.r#ref {
            Reference::Prompt(prompt) => {
                let (server, item) = exposed.prompt(&prompt.name).ok_or_else(|| {
                    ErrorData::invalid_params(
                        format!("unknown prompt `{}`", truncate(&prompt.name)),
                        None,
                    )
                })?;
                prompt.name = item.upstream_name.clone();
                server.id.clone()
            }
            Reference::Resource(resource) => {
                let (server, upstream) = upstream_uri(&resource.uri)
                    .and_then(|(s, u)| Some((exposed.server(s)?, u.to_owned())))
                    .ok_or_else(|| {
                        ErrorData::invalid_params(
                            format!("unknown resource template `{}`", truncate(&resource.uri)),
                            None,
                        )
                    })?;
                resource.uri = upstream;
                server.id.clone()
            }
            _ => return Err(ErrorData::invalid_params("unsupported completion reference", None)),
        };
        if !self.is_enabled(&exposed, &server_id) {
            return Err(ErrorData::invalid_params(
                format!("server `{server_id}` is toggled off in this session"),
                None,
            ));
        }
        let connection = self.connection(&server_id).await?;
        upstream_request.meta = None;
        let request =
            ClientRequest::CompleteRequest(rmcp::model::CompleteRequest::new(upstream_request));
        match self.forward(&server_id, &connection, request, &context).await {
            Ok((ServerResult::CompleteResult(mut result), _)) => {
                complete(&mut result.result_type);
                Ok(result)
            }
            Ok(_) => Ok(CompleteResult::default()),
            Err((_, error, _)) => Err(error),
        }
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        context: McpContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Upstream connections are shared by every session, so one client's log level is not
        // forwarded to them; the request is accepted so clients that send it keep working.
        self.caller(&context.extensions)?;
        Ok(())
    }

    /// rmcp hands over every request it could not parse: an unknown method, but also a known
    /// method whose params do not fit its schema (say, `tools/call` with `arguments` that are
    /// not an object). The first is `-32601`; the second is `-32602`, not "method not found",
    /// and a malformed `tools/call` is audited like any other.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: McpContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let method = request.method.as_str();
        if !KNOWN_METHODS.contains(&method) {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("method `{}` not found", truncate(method)),
                None,
            ));
        }
        let why = match method {
            CallToolRequestMethod::VALUE => request.params_as::<CallToolRequestParams>().err(),
            GetPromptRequestMethod::VALUE => request.params_as::<GetPromptRequestParams>().err(),
            ReadResourceRequestMethod::VALUE => {
                request.params_as::<ReadResourceRequestParams>().err()
            }
            _ => None,
        };
        let message = match why {
            Some(error) => format!("invalid params of `{method}`: {error}"),
            None => format!("invalid params of `{method}`"),
        };
        if method == CallToolRequestMethod::VALUE {
            let name = request.params.as_ref().and_then(|p| p.get("name")).and_then(Value::as_str);
            let audit = Audit::new(
                &caller,
                AuditedMethod::ToolsCall,
                Self::session_id(&context.extensions),
                name.map(truncate).unwrap_or_default(),
            );
            audit.record(&self.gateway, CallStatus::Invalid, Some(message.clone()), None).await?;
        }
        Err(ErrorData::invalid_params(message, None))
    }
}

/// The client requests rmcp parses into their own types; one of them reaching
/// `on_custom_request` had params rmcp could not parse.
const KNOWN_METHODS: [&str; 21] = [
    PingRequestMethod::VALUE,
    InitializeResultMethod::VALUE,
    DiscoverRequestMethod::VALUE,
    CompleteRequestMethod::VALUE,
    SetLevelRequestMethod::VALUE,
    GetPromptRequestMethod::VALUE,
    ListPromptsRequestMethod::VALUE,
    ListResourcesRequestMethod::VALUE,
    ListResourceTemplatesRequestMethod::VALUE,
    ReadResourceRequestMethod::VALUE,
    SubscriptionsListenRequestMethod::VALUE,
    SubscribeRequestMethod::VALUE,
    UnsubscribeRequestMethod::VALUE,
    CallToolRequestMethod::VALUE,
    ListToolsRequestMethod::VALUE,
    GetTaskMethod::VALUE,
    UpdateTaskMethod::VALUE,
    CancelTaskMethod::VALUE,
    ListSkillsRequestMethod::VALUE,
    GetSkillRequestMethod::VALUE,
    ReadResourceDirectoryRequestMethod::VALUE,
];

/// Finds the caller's exposure and a `call_tool` decision: used by [`PortalSession`].
pub(crate) fn context_of(caller: &PortalCaller) -> RequestContext {
    caller.context()
}
