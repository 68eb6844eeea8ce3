//! Token endpoint load: refresh-token grants per second through the real HTTP stack (the
//! admin app served by actix-web on a loopback port, the embedded SQLite log), with N
//! concurrent clients, each rotating its own refresh token in a loop.
//!
//!   cargo run --release -p portico-benches --bin refresh-load -- [CLIENTS] [SECONDS]
//!
//! Each client holds one grant, created through the application layer (authorize, then redeem
//! the code), so every request is a full refresh: the grant's rules, the Cedar `connect` check,
//! an append with the expected version, and the wait for the read models. Timing is printed,
//! never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portico_app::sign_in::{AuthorizationRequest, SignInSettings};
use portico_core::domain::grant::GrantUser;
use portico_core::domain::ids::PortalId;
use portico_core::domain::portal::PortalInput;
use portico_frontend_http::state::AppState;

/// A verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9E1vYMmy7sCt5m3CSXxQ8hdRg";
const CHALLENGE: &str = "xcbZOoE7jIS1XSoIOS1zV3mk2cyjrFtvRZzOpbiWloA";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = args.get(1).map_or(Ok(64), |a| a.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(10), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let (app, account) =
        portico_app::testing::sqlite_app(dir.path()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let actor = portico_core::Actor::system("bench");
    let portal = PortalId::parse("team")?;
    let input: PortalInput = serde_json::from_value(
        serde_json::json!({"name": "Team", "hostname": "team.example.com"}),
    )?;
    app.create_portal(&portal, input, &actor).await?;
    app.create_policy(
        portico_app::policies::NewPolicy {
            id: None,
            name: "everyone connects".into(),
            description: None,
            policy: "permit (principal is Portico::User, action == Portico::Action::\"connect\", resource);".into(),
            enabled: true,
        },
        &actor,
    )
    .await?;
    let client = app
        .register_client(
            &portal,
            portico_app::sign_in::ClientRegistration {
                client_name: Some("bench".into()),
                redirect_uris: vec![REDIRECT.into()],
                ..Default::default()
            },
            &Default::default(),
            None,
        )
        .await?;
    let settings = SignInSettings::default();
    let mut refresh_tokens = Vec::new();
    for i in 0..clients {
        let user = GrantUser {
            id: format!("user-{i}"),
            email: format!("user{i}@example.com"),
            name: format!("User {i}"),
            idp: "onetimepin".into(),
            groups: Vec::new(),
            claims: Default::default(),
        };
        let request = AuthorizationRequest {
            portal_id: portal.clone(),
            client_id: client.client_id.clone(),
            redirect_uri: REDIRECT.into(),
            code_challenge: CHALLENGE.into(),
            resource: "http://127.0.0.1/portals/team/mcp".into(),
            scope: None,
        };
        let code = app.authorize_grant(request, user, &settings, None).await?;
        let tokens = app
            .redeem_code(&portal, &code.0, &client.client_id, REDIRECT, VERIFIER, &settings)
            .await?;
        refresh_tokens.push(tokens.refresh_token.0);
    }

    let state = AppState::new(Arc::clone(&app), account);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server =
        actix_web::HttpServer::new(move || portico_frontend_http::create_app(state.clone()))
            .workers(2)
            .listen(listener)?
            .disable_signals()
            .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let url = format!("http://127.0.0.1:{port}/portals/team/oauth/token");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut refresh in refresh_tokens {
        let (http, url, client_id) = (http.clone(), url.clone(), client.client_id.clone());
        let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "grant_type=refresh_token&refresh_token={refresh}&client_id={client_id}"
                    ))
                    .send()
                    .await;
                let body: serde_json::Value = match answer {
                    Ok(a) if a.status().is_success() => a.json().await.unwrap(),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                };
                latencies.push(sent.elapsed());
                refresh = body["refresh_token"].as_str().unwrap().to_owned();
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let done = done.load(Ordering::Relaxed);
    println!(
        "{clients} clients, {:.1} s: {done} refreshes, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        failed.load(Ordering::Relaxed),
    );
    handle.stop(true).await;
    app.close().await;
    Ok(())
}
