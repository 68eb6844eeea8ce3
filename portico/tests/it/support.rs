//! A Portico served over real HTTP for the CLI's tests: a fresh SQLite log and vault in a
//! temporary directory, bootstrapped with a known account and admin token, through the same
//! application layer and `create_app` as `portico serve`.

use actix_web::dev::ServerHandle;
use portico_frontend_http::state::AppState;
use tempfile::TempDir;

pub use portico_app::testing::{ACCOUNT_ID, ADMIN_TOKEN};

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
        let (app, account) = portico_app::testing::sqlite_app(dir.path()).await.unwrap();
        let state = AppState::new(app, account);
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
