//! The `portico` command line: `serve`, `token`, `events`, `policies`.

pub mod logs;
pub mod policies;
pub mod portals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use portico_core::domain::account::TokenScope;
use portico_core::log::Subscription;
use portico_core::{Actor, RecordedEvent};
use portico_projections::call_log::CallLog;
use portico_projections::{
    Access, FileCheckpointStore, NoCheckpoints, ProjectionRunner, ReadModels, RunnerOptions,
};

use portico_app::App;
use portico_app::account::{self, ADMIN_TOKEN_ENV};
use portico_app::api_tokens;
use portico_core::domain::account::AccountId;
use portico_frontend_http::state::AppState;

use crate::config::{Config, DEFAULT_LISTEN, EngineChoice, FileConfig, LogFormat};
use crate::storage::Storage;

/// Portico: an MCP server portal.
#[derive(Debug, Parser)]
#[command(name = "portico", version, about)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, env = "PORTICO_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where Portico keeps its data (created if missing) [default: ./data].
    #[arg(long, env = "PORTICO_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` to keep the log in PostgreSQL [default: SQLite in the data directory].
    #[arg(long, env = "PORTICO_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// `process` (survives a crash of Portico) or `power` (survives power loss).
    #[arg(long, env = "PORTICO_DURABILITY", global = true)]
    pub durability: Option<String>,
    /// Log format.
    #[arg(long, env = "PORTICO_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the portal server.
    Serve(ServeArgs),
    /// Manage admin API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the event log: every change, with actor and time.
    Events(EventsArgs),
    /// Policy-as-code: validate, test, push and pull Cedar policies.
    #[command(subcommand)]
    Policies(policies::PoliciesCommand),
    /// The calls through the portals, for auditors: export a period to a file, or follow them.
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// Measurements of a portal: the tokens of its tool list in each context mode.
    #[command(subcommand)]
    Portals(portals::PortalsCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "PORTICO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The externally visible base URL.
    #[arg(long, env = "PORTICO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The account id to create on first start (32 hex characters) [default: generated].
    #[arg(long, env = "PORTICO_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Allow upstream servers on loopback, private, link-local and cloud-metadata addresses
    /// (refused by default: an admin could otherwise make Portico reach internal services).
    #[arg(long, env = "PORTICO_ALLOW_PRIVATE_UPSTREAMS")]
    pub allow_private_upstreams: bool,
    /// Seconds an upstream connection (with the MCP handshake) may take [default: 10].
    #[arg(long, env = "PORTICO_UPSTREAM_CONNECT_TIMEOUT")]
    pub upstream_connect_timeout: Option<u64>,
    /// Seconds an upstream call may take [default: 60].
    #[arg(long, env = "PORTICO_UPSTREAM_CALL_TIMEOUT")]
    pub upstream_call_timeout: Option<u64>,
    /// Seconds between periodic syncs of every server [default: 7200].
    #[arg(long, env = "PORTICO_SYNC_INTERVAL")]
    pub sync_interval: Option<u64>,
    /// Days of calls the portal logs API keeps (the event log keeps every call regardless; `0`
    /// keeps them all) [default: 30].
    #[arg(long, env = "PORTICO_CALL_LOG_RETENTION_DAYS")]
    pub call_log_retention_days: Option<u64>,
    /// Seconds a Logpush batch collects records when its job sets no
    /// `max_upload_interval_seconds` [default: 30].
    #[arg(long, env = "PORTICO_LOGPUSH_INTERVAL")]
    pub logpush_interval: Option<u64>,
    /// The longest wait, in seconds, before a Logpush batch that failed is sent again (the wait
    /// starts at 1 s and doubles) [default: 300].
    #[arg(long, env = "PORTICO_LOGPUSH_MAX_RETRY_WAIT")]
    pub logpush_max_retry_wait: Option<u64>,
    /// Code mode's JavaScript engine: `workerd` (V8 isolates), `quickjs` (embedded), or `auto`
    /// (workerd when found, from `PORTICO_WORKERD` or the PATH) [default: auto].
    #[arg(long, env = "PORTICO_CODEMODE_ENGINE", value_enum)]
    pub codemode_engine: Option<EngineChoice>,
    /// Seconds one code-mode execution may run, waiting on tools included [default: 60].
    #[arg(long, env = "PORTICO_CODEMODE_TIMEOUT")]
    pub codemode_timeout: Option<u64>,
    /// MiB of JavaScript heap one code-mode execution may use [default: 128].
    #[arg(long, env = "PORTICO_CODEMODE_MEMORY_MIB")]
    pub codemode_memory_mib: Option<u64>,
    /// The SMTP server that mails one-time PINs (`smtp://[user:password@]host[:port]`, with
    /// `?tls=required` for STARTTLS, or `smtps://`); without one, PINs are written to the log.
    #[arg(long, env = "PORTICO_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of those mails [default: Portico <portico@localhost>].
    #[arg(long, env = "PORTICO_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Also serve a small built-in upstream MCP server and set up a demo portal, service token
    /// and policy for it (implies `--allow-private-upstreams`); prints how to connect.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// `read` or `edit`.
        #[arg(long, default_value = "read")]
        scope: TokenScope,
    },
    /// List API tokens (never their secrets).
    List,
    /// Revoke an API token by id.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Start after this position.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Keep following new events.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// Resolves flags and environment over the TOML file over the defaults.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let serve = match &self.command {
            Command::Serve(args) => Some(args),
            _ => None,
        };
        let durability = match self.durability.clone().or(file.durability) {
            Some(d) => d.parse().map_err(|e: String| anyhow::anyhow!("durability: {e}"))?,
            None => portico_core::Durability::default(),
        };
        Ok(Config {
            listen: match serve.and_then(|s| s.listen).or(file.listen) {
                Some(addr) => addr,
                None => DEFAULT_LISTEN.parse().context("default listen address")?,
            },
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            database_url: self.database_url.clone().or(file.database_url),
            public_url: serve.and_then(|s| s.public_url.clone()).or(file.public_url),
            account_id: serve.and_then(|s| s.account_id.clone()).or(file.account_id),
            allow_private_upstreams: serve.is_some_and(|s| s.allow_private_upstreams)
                || file.allow_private_upstreams.unwrap_or(false),
            upstream_connect_timeout: std::time::Duration::from_secs(
                serve
                    .and_then(|s| s.upstream_connect_timeout)
                    .or(file.upstream_connect_timeout_secs)
                    .unwrap_or(10)
                    .max(1),
            ),
            upstream_call_timeout: std::time::Duration::from_secs(
                serve
                    .and_then(|s| s.upstream_call_timeout)
                    .or(file.upstream_call_timeout_secs)
                    .unwrap_or(60)
                    .max(1),
            ),
            sync_interval: std::time::Duration::from_secs(
                serve
                    .and_then(|s| s.sync_interval)
                    .or(file.sync_interval_secs)
                    .unwrap_or(7200)
                    .max(60),
            ),
            call_log_retention_days: serve
                .and_then(|s| s.call_log_retention_days)
                .or(file.call_log_retention_days)
                .unwrap_or(30),
            logpush: portico_app::logpush_jobs::worker::LogpushConfig {
                default_interval: std::time::Duration::from_secs(
                    serve
                        .and_then(|s| s.logpush_interval)
                        .or(file.logpush_interval_secs)
                        .unwrap_or(30)
                        .clamp(1, 300),
                ),
                max_backoff: std::time::Duration::from_secs(
                    serve
                        .and_then(|s| s.logpush_max_retry_wait)
                        .or(file.logpush_max_retry_wait_secs)
                        .unwrap_or(300)
                        .clamp(1, 3600),
                ),
            },
            durability,
            smtp_url: serve.and_then(|s| s.smtp_url.clone()).or(file.smtp_url),
            smtp_from: serve
                .and_then(|s| s.smtp_from.clone())
                .or(file.smtp_from)
                .unwrap_or_else(|| "Portico <portico@localhost>".to_owned()),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            master_key: file.master_key,
            codemode_engine: serve
                .and_then(|s| s.codemode_engine)
                .or(file.codemode_engine)
                .unwrap_or_default(),
            codemode_limits: portico_codemode::Limits {
                timeout: std::time::Duration::from_secs(
                    serve
                        .and_then(|s| s.codemode_timeout)
                        .or(file.codemode_timeout_secs)
                        .unwrap_or(60)
                        .clamp(1, 600),
                ),
                memory_bytes: serve
                    .and_then(|s| s.codemode_memory_mib)
                    .or(file.codemode_memory_mib)
                    .unwrap_or(128)
                    .clamp(16, 4096) as usize
                    * 1024
                    * 1024,
                ..portico_codemode::Limits::default()
            },
        })
    }
}

