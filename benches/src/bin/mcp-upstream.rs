//! A fast local MCP server for the load harness (`benches/load/mcp.sh`).
//!
//! Streamable HTTP on rmcp + rmcp-actix-web, stateless with JSON responses (no session, no SSE
//! framing), so that it costs as little as possible next to the portal it is compared with.
//! Tools: `echo` (answers its `text` argument) and, with `--tools N`, N synthetic tools
//! `tool_0000` ... that also echo, each with a one-parameter input schema; with `--rich`, each
//! shaped like a real API's list tool instead (a two-sentence description and seven documented
//! parameters, with an enum, an array, a date and bounded integers), for measuring what a tool
//! list costs an agent.
//!
//!     mcp-upstream --listen 127.0.0.1:9100 --tools 49
//!
//! The endpoint is `http://<listen>/mcp`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use rmcp_actix_web::transport::StreamableHttpService;
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "A fast local MCP server with an `echo` tool, for load tests")]
struct Args {
    /// Address to listen on; the MCP endpoint is `/mcp`.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: std::net::SocketAddr,
    /// Synthetic tools to list besides `echo`.
    #[arg(long, default_value_t = 0)]
    tools: usize,
    /// Synthetic tools shaped like a real API's (larger descriptions and schemas).
    #[arg(long)]
    rich: bool,
    /// actix-web worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Milliseconds each tool call waits before it answers (on a timer, without using CPU), to
    /// stand in for an upstream's service time.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

/// The server: its tool list is built once and shared by every request.
#[derive(Debug, Clone)]
struct Upstream {
    tools: Arc<Vec<Tool>>,
    delay: std::time::Duration,
}

impl Upstream {
    fn new(synthetic: usize, rich: bool, delay: std::time::Duration) -> Self {
        let schema = |description: &str| {
            let value = json!({
                "type": "object",
                "properties": {"text": {"type": "string", "description": description}},
                "required": ["text"]
            });
            match value {
                Value::Object(map) => Arc::new(map),
                _ => Arc::default(),
            }
        };
        let mut tools =
            vec![Tool::new("echo", "Answers its `text` argument", schema("What to echo"))];
        tools.extend((0..synthetic).map(|i| {
            if rich {
                return rich_tool(i);
            }
            Tool::new(
                format!("tool_{i:04}"),
                format!("Synthetic tool number {i}: echoes its `text` argument like `echo`"),
                schema("Any text"),
            )
        }));
        Upstream { tools: Arc::new(tools), delay }
    }
}

/// A synthetic tool shaped like a real API's list tool.
fn rich_tool(i: usize) -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {
            "owner": {"type": "string", "description": "The account that owns the collection"},
            "repo": {"type": "string", "description": "The collection's name"},
            "state": {"type": "string", "enum": ["open", "closed", "all"], "description": "Which records to list (default open)"},
            "labels": {"type": "array", "items": {"type": "string"}, "description": "Only records that carry all of these labels"},
            "since": {"type": "string", "format": "date-time", "description": "Only records updated at or after this time (ISO 8601)"},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Results per page (default 30)"},
            "page": {"type": "integer", "minimum": 1, "description": "The page of results to return (default 1)"}
        },
        "required": ["owner", "repo"]
    });
    let schema = match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    };
    Tool::new(
        format!("tool_{i:04}"),
        format!(
            "List the records of collection {i} that match the given filters, newest first. Use it to find records by state, label or date before reading or changing one of them; results are paginated."
        ),
        schema,
    )
}

impl ServerHandler for Upstream {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = serde_json::from_value(json!({})).ok();
        let mut info = InitializeResult::default();
        info.capabilities = capabilities;
        info.server_info = rmcp::model::Implementation::new("mcp-upstream", "0");
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.tools.iter().any(|t| t.name == request.name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let text = match request.arguments.as_ref().and_then(|a| a.get("text")) {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![ContentBlock::text(text)])))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let upstream =
        Upstream::new(args.tools, args.rich, std::time::Duration::from_millis(args.delay_ms));
    let service = StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(upstream.clone())))
        .session_manager(Arc::new(
            rmcp::transport::streamable_http_server::session::local::LocalSessionManager::default(),
        ))
        .stateful_mode(false)
        .json_response(true)
        .allowed_hosts(Vec::new())
        .build();
    let listen = args.listen;
    actix_web::rt::System::new().block_on(async move {
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new().service(service.clone().scope_with_path("/mcp"))
        })
        .workers(args.workers.max(1))
        .bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?
        .run();
        println!("Listening on http://{listen}/mcp");
        server.await.context("the server stopped")
    })
}
