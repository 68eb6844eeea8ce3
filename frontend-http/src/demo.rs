//! `portico serve --demo`: a working portal in one command.
//!
//! The demo mounts a small upstream MCP server in the same process (`/demo-upstream/mcp`, a
//! few useful tools), then sets up, through the admin API like any admin would: the server
//! `demo`, the portal `demo`, a service token `demo` (rotated on every start, so its secret can
//! be printed) and a policy that lets that token use the portal. It prints how to connect.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use portico_core::{Actor, EventLog};
use portico_projections::{ProjectionRunner, ReadModels};
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

use crate::bootstrap;
use crate::token;
use portico_core::domain::account::TokenScope;

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
/// demo service token, through the admin API at `base` (`http://host:port`). A temporary
/// edit token is created for this and revoked at the end.
pub async fn setup(
    log: &dyn EventLog,
    models: &ProjectionRunner<ReadModels>,
    base: &str,
    account_id: &str,
) -> anyhow::Result<DemoAccess> {
    let setup_token = token::generate()?;
    bootstrap::create_token(
        log,
        &setup_token,
        "demo set-up",
        TokenScope::Edit,
        Actor::system("demo"),
    )
    .await?;
    let head = log.head_position().await?;
    models.wait_for(head, std::time::Duration::from_secs(10)).await?;
    let result = configure(base, account_id, &setup_token.secret).await;
    if let Err(error) =
        bootstrap::revoke_token(log, &setup_token.token_id, Actor::system("demo")).await
    {
        tracing::warn!(%error, "the demo set-up token could not be revoked");
    }
    result
}

async fn configure(base: &str, account_id: &str, api_token: &str) -> anyhow::Result<DemoAccess> {
    let client = reqwest::Client::builder().build()?;
    let api = format!("{base}/client/v4/accounts/{account_id}");
    let mcp = format!("{api}/access/ai-controls/mcp");
    let call = |method: reqwest::Method, url: String, body: Option<Value>| {
        let mut request = client.request(method, url).bearer_auth(api_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            anyhow::Ok((status, body))
        }
    };
    let upstream = format!("{base}{UPSTREAM_PATH}");
    let (status, _) = call(reqwest::Method::GET, format!("{mcp}/servers/{DEMO_ID}"), None).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{mcp}/servers"),
            Some(json!({"id": DEMO_ID, "name": "Demo tools", "hostname": upstream,
                "auth_type": "unauthenticated", "description": "Built into `portico serve --demo`"})),
        )
        .await?;
        anyhow::ensure!(status.is_success(), "creating the demo server failed: {body}");
    } else {
        // Sync again: the previous run's connection is gone.
        let _ = call(reqwest::Method::POST, format!("{mcp}/servers/{DEMO_ID}/sync"), None).await?;
    }
    let (status, _) = call(reqwest::Method::GET, format!("{mcp}/portals/{DEMO_ID}"), None).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{mcp}/portals"),
            Some(json!({"id": DEMO_ID, "name": "Demo portal", "hostname": "demo.localhost",
                "servers": [{"server_id": DEMO_ID, "on_behalf": false}]})),
        )
        .await?;
        anyhow::ensure!(status.is_success(), "creating the demo portal failed: {body}");
    }
    let (_, tokens) =
        call(reqwest::Method::GET, format!("{api}/access/service_tokens?per_page=1000"), None)
            .await?;
    let existing = tokens["result"]
        .as_array()
        .and_then(|list| list.iter().find(|t| t["name"] == DEMO_ID))
        .and_then(|t| t["id"].as_str().map(str::to_owned));
    let (status, body) = match &existing {
        Some(id) => {
            call(reqwest::Method::POST, format!("{api}/access/service_tokens/{id}/rotate"), None)
                .await?
        }
        None => {
            call(
                reqwest::Method::POST,
                format!("{api}/access/service_tokens"),
                Some(json!({"name": DEMO_ID})),
            )
            .await?
        }
    };
    anyhow::ensure!(status.is_success(), "creating the demo service token failed: {body}");
    let result = &body["result"];
    let token_id = result["id"].as_str().context("the service token answer has no id")?.to_owned();
    let client_id = result["client_id"]
        .as_str()
        .context("the service token answer has no client_id")?
        .to_owned();
    let client_secret = result["client_secret"]
        .as_str()
        .context("the service token answer has no client_secret")?
        .to_owned();
    let policy = format!(
        "// Created by `portico serve --demo`: the demo service token may use the demo portal.\n\
         permit(principal == Portico::ServiceToken::\"{token_id}\", action, resource in Portico::Portal::\"{DEMO_ID}\");"
    );
    let (status, body) = call(
        reqwest::Method::PUT,
        format!("{api}/cedar/policies/{POLICY_ID}"),
        Some(json!({"name": "Demo service token", "policy": policy})),
    )
    .await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{api}/cedar/policies"),
            Some(json!({"id": POLICY_ID, "name": "Demo service token", "policy": policy})),
        )
        .await?;
        anyhow::ensure!(status.is_success(), "creating the demo policy failed: {body}");
    } else {
        anyhow::ensure!(status.is_success(), "updating the demo policy failed: {body}");
    }
    Ok(DemoAccess { portal_url: format!("{base}/portals/{DEMO_ID}/mcp"), client_id, client_secret })
}