/// Sets up `tracing` in the configured format; `RUST_LOG` filters.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // `policies push --local` writes into this instance's storage, through the application
    // layer like the admin API.
    if let Command::Policies(policies::PoliciesCommand::Push { dir, local: true, .. }) =
        &cli.command
    {
        let config = cli.resolve()?;
        init_logging(config.log_format);
        let count = push_local(&config, dir).await?;
        println!(
            "pushed {count} policies from {} into {}",
            dir.display(),
            config.data_dir.display()
        );
        return Ok(());
    }
    // The other policy commands work on files and the API, not on this instance's storage.
    if let Command::Policies(command) = cli.command {
        if !policies::run(command).await? {
            anyhow::bail!("some policy checks failed (see above)");
        }
        return Ok(());
    }
    let config = cli.resolve()?;
    init_logging(config.log_format);
    match cli.command {
        Command::Serve(args) => serve(config, args.demo).await,
        Command::Token(command) => token_command(config, command).await,
        Command::Events(args) => events(config, args).await,
        Command::Logs(command) => logs::run(config, command).await,
        Command::Portals(command) => portals::run(config, command).await,
        Command::Policies(_) => Ok(()),
    }
}

/// Opens everything, bootstraps on first start, and serves until SIGTERM or Ctrl-C.
pub async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let storage = Storage::open(&config).await?;
    let admin_token = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let configured = config.account_id.as_deref().map(AccountId::parse).transpose()?;
    let boot = account::bootstrap(storage.log.as_ref(), configured, admin_token.as_deref()).await?;
    let checkpoints = Arc::new(FileCheckpointStore::new(config.data_dir.join("projections"))?);
    let models = Arc::new(
        ProjectionRunner::<ReadModels>::start(
            Arc::clone(&storage.log),
            checkpoints,
            RunnerOptions::default(),
        )
        .await?,
    );
    if boot.account_created {
        println!("Created account {}", boot.account_id);
    }
    if let Some(token) = &boot.new_admin_token {
        println!("Admin API token (shown only now; store it safely): {}", token.secret);
    }
    let gateway = portico_gateway::GatewayConfig {
        upstream: portico_gateway::upstream::UpstreamConfig {
            connect_timeout: config.upstream_connect_timeout,
            call_timeout: config.upstream_call_timeout,
            // The demo's upstream is served on this instance's own (loopback) address.
            policy: portico_gateway::ssrf::UpstreamPolicy {
                allow_private: config.allow_private_upstreams || demo,
            },
        },
        sync_interval: config.sync_interval,
        scheduled_sync: true,
        codemode: crate::codemode::start(config.codemode_engine, config.codemode_limits).await?,
        upstream_client: portico_gateway::upstream_grants::UpstreamClientConfig {
            client_name: "Portico".to_owned(),
            // MCP clients may identify themselves with a Client ID Metadata Document only at
            // an https URL.
            metadata_url: config
                .public_url
                .as_deref()
                .filter(|url| url.starts_with("https://"))
                .map(|url| {
                    format!(
                        "{}{}",
                        url.trim_end_matches('/'),
                        portico_gateway::upstream_grants::CLIENT_METADATA_PATH
                    )
                }),
        },
    };
    // The call log (the logs API's read model) has a database of its own in the data
    // directory, rebuilt from the event log whenever it is missing.
    let calls_path = config.data_dir.join("calls.db");
    let calls = CallLog::open(&calls_path)
        .with_context(|| format!("cannot open the call log `{}`", calls_path.display()))?
        .with_retention(
            (config.call_log_retention_days > 0)
                .then(|| chrono::TimeDelta::days(config.call_log_retention_days as i64)),
        );
    let app = App::start(
        Arc::clone(&storage.log),
        Arc::clone(&storage.vault),
        Arc::clone(&models),
        Arc::new(calls),
        gateway,
    );
    match &config.smtp_url {
        Some(url) => {
            app.pins.set_mailer(Arc::new(crate::mail::SmtpMailer::new(url, &config.smtp_from)?))
        }
        None => tracing::warn!(
            "no SMTP server is configured (--smtp-url): one-time sign-in PINs are written to this log"
        ),
    }
    let logpush =
        app.start_logpush(config.logpush, Arc::clone(&storage.leases), storage.instance_id.clone());
    let mut state = AppState::new(Arc::clone(&app), boot.account_id.clone());
    if demo {
        state.extra_routes = Some(crate::demo::upstream_routes(state.shutdown.clone()));
    }
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(
        listen = %bound,
        account_id = %boot.account_id,
        storage = %storage.description,
        "portico is serving; admin API at http://{bound}/client/v4/accounts/{}/access/ai-controls/mcp",
        boot.account_id
    );
    println!("Listening on http://{bound}");
    let shutdown = state.shutdown.clone();
    let server =
        actix_web::HttpServer::new(move || portico_frontend_http::create_app(state.clone()))
            // MCP answers on a session are event streams: the head and each event are separate
            // small writes, which Nagle's algorithm holds back until the client's delayed ACK
            // (about 40 ms per request on Linux). actix-web leaves Nagle on.
            .on_connect(|connection, _| {
                if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                    let _ = tcp.set_nodelay(true);
                }
            })
            .listen(listener)?
            .shutdown_timeout(30)
            .disable_signals()
            .run();
    let handle = server.handle();
    if demo {
        let app = Arc::clone(&app);
        let base = format!("http://{bound}");
        actix_web::rt::spawn(async move {
            match crate::demo::setup(&app, &base).await {
                Ok(access) => print_demo(&access),
                Err(error) => eprintln!("The demo could not be set up: {error:#}"),
            }
        });
    }
    // SIGTERM or Ctrl-C: end the MCP sessions (their event streams would otherwise hold the
    // graceful stop for the whole timeout), then stop accepting and finish in-flight requests.
    let closing = Arc::clone(&app);
    actix_web::rt::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping");
        // First the Logpush worker, which gives its leases up while the database connections
        // (some opened on the HTTP workers' threads) still run.
        logpush.stop().await;
        shutdown.cancel();
        // The upstream connections too: an upstream client reopens its event stream when the
        // upstream ends it, which (the demo's upstream being served here) would hold the stop
        // open until the graceful timeout.
        closing.close().await;
        handle.stop(true).await;
    });
    server.await?;
    // In-flight requests have finished; everything they acknowledged is committed. Save the
    // read models so the next start does not replay.
    if let Err(error) = models.checkpoint() {
        tracing::warn!(%error, "could not write the projections' checkpoint");
    }
    tracing::info!("portico stopped");
    Ok(())
}

