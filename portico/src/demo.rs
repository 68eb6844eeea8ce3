//! `portico serve --demo`: a working portal in one command.
//!
//! The demo mounts a small upstream MCP server in the same process (`/demo-upstream/mcp`, a
//! few useful tools), then sets up, through the application layer like the admin API: the
//! server `demo`, the portal `demo`, a service token `demo` (rotated on every start, so its
//! secret can be printed) and a policy that lets that token use the portal. It prints how to
//! connect.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use portico_app::App;
use portico_app::policies::{NewPolicy, PolicyChanges};
use portico_app::servers::{Credentials, NewServer};
use portico_core::Actor;
use portico_core::domain::ids::{PolicyId, PortalId, ServerId};
use portico_core::domain::portal::{PortalInput, PortalServer};
use portico_core::domain::server::{AuthType, ServerSettings};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{RoleServer, ServerHandler};
use rmcp_actix_web::transport::StreamableHttpService;
use serde_json::{Map, Value, json};

/// Where the demo upstream is mounted.
pub const UPSTREAM_PATH: &str = "/demo-upstream/mcp";
/// The ids the demo uses.
pub const DEMO_ID: &str = "demo";
const POLICY_ID: &str = "demo-service-token";

/// The demo upstream's service.
pub type DemoService = StreamableHttpService<DemoTools, LocalSessionManager>;

/// The demo upstream, mounted by every worker (one session manager).
pub fn upstream_service(shutdown: tokio_util::sync::CancellationToken) -> DemoService {
    StreamableHttpService::builder()
        .cancellation_token(shutdown)
        .service_factory(Arc::new(|| Ok(DemoTools)))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .build()
}

/// The routes that mount the demo upstream at [`UPSTREAM_PATH`].
pub fn upstream_routes(
    shutdown: tokio_util::sync::CancellationToken,
) -> portico_frontend_http::state::ExtraRoutes {
    let service = upstream_service(shutdown);
    Arc::new(move |cfg| {
        cfg.service(service.clone().scope_with_path(UPSTREAM_PATH));
    })
}

/// A few tools worth trying through a portal.
#[derive(Debug, Clone, Copy)]
pub struct DemoTools;

fn tool(value: Value) -> Option<Tool> {
    serde_json::from_value(value).ok()
}

