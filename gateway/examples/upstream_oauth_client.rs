//! Portico's upstream OAuth client against one MCP server, with no person in the loop: the MCP
//! conformance suite's client authorization scenarios (`tests/conformance/client-auth.sh`) start
//! a server whose authorization endpoint approves at once, and run this with the server's URL.
//!
//!     upstream_oauth_client [--client-metadata-url URL] URL
//!
//! It connects without a token, takes the `WWW-Authenticate` of the 401, authorizes with
//! [`portico_gateway::upstream_oauth`] (discovery, client identification, PKCE, `resource`),
//! follows the authorization URL by hand to its redirect (the code a browser would bring back),
//! exchanges the code, then initializes, lists the tools and calls the first one with the
//! token; `--client-metadata-url` is the client's Client ID Metadata Document, used where the
//! authorization server supports them (else Dynamic Client Registration); a call refused with `insufficient_scope` is authorized once more with the scope the
//! challenge names (step-up). `MCP_CONFORMANCE_CONTEXT` (JSON) may hold the `client_id` and `client_secret` of a
//! pre-registered client. Exits 0 when every step worked.

use anyhow::{Context as _, bail};
use portico_gateway::ssrf::UpstreamPolicy;
use portico_gateway::upstream_oauth::{self, ClientIdentity};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};

/// Where the authorization server sends the code; nothing listens there: the redirect is read
/// from the authorization endpoint's answer.
const REDIRECT_URI: &str = "http://127.0.0.1:1/callback";

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (metadata_url, url) = match args.as_slice() {
        [url] => (None, url.clone()),
        [flag, metadata, url] if flag == "--client-metadata-url" => {
            (Some(metadata.clone()), url.clone())
        }
        _ => bail!("usage: upstream_oauth_client [--client-metadata-url URL] URL"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(&url, metadata_url))
}

async fn run(url: &str, metadata_url: Option<String>) -> anyhow::Result<()> {
    // The scenarios' servers are on loopback.
    let policy = UpstreamPolicy { allow_private: true };
    let context: serde_json::Value = match std::env::var("MCP_CONFORMANCE_CONTEXT") {
        Ok(text) => serde_json::from_str(&text).context("MCP_CONFORMANCE_CONTEXT is not JSON")?,
        Err(_) => serde_json::Value::Null,
    };
    let field = |name: &str| context.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let identity = ClientIdentity {
        client_id: field("client_id"),
        client_secret: field("client_secret"),
        metadata_url,
        client_name: "Portico".to_owned(),
        scopes: Vec::new(),
    };
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;

    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "portico", "version": env!("CARGO_PKG_VERSION")}}
    });
    let refused = plain
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await?;
    let challenge =
        refused.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    eprintln!("unauthenticated initialize: {} ({challenge:?})", refused.status());

    // A second authorization asks for more scope when a call is refused with
    // `insufficient_scope` (step-up); one is the limit.
    let mut challenge = challenge;
    for attempt in 0..2 {
        let (state, authorization_url) =
            upstream_oauth::start(policy, url, &identity, REDIRECT_URI, challenge.as_deref())
                .await
                .context("the authorization could not start")?;
        let approved = plain.get(&authorization_url).send().await?;
        let Some(callback) = approved.headers().get("location").and_then(|v| v.to_str().ok())
        else {
            bail!("the authorization endpoint answered {} without a redirect", approved.status());
        };
        let (_manager, token) = upstream_oauth::finish(state, callback)
            .await
            .context("the code could not be exchanged")?;
        match use_token(url, token).await {
            Ok(done) => {
                // The line tests/conformance/client-auth.sh looks for: every step worked.
                println!("authorized: {done}");
                return Ok(());
            }
            Err(error) if attempt == 0 => match refusal(&error) {
                Some(more) => {
                    eprintln!("refused with a challenge, authorizing again: {more}");
                    challenge = Some(more);
                }
                None => return Err(error),
            },
            Err(error) => return Err(error),
        }
    }
    bail!("the server still refused after a second authorization")
}

/// Initializes with `token`, lists the tools and calls the first one.
async fn use_token(url: &str, token: String) -> anyhow::Result<String> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let client = ().serve(transport).await.context("initialize with the token failed")?;
    let tools = client.list_tools(None).await.context("tools/list failed")?;
    let mut called = None;
    if let Some(tool) = tools.tools.first() {
        client
            .call_tool(CallToolRequestParams::new(tool.name.clone()))
            .await
            .with_context(|| format!("tools/call of `{}` failed", tool.name))?;
        called = Some(tool.name.to_string());
    }
    client.cancel().await?;
    Ok(format!("{} tools listed, called {called:?}", tools.tools.len()))
}

/// The `WWW-Authenticate` challenge of a 401 or 403 somewhere in `error`'s causes.
fn refusal(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        cause
            .downcast_ref::<StreamableHttpError<reqwest::Error>>()
            .and_then(StreamableHttpError::auth_challenge)
            .map(str::to_owned)
    })
}