/// The storage of the instance `config` names, which must exist: opening would create an
/// empty instance, and a command run against nothing is a mistake.
pub(crate) async fn open_existing(config: &Config) -> anyhow::Result<Storage> {
    anyhow::ensure!(
        config.database_url.is_some() || config.sqlite_path().exists(),
        "no Portico data in {}: run `portico serve` once first, or pass `--data-dir`",
        config.data_dir.display()
    );
    Storage::open(config).await
}

/// The read models of `storage`'s log, folded up to its head from the log itself (no
/// checkpoint files: a running server owns those).
pub(crate) async fn current_models(
    storage: &Storage,
) -> anyhow::Result<ProjectionRunner<ReadModels>> {
    let models = ProjectionRunner::<ReadModels>::start(
        Arc::clone(&storage.log),
        Arc::new(NoCheckpoints),
        RunnerOptions::default(),
    )
    .await?;
    let head = storage.log.head_position().await?;
    models.wait_for(head, portico_app::WRITE_VISIBILITY_TIMEOUT).await?;
    Ok(models)
}

/// Replaces the policy set of the instance whose storage `config` names with the policies of
/// `dir` (validated first; nothing is written if one is invalid), as the `cli` actor.
async fn push_local(config: &Config, dir: &std::path::Path) -> anyhow::Result<usize> {
    let records = policies::checked_dir(dir)?;
    let count = records.len();
    let storage = open_existing(config).await?;
    let account: portico_core::domain::account::AccountState =
        portico_app::load(storage.log.as_ref(), portico_core::domain::account::ACCOUNT_STREAM)
            .await?;
    anyhow::ensure!(
        account.account_id.is_some(),
        "no Portico account in {}: run `portico serve` once first",
        storage.description
    );
    // Nothing is synced: this command must not reach upstreams.
    let models = Arc::new(current_models(&storage).await?);
    let gateway = portico_gateway::GatewayConfig { scheduled_sync: false, ..Default::default() };
    // Nothing here reads calls: an empty call log in memory.
    let calls = Arc::new(CallLog::in_memory()?);
    let app = App::start(storage.log, storage.vault, models, calls, gateway);
    app.replace_policies(records, &Actor::system("cli")).await?;
    Ok(count)
}

