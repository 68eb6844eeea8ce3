//! A Portico app for tests: a fresh SQLite log and vault in a temporary directory, an account
//! with a known id, a known admin (edit) token, the projections running, and helpers that send
//! a request and return the status and the JSON body.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use portico_app::api_tokens;
use portico_core::domain::account::TokenScope;
use portico_core::{Actor, RecordedEvent};
use portico_frontend_http::state::AppState;
use serde_json::Value;
use tempfile::TempDir;

pub use portico_app::testing::{ACCOUNT_ID, ADMIN_TOKEN};

type Call = dyn Fn(TestRequest) -> Pin<Box<dyn Future<Output = ServiceResponse<BoxBody>>>>;

/// One app with its own data directory.
pub struct TestApp {
    pub state: AppState,
    /// The admin token the helpers send.
    pub token: String,
    call: Rc<Call>,
    _dir: TempDir,
}

/// What the app answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    /// The JSON body (`Value::Null` when empty, a string when not JSON).
    pub body: Value,
    /// The body as sent.
    pub text: String,
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_gateway(Default::default()).await
    }

    /// An app whose data plane is configured by `gateway` (upstream policy, timeouts).
    pub async fn with_gateway(gateway: portico_gateway::GatewayConfig) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let log = portico_core::log::sqlite::SqliteLog::open(
            dir.path().join("portico.db"),
            portico_core::log::sqlite::SqliteOptions::default(),
        )
        .unwrap();
        let (app, account) =
            portico_app::testing::app_with(std::sync::Arc::new(log), dir.path(), gateway)
                .await
                .unwrap();
        let state = AppState::new(app, account);
        let app =
            Rc::new(test::init_service(portico_frontend_http::create_app(state.clone())).await);
        let call: Rc<Call> = Rc::new(move |req: TestRequest| {
            let app = Rc::clone(&app);
            Box::pin(async move {
                test::call_service(&*app, req.to_request()).await.map_into_boxed_body()
            })
        });
        let app = TestApp { state, token: ADMIN_TOKEN.to_owned(), call, _dir: dir };
        app.caught_up().await;
        app
    }

    /// `/client/v4/accounts/{ACCOUNT_ID}{suffix}`.
    pub fn api(&self, suffix: &str) -> String {
        format!("/client/v4/accounts/{ACCOUNT_ID}{suffix}")
    }

    /// The servers collection.
    pub fn servers(&self) -> String {
        self.api("/access/ai-controls/mcp/servers")
    }

    /// The portals collection.
    pub fn portals(&self) -> String {
        self.api("/access/ai-controls/mcp/portals")
    }

    /// Sends `method path` with `token` (none: no Authorization header) and a JSON `body`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = TestRequest::default().method(method).uri(path);
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        if let Some(body) = body {
            req = req.set_json(body);
        }
        self.send(req).await
    }

    /// Sends a request built by the caller and returns the response as it is (headers, cookies).
    pub async fn respond(&self, req: TestRequest) -> ServiceResponse<BoxBody> {
        (self.call)(req).await
    }

    /// Sends a request built by the caller (raw bodies, odd headers).
    pub async fn send(&self, req: TestRequest) -> Answer {
        let response = (self.call)(req).await;
        let status = response.status();
        let bytes = test::read_body(response).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Answer { status, body, text }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, Some(&self.token), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.request(Method::POST, path, Some(&self.token), Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.request(Method::PUT, path, Some(&self.token), Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.request(Method::DELETE, path, Some(&self.token), None).await
    }

    /// `GET` with another token, or none.
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> Answer {
        self.request(Method::GET, path, token, None).await
    }

    /// Creates another API token and returns its secret.
    pub async fn create_token(&self, name: &str, scope: TokenScope) -> String {
        let new = api_tokens::generate().unwrap();
        api_tokens::create(self.state.app.log.as_ref(), &new, name, scope, &Actor::system("cli"))
            .await
            .unwrap();
        self.caught_up().await;
        new.secret
    }

    /// The directory of the app's SQLite log (`portico.db`) and vault (`vault.db`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Waits until the read models show everything in the log.
    pub async fn caught_up(&self) {
        let head = self.state.app.log.head_position().await.unwrap();
        self.state.app.models.wait_for(head, Duration::from_secs(10)).await.unwrap();
    }

    /// Every event of the log caused by requests, oldest first: without the results of the
    /// background syncs that creating a server starts (their upstreams, `*.example.com`, do
    /// not exist, so those syncs fail whenever they happen to run).
    pub async fn events(&self) -> Vec<RecordedEvent> {
        let mut events = self.state.app.log.read_all(0, 1_000_000).await.unwrap();
        events.retain(|e| {
            !matches!(
                e.event,
                portico_core::Event::ServerSynced(_) | portico_core::Event::ServerSyncFailed(_)
            )
        });
        events
    }
}

impl Answer {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Answer {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        self
    }

    /// `result` of a successful answer, after checking the status is 200 and the envelope.
    #[track_caller]
    pub fn ok(self) -> Value {
        let answer = self.expect(StatusCode::OK);
        assert_eq!(answer.body["success"], true, "{}", answer.text);
        answer.body["result"].clone()
    }

    /// The message of the one error of a failed answer with `status`.
    #[track_caller]
    pub fn error(self, status: StatusCode) -> String {
        let answer = self.expect(status);
        assert_eq!(answer.body["success"], false, "{}", answer.text);
        assert_eq!(answer.body["result"], Value::Null, "{}", answer.text);
        answer.body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
    }
}
