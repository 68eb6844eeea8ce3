//! A Portico served on a real port, as `portico serve` serves it, with the parts a call through
//! a portal needs: a real upstream MCP server (rmcp's streamable HTTP server, in this process,
//! on a port of its own, with an `echo` tool that counts its calls), a server, a portal, a
//! service token and a policy set up through the admin API, and real MCP clients (rmcp's
//! streamable HTTP client) sending the service token's headers.
//!
//! The log is SQLite (in a temporary directory) or PostgreSQL (a schema of its own in
//! `PORTICO_TEST_POSTGRES_URL`; without the variable the test fails naming it, unless
//! `PORTICO_SKIP_POSTGRES=1` says to skip it). [`Live::refuse_appends`] makes the log refuse
//! every insert from another connection, as a full disk or a revoked grant would.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::{Event, EventLog};
use portico_frontend_http::state::AppState;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{RoleClient, RoleServer, ServerHandler, ServiceExt};
use rmcp_actix_web::transport::StreamableHttpService;
use serde_json::{Value, json};

use crate::support::{ACCOUNT_ID, ADMIN_TOKEN};

/// The ids the set-up uses.
pub const SERVER_ID: &str = "echoer";
pub const PORTAL_ID: &str = "team";

/// Which log backs the portal.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

enum Storage {
    Sqlite(PathBuf),
    Postgres(Box<tokio_postgres::Config>),
}

/// A running Portico with one portal in front of one upstream.
pub struct Live {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    /// How many times the upstream's `echo` ran.
    pub upstream_calls: Arc<AtomicUsize>,
    /// The service token's id (as `GET .../access/service_tokens/{id}` names it).
    pub token_id: String,
    /// The service token's `CF-Access-Client-Id` and `CF-Access-Client-Secret`.
    credentials: (String, String),
    storage: Storage,
    _dir: tempfile::TempDir,
}

/// The status and body of an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

impl Live {
    /// Starts everything and sets the portal up. `None` only when PostgreSQL is asked for and
    /// `PORTICO_SKIP_POSTGRES=1`.
    pub async fn start(backend: Backend) -> Option<Live> {
        Live::start_with_idle_timeout(backend, portico_frontend_http::mcp::SESSION_IDLE_TIMEOUT)
            .await
    }