async fn token_command(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let storage = Storage::open(&config).await?;
    let log = storage.log;
    let operator = Actor::system("cli");
    match command {
        TokenCommand::Create { name, scope } => {
            let generated = api_tokens::generate()?;
            api_tokens::create(log.as_ref(), &generated, &name, scope, &operator).await?;
            println!(
                "Created API token {} ({}, scope {}).",
                generated.token_id,
                name.trim(),
                scope.as_str()
            );
            println!("Token (shown only now): {}", generated.secret);
        }
        TokenCommand::List => {
            let runner = ProjectionRunner::<Access>::start(
                log,
                Arc::new(NoCheckpoints),
                RunnerOptions::default(),
            )
            .await?;
            let access = runner.read();
            println!("{:<10} {:<6} {:<28} {:<8} NAME", "ID", "SCOPE", "CREATED", "STATUS");
            for t in access.tokens() {
                let status = if t.is_active() { "active" } else { "revoked" };
                println!(
                    "{:<10} {:<6} {:<28} {:<8} {}",
                    t.token_id,
                    t.scope.as_str(),
                    portico_frontend_http::api::rfc3339_pub(t.created_at),
                    status,
                    t.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            api_tokens::revoke(log.as_ref(), &id, &operator).await?;
            println!("Revoked API token {id}.");
        }
    }
    Ok(())
}

async fn events(config: Config, args: EventsArgs) -> anyhow::Result<()> {
    let storage = Storage::open(&config).await?;
    let mut sub =
        Subscription::new(storage.log, args.after).with_poll_interval(Duration::from_millis(250));
    loop {
        let batch = sub.next_batch().await?;
        if batch.is_empty() {
            if !args.follow {
                return Ok(());
            }
            let event = sub.next().await?;
            print_event(&event, args.json)?;
            continue;
        }
        for event in &batch {
            print_event(event, args.json)?;
        }
    }
}

fn print_event(e: &RecordedEvent, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, e)?;
        writeln!(out)?;
    } else {
        let payload = serde_json::to_string(&e.event)?;
        writeln!(
            out,
            "{:>8}  {}  {:<40}  {}@{}  {}",
            e.position,
            portico_frontend_http::api::rfc3339_pub(e.recorded_at),
            portico_frontend_http::api::actor_name(&e.actor),
            e.stream_id,
            e.stream_version,
            payload
        )?;
    }
    Ok(())
}