fn read_only() -> Value {
    json!({"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false})
}

impl DemoTools {
    fn tools() -> Vec<Tool> {
        [
            json!({"name": "echo", "description": "Echo a message back.",
                "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
                "annotations": read_only()}),
            json!({"name": "add", "description": "Add two numbers.",
                "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]},
                "outputSchema": {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]},
                "annotations": read_only()}),
            json!({"name": "now", "description": "The current date and time (UTC, RFC 3339).",
                "inputSchema": {"type": "object", "properties": {}},
                "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false}}),
            json!({"name": "word_count", "description": "Count the words, lines and characters of a text.",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
                "annotations": read_only()}),
            json!({"name": "roll_dice", "description": "Roll `count` dice with `sides` sides each.",
                "inputSchema": {"type": "object", "properties": {
                    "sides": {"type": "integer", "minimum": 2, "maximum": 1000},
                    "count": {"type": "integer", "minimum": 1, "maximum": 100}}, "required": ["sides"]},
                "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false}}),
        ]
        .into_iter()
        .filter_map(tool)
        .collect()
    }

    fn call(name: &str, args: &Map<String, Value>) -> CallToolResult {
        let text = |key: &str| args.get(key).and_then(Value::as_str);
        let number = |key: &str| args.get(key).and_then(Value::as_f64);
        let failed = |message: String| CallToolResult::error(vec![ContentBlock::text(message)]);
        match name {
            "echo" => match text("message") {
                Some(message) => CallToolResult::success(vec![ContentBlock::text(message)]),
                None => failed("`message` must be a string".to_owned()),
            },
            "add" => match (number("a"), number("b")) {
                (Some(a), Some(b)) => {
                    let sum = json!({"sum": a + b});
                    let mut result = CallToolResult::success(vec![ContentBlock::text(sum.to_string())]);
                    result.structured_content = Some(sum);
                    result
                }
                _ => failed("`a` and `b` must be numbers".to_owned()),
            },
            "now" => CallToolResult::success(vec![ContentBlock::text(
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )]),
            "word_count" => match text("text") {
                Some(t) => CallToolResult::success(vec![ContentBlock::text(
                    json!({"words": t.split_whitespace().count(), "lines": t.lines().count(), "characters": t.chars().count()})
                        .to_string(),
                )]),
                None => failed("`text` must be a string".to_owned()),
            },
            "roll_dice" => {
                let sides = args.get("sides").and_then(Value::as_u64).filter(|s| (2..=1000).contains(s));
                let count = args.get("count").and_then(Value::as_u64).unwrap_or(1);
                match sides {
                    Some(sides) if (1..=100).contains(&count) => {
                        let rolls: Vec<u64> = (0..count).map(|_| random_below(sides) + 1).collect();
                        CallToolResult::success(vec![ContentBlock::text(json!({"rolls": rolls}).to_string())])
                    }
                    _ => failed("`sides` must be 2..=1000 and `count` 1..=100".to_owned()),
                }
            }
            other => failed(format!("no tool `{other}`")),
        }
    }
}

fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0;
    }
    u64::from_le_bytes(bytes) % n
}

impl ServerHandler for DemoTools {
    fn get_info(&self) -> ServerConfig {
        let mut info = InitializeResult::default();
        info.capabilities = ServerCapabilities::default();
        info.capabilities.tools = serde_json::from_value(json!({})).ok();
        info.server_info = Implementation::new("portico-demo", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(Self::tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        Ok(CallToolResponse::Complete(Self::call(&request.name, &args)))
    }
}

/// How to reach the demo portal.
#[derive(Debug)]
pub struct DemoAccess {
    pub portal_url: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Creates what is missing of the demo (server, portal, policy) and a fresh secret for the
/// demo service token, in-process through the application layer, as Portico itself (`demo`).
/// `base` (`http://host:port`) is where this instance listens: the demo server's upstream is
/// mounted there.
pub async fn setup(app: &App, base: &str) -> anyhow::Result<DemoAccess> {
    let actor = Actor::system("demo");
    let server_id = ServerId::try_from(DEMO_ID.to_owned())?;
    let portal_id = PortalId::try_from(DEMO_ID.to_owned())?;
    let policy_id = PolicyId::parse(POLICY_ID)?;
    if app.read(|m| m.catalog.get(&server_id).is_none()) {
        let server = NewServer {
            id: server_id.clone(),
            hostname: format!("{base}{UPSTREAM_PATH}"),
            auth_type: AuthType::Unauthenticated,
            settings: ServerSettings {
                name: "Demo tools".to_owned(),
                description: Some("Built into `portico serve --demo`".to_owned()),
                ..ServerSettings::default()
            },
            credentials: Credentials::default(),
        };
        app.create_server(server, &actor).await.context("creating the demo server failed")?;
    } else {
        // Sync again: the previous run's connection is gone.
        app.sync_server(&server_id).await.context("syncing the demo server failed")?;
    }
    if app.read(|m| m.portals.get(&portal_id).is_none()) {
        let input = PortalInput {
            name: "Demo portal".to_owned(),
            hostname: "demo.localhost".to_owned(),
            description: None,
            code_mode: None,
            allow_code_mode: None,
            secure_web_gateway: false,
            servers: vec![PortalServer {
                server_id: server_id.clone(),
                default_disabled: false,
                on_behalf: false,
                updated_tools: Vec::new(),
                updated_prompts: Vec::new(),
            }],
        };
        app.create_portal(&portal_id, input, &actor)
            .await
            .context("creating the demo portal failed")?;
    }
    // A new secret on every start: the old one was printed by the previous run only.
    let existing = app.read(|m| {
        m.service_tokens.live().find(|t| t.token.name == DEMO_ID).map(|t| t.token.token_id.clone())
    });
    let (token_id, client_secret) = match existing {
        Some(id) => {
            let secret = app.rotate_service_token(&id, &actor).await?;
            (id, secret)
        }
        None => {
            let created = app.create_service_token(DEMO_ID.to_owned(), None, &actor).await?;
            (created.id, created.client_secret)
        }
    };
    let client_id = app
        .read(|m| m.service_tokens.get(&token_id).map(|t| t.token.client_id.clone()))
        .context("the demo service token is missing")?;
    let policy = format!(
        "// Created by `portico serve --demo`: the demo service token may use the demo portal.\n\
         permit(principal == Portico::ServiceToken::\"{token_id}\", action, resource in Portico::Portal::\"{DEMO_ID}\");"
    );
    if app.read(|m| m.policies.get(&policy_id).is_some()) {
        let changes = PolicyChanges {
            name: Some("Demo service token".to_owned()),
            policy: Some(policy),
            ..PolicyChanges::default()
        };
        app.update_policy(&policy_id, changes, &actor)
            .await
            .context("updating the demo policy failed")?;
    } else {
        let new = NewPolicy {
            id: Some(policy_id),
            name: "Demo service token".to_owned(),
            description: None,
            policy,
            enabled: true,
        };
        app.create_policy(new, &actor).await.context("creating the demo policy failed")?;
    }
    Ok(DemoAccess {
        portal_url: format!("{base}/portals/{DEMO_ID}/mcp"),
        client_id,
        client_secret: client_secret.0,
    })
}