    /// [`Live::start`], MCP sessions ending after `idle` without a request.
    pub async fn start_with_idle_timeout(backend: Backend, idle: Duration) -> Option<Live> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let (log, storage): (Arc<dyn EventLog>, Storage) = match backend {
            Backend::Sqlite => {
                let path = dir.path().join("portico.db");
                let log = SqliteLog::open(&path, SqliteOptions::default()).unwrap();
                (Arc::new(log), Storage::Sqlite(path))
            }
            Backend::Postgres => {
                let config = postgres_schema().await?;
                let log =
                    PostgresLog::connect(config.clone(), PostgresOptions::default()).await.unwrap();
                (Arc::new(log), Storage::Postgres(Box::new(config)))
            }
        };
        let mut gateway = portico_gateway::GatewayConfig::default();
        gateway.upstream.policy.allow_private = true;
        gateway.upstream.call_timeout = Duration::from_secs(20);
        let (app, account) =
            portico_app::testing::app_with(log, dir.path(), gateway).await.unwrap();
        let state = AppState::new(app, account).with_session_idle_timeout(idle);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app_state = state.clone();
        let server = actix_web::HttpServer::new(move || {
            portico_frontend_http::create_app(app_state.clone())
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .disable_signals()
        .shutdown_timeout(1)
        .run();
        actix_web::rt::spawn(server);

        let upstream_calls = Arc::new(AtomicUsize::new(0));
        let upstream_url = start_upstream(Arc::clone(&upstream_calls));
        let mut live = Live {
            base,
            state,
            http: reqwest::Client::new(),
            upstream_calls,
            token_id: String::new(),
            credentials: (String::new(), String::new()),
            storage,
            _dir: dir,
        };
        live.set_up(&upstream_url).await;
        Some(live)
    }

    /// The server (synced), the portal, a service token and a policy that lets it in.
    async fn set_up(&mut self, upstream_url: &str) {
        let mcp = "/access/ai-controls/mcp";
        let created = self
            .admin(
                reqwest::Method::POST,
                &format!("{mcp}/servers"),
                Some(json!({"id": SERVER_ID, "name": "Echoer", "hostname": upstream_url,
                            "auth_type": "unauthenticated"})),
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.text);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let server =
                self.admin(reqwest::Method::GET, &format!("{mcp}/servers/{SERVER_ID}"), None).await;
            match server.json()["result"]["status"].as_str() {
                Some("ready") => break,
                Some("waiting") => {}
                other => panic!("the server did not sync ({other:?}): {}", server.text),
            }
            assert!(Instant::now() < deadline, "the server was not synced within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let portal = self
            .admin(
                reqwest::Method::POST,
                &format!("{mcp}/portals"),
                Some(json!({"id": PORTAL_ID, "name": "Team", "hostname": "team.example.test",
                            "servers": [{"server_id": SERVER_ID, "on_behalf": false}]})),
            )
            .await;
        assert_eq!(portal.status, 200, "{}", portal.text);
        let token = self
            .admin(reqwest::Method::POST, "/access/service_tokens", Some(json!({"name": "ci"})))
            .await;
        assert_eq!(token.status, 200, "{}", token.text);
        let token = token.json()["result"].clone();
        let policy = format!(
            "permit(principal == Portico::ServiceToken::\"{}\", action, resource);",
            token["id"].as_str().unwrap()
        );
        let published = self
            .admin(
                reqwest::Method::POST,
                "/cedar/policies",
                Some(json!({"name": "ci uses the portal", "policy": policy})),
            )
            .await;
        assert_eq!(published.status, 200, "{}", published.text);
        self.token_id = token["id"].as_str().unwrap().to_owned();
        self.credentials = (
            token["client_id"].as_str().unwrap().to_owned(),
            token["client_secret"].as_str().unwrap().to_owned(),
        );
    }

    /// An admin API request (`/client/v4/accounts/{ACCOUNT_ID}{suffix}`) with the admin token.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        suffix: &str,
        body: Option<Value>,
    ) -> Answer {
        let url = format!("{}/client/v4/accounts/{ACCOUNT_ID}{suffix}", self.base);
        let mut request = self.http.request(method, url).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    /// `GET path` without credentials (`/readyz`, `/metrics`).
    pub async fn get(&self, path: &str) -> Answer {
        answer(self.http.get(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    /// An initialized MCP session with the portal, as the service token.
    pub async fn mcp_client(&self) -> RunningService<RoleClient, ()> {
        let headers = HashMap::from([
            (
                reqwest::header::HeaderName::from_static("cf-access-client-id"),
                reqwest::header::HeaderValue::from_str(&self.credentials.0).unwrap(),
            ),
            (
                reqwest::header::HeaderName::from_static("cf-access-client-secret"),
                reqwest::header::HeaderValue::from_str(&self.credentials.1).unwrap(),
            ),
        ]);
        let config = StreamableHttpClientTransportConfig::with_uri(format!(
            "{}/portals/{PORTAL_ID}/mcp",
            self.base
        ))
        .custom_headers(headers);
        let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
        ().serve(transport).await.unwrap()
    }

    /// A POST of `message` to the portal's MCP endpoint as the service token, as MCP clients
    /// send it (both answer types accepted, the protocol revision, the session if any), plus
    /// `extra` headers.
    pub fn mcp_post(
        &self,
        session: Option<&str>,
        message: &Value,
        extra: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(format!("{}/portals/{PORTAL_ID}/mcp", self.base))
            .header("accept", "application/json, text/event-stream")
            .header("cf-access-client-id", &self.credentials.0)
            .header("cf-access-client-secret", &self.credentials.1)
            .json(message);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request
    }

    /// The service token's `CF-Access-Client-Id`.
    pub fn client_id(&self) -> &str {
        &self.credentials.0
    }

    /// The service token's `CF-Access-Client-Secret`.
    pub fn client_secret(&self) -> &str {
        &self.credentials.1
    }

    /// The `PortalRequestHandled` events in the log, oldest first.
    pub async fn call_events(&self) -> Vec<Value> {
        let stream = format!("calls-{PORTAL_ID}");
        let events = self.state.app.log.read_stream(&stream, 0, 10_000).await.unwrap();
        events
            .into_iter()
            .map(|recorded| match recorded.event {
                Event::PortalRequestHandled(event) => serde_json::to_value(event).unwrap(),
                other => panic!("not a call event in {stream}: {other:?}"),
            })
            .collect()
    }

    /// From now on the log refuses every insert (a trigger, created over another connection).
    pub async fn refuse_appends(&self) {
        match &self.storage {
            Storage::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute_batch(
                    "CREATE TRIGGER refuse_appends BEFORE INSERT ON events \
                     BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
                )
                .unwrap();
            }
            Storage::Postgres(config) => {
                postgres(config)
                    .await
                    .batch_execute(
                        "CREATE FUNCTION refuse_appends() RETURNS trigger LANGUAGE plpgsql AS \
                         $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$; \
                         CREATE TRIGGER refuse_appends BEFORE INSERT ON portico_events \
                         FOR EACH ROW EXECUTE FUNCTION refuse_appends();",
                    )
                    .await
                    .unwrap();
            }
        }
    }

    /// Undoes [`Live::refuse_appends`].
    pub async fn accept_appends(&self) {
        match &self.storage {
            Storage::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute_batch("DROP TRIGGER refuse_appends;").unwrap();
            }
            Storage::Postgres(config) => {
                postgres(config)
                    .await
                    .batch_execute("DROP TRIGGER refuse_appends ON portico_events;")
                    .await
                    .unwrap();
            }
        }
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    Answer { status, text }
}

async fn postgres(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    actix_web::rt::spawn(connection);
    client
}

/// A fresh schema in `PORTICO_TEST_POSTGRES_URL`, selected by the returned configuration.
async fn postgres_schema() -> Option<tokio_postgres::Config> {
    let url = match std::env::var("PORTICO_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) if std::env::var("PORTICO_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("skipped: PORTICO_SKIP_POSTGRES=1");
            return None;
        }
        Err(_) => panic!(
            "PORTICO_TEST_POSTGRES_URL is not set: run `scripts/test`, which starts PostgreSQL, \
             or set PORTICO_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
        ),
    };
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    postgres(&config).await.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    config.options(format!("-c search_path={schema}"));
    Some(config)
}

/// Serves the upstream on a free port; returns its MCP endpoint.
fn start_upstream(calls: Arc<AtomicUsize>) -> String {
    let service = StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(Echo { calls: Arc::clone(&calls) })))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .allowed_hosts(Vec::new())
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().service(service.clone().scope_with_path("/mcp"))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .disable_signals()
    .shutdown_timeout(1)
    .run();
    actix_web::rt::spawn(server);
    url
}

/// The upstream: one tool, `echo`, that answers its `text` argument.
#[derive(Debug, Clone)]
struct Echo {
    calls: Arc<AtomicUsize>,
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = serde_json::from_value(json!({})).ok();
        let mut info = InitializeResult::default();
        info.capabilities = capabilities;
        info.server_info = rmcp::model::Implementation::new("echoer", "0");
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}},
                            "required": ["text"]});
        let Value::Object(schema) = schema else { unreachable!() };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "echo",
            "Answers its `text` argument",
            Arc::new(schema),
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // `progress`: that many progress notifications first, when the call has a token.
        let steps =
            request.arguments.as_ref().and_then(|a| a.get("progress")).and_then(Value::as_u64);
        if let (Some(steps), Some(token)) = (steps, context.meta.get_progress_token()) {
            for step in 1..=steps {
                let params = ProgressNotificationParam::new(token.clone(), step as f64)
                    .with_total(steps as f64);
                context.peer.notify_progress(params).await.unwrap();
            }
            // Then works a little: rmcp's client hands each notification to a task of its own,
            // so progress sent the instant before the answer can trail it.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // `wait_ms`: answers that much later, or not at all when the call is cancelled first.
        let wait =
            request.arguments.as_ref().and_then(|a| a.get("wait_ms")).and_then(Value::as_u64);
        if let Some(wait) = wait {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
                () = context.ct.cancelled() => {
                    return Err(ErrorData::internal_error("cancelled by the portal", None));
                }
            }
        }
        let text = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![ContentBlock::text(text)])))
    }
}