fn print_demo(access: &crate::demo::DemoAccess) {
    println!(
        "\nDemo portal ready: {url}\n\
         Service token (a new secret on every start):\n  CF-Access-Client-Id: {id}\n  CF-Access-Client-Secret: {secret}\n\n\
         Try it with MCP Inspector (Node 22):\n  npx @modelcontextprotocol/inspector --cli {url} --transport http \\\n    \
         --header \"CF-Access-Client-Id: {id}\" \"CF-Access-Client-Secret: {secret}\" --method tools/list\n\
         or open the Inspector UI (`npx @modelcontextprotocol/inspector`), choose Streamable HTTP, enter the URL and add the two headers.\n",
        url = access.portal_url,
        id = access.client_id,
        secret = access.client_secret,
    );
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("portico").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("portico.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/portico\"\ndurability = \"power\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let config_arg = file.to_str().unwrap();

        let from_file = parse(&["--config", config_arg, "serve"]).resolve().unwrap();
        assert_eq!(from_file.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/portico"));
        assert_eq!(from_file.durability, portico_core::Durability::Power);
        assert_eq!(from_file.log_format, LogFormat::Json);

        let flagged = parse(&[
            "--config",
            config_arg,
            "--data-dir",
            "/tmp/x",
            "serve",
            "--listen",
            "0.0.0.0:1",
        ])
        .resolve()
        .unwrap();
        assert_eq!(flagged.listen.to_string(), "0.0.0.0:1");
        assert_eq!(flagged.data_dir, PathBuf::from("/tmp/x"));

        let defaults = parse(&["serve"]).resolve().unwrap();
        assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(defaults.data_dir, PathBuf::from("./data"));
        assert_eq!(defaults.database_url, None);
    }

    #[test]
    fn a_bad_config_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "listen = \"nope\"\nunknown_key = 1\n").unwrap();
        let err = parse(&["--config", file.to_str().unwrap(), "serve"]).resolve().unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");
        let err = parse(&["--durability", "sometimes", "serve"]).resolve().unwrap_err();
        assert!(err.to_string().contains("unknown durability `sometimes`"), "{err}");
    }
}
