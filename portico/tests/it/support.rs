//! A Portico served over real HTTP for the CLI's tests: a fresh SQLite log and vault in a
//! temporary directory, bootstrapped with a known account and admin token, through the same
//! application layer and `create_app` as `portico serve`.

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use portico_app::App;
use portico_core::EventLog;
use portico_core::domain::account::AccountId;
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::vault::sqlite::SqliteVaultStore;
use portico_core::vault::{KeySource, MasterKey, Vault};
use portico_frontend_http::state::AppState;
use portico_projections::{NoCheckpoints, ProjectionRunner, ReadModels, RunnerOptions};
use tempfile::TempDir;

/// The account of every test server.
pub const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// Its bootstrap admin token (edit scope).
pub const ADMIN_TOKEN: &str = "AdminTestToken0123456789abcdefghijklmnop";

/// A running server; stopped by [`Served::stop`].
pub struct Served {
    /// `http://127.0.0.1:port`
    pub url: String,
    handle: ServerHandle,
    _dir: TempDir,
}

impl Served {
    pub async fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portico.db");
        let log: Arc<dyn EventLog> =
            Arc::new(SqliteLog::open(&path, SqliteOptions::default()).unwrap());
        let store = Arc::new(SqliteVaultStore::open(path.clone()).await.unwrap());
        let vault =
            Vault::open(MasterKey::from_bytes([7; 32]), KeySource::Config, store).await.unwrap();
        let account = AccountId::parse(ACCOUNT_ID).unwrap();
        let boot = portico_app::account::bootstrap(log.as_ref(), Some(account), Some(ADMIN_TOKEN))
            .await
            .unwrap();
        let models = Arc::new(
            ProjectionRunner::<ReadModels>::start(
                Arc::clone(&log),
                Arc::new(NoCheckpoints),
                RunnerOptions::default(),
            )
            .await
            .unwrap(),
        );
        let app = App::start(log, Arc::new(vault), models, Default::default());
        let state = AppState::new(app, boot.account_id);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server =
            actix_web::HttpServer::new(move || portico_frontend_http::create_app(state.clone()))
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Served { url: format!("http://{addr}"), handle, _dir: dir }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}
