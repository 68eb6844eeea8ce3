//! `transport::connect` against server-everything and raw HTTP listeners.

use std::time::Duration;

use portico_gateway::ssrf::UpstreamPolicy;
use portico_gateway::transport::{
    ConnectOptions, Connected, TransportKind, UpstreamAuth, UpstreamTarget, connect,
};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use url::Url;

use crate::everything;
use crate::raw_http;

fn local_options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        policy: UpstreamPolicy { allow_private: true },
    }
}

fn target(url: &str) -> UpstreamTarget {
    UpstreamTarget::new(Url::parse(url).unwrap(), UpstreamAuth::Unauthenticated, false).unwrap()
}

/// Lists the tools, finds `echo`, calls it and closes the connection.
async fn list_and_echo<H: rmcp::ClientHandler>(connected: Connected<H>) {
    let peer = connected.service.peer().clone();
    let tools = peer.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|tool| tool.name == "echo"), "no echo tool in {tools:?}");
    let arguments = serde_json::json!({"message": "hello portico"});
    let result = peer
        .call_tool(
            CallToolRequestParams::new("echo")
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let text = serde_json::to_string(&result.content).unwrap();
    assert!(text.contains("Echo: hello portico"), "{text}");
    connected.service.cancel().await.unwrap();
}

#[tokio::test]
async fn streamable_http_lists_and_calls_tools() {
    let Some(server) = everything::start("streamableHttp").await else { return };
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let connected = connect(&target(&url), &local_options(), ()).await.unwrap();
    assert_eq!(connected.transport, TransportKind::StreamableHttp);
    assert_eq!(connected.url.as_str(), url);
    assert_eq!(connected.protocol_version(), Some(ProtocolVersion::V_2025_11_25));
    list_and_echo(connected).await;
}

#[tokio::test]
async fn legacy_sse_lists_and_calls_tools() {
    let Some(server) = everything::start("sse").await else { return };
    let url = format!("http://127.0.0.1:{}/sse", server.port);
    let connected = connect(&target(&url), &local_options(), ()).await.unwrap();
    assert_eq!(connected.transport, TransportKind::LegacySse);
    assert_eq!(connected.url.as_str(), url);
    assert!(connected.protocol_version().is_some());
    list_and_echo(connected).await;
}

#[tokio::test]
async fn base_url_falls_through_to_streamable_http_on_mcp() {
    let Some(server) = everything::start("streamableHttp").await else { return };
    let url = format!("http://127.0.0.1:{}/", server.port);
    let connected = connect(&target(&url), &local_options(), ()).await.unwrap();
    assert_eq!(connected.transport, TransportKind::StreamableHttp);
    assert_eq!(connected.url.as_str(), format!("http://127.0.0.1:{}/mcp", server.port));
    list_and_echo(connected).await;
}

#[tokio::test]
async fn base_url_falls_through_to_legacy_sse_on_sse() {
    let Some(server) = everything::start("sse").await else { return };
    let url = format!("http://127.0.0.1:{}", server.port);
    let connected = connect(&target(&url), &local_options(), ()).await.unwrap();
    assert_eq!(connected.transport, TransportKind::LegacySse);
    assert_eq!(connected.url.as_str(), format!("http://127.0.0.1:{}/sse", server.port));
    list_and_echo(connected).await;
}

#[tokio::test]
async fn missing_endpoint_is_a_404_error() {
    let Some(server) = everything::start("streamableHttp").await else { return };
    let url = format!("http://127.0.0.1:{}/nothing/mcp", server.port);
    let error = connect(&target(&url), &local_options(), ()).await.unwrap_err();
    assert_eq!(error.status_code, Some(404), "{error:?}");
    assert!(error.is_upstream && !error.retryable, "{error:?}");
    // A base URL with no MCP endpoint under it tries all four strategies.
    let url = format!("http://127.0.0.1:{}/nothing", server.port);
    let error = connect(&target(&url), &local_options(), ()).await.unwrap_err();
    assert_eq!(error.status_code, Some(404), "{error:?}");
    assert!(error.cause.starts_with("no MCP endpoint found"), "{}", error.cause);
    assert!(error.cause.contains("/nothing/sse"), "{}", error.cause);
}

#[tokio::test]
async fn closed_port_is_retryable() {
    let port = everything::free_port();
    for path in ["mcp", "sse"] {
        let url = format!("http://127.0.0.1:{port}/{path}");
        let error = connect(&target(&url), &local_options(), ()).await.unwrap_err();
        assert!(error.retryable && error.is_upstream, "{error:?}");
        assert_eq!(error.status_code, None);
        assert!(error.cause.contains("could not connect"), "{}", error.cause);
    }
}

#[tokio::test]
async fn loopback_is_refused_without_allow_private() {
    let strict = ConnectOptions { policy: UpstreamPolicy::default(), ..local_options() };
    let (port, heads) = raw_http::serve("HTTP/1.1 404 Not Found".into()).await;
    for url in [
        format!("http://127.0.0.1:{port}/mcp"),
        format!("http://[::ffff:127.0.0.1]:{port}/mcp"),
        format!("http://localhost:{port}/mcp"),
        format!("http://localhost:{port}/sse"),
    ] {
        let error = connect(&target(&url), &strict, ()).await.unwrap_err();
        assert!(!error.is_upstream && !error.retryable, "{url}: {error:?}");
        assert!(error.cause.contains("a loopback address"), "{url}: {}", error.cause);
        assert!(error.cause.contains("allow_private_upstreams"), "{url}: {}", error.cause);
    }
    assert!(heads.lock().unwrap().is_empty(), "a refused upstream must see no request");
}

#[tokio::test]
async fn credential_headers_reach_the_upstream() {
    let (port, heads) = raw_http::serve("HTTP/1.1 404 Not Found".into()).await;
    let stored = r#"{"headers":{"cf-access-client-id":"client.access","X-Api-Key":"k-123"}}"#;
    for path in ["mcp", "sse"] {
        let url = Url::parse(&format!("http://127.0.0.1:{port}/{path}")).unwrap();
        let target = UpstreamTarget::new(url, UpstreamAuth::Bearer(stored), false).unwrap();
        let error = connect(&target, &local_options(), ()).await.unwrap_err();
        assert_eq!(error.status_code, Some(404));
    }
    let url = Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap();
    let target = UpstreamTarget::new(url, UpstreamAuth::Bearer("tok-abc"), false).unwrap();
    connect(&target, &local_options(), ()).await.unwrap_err();

    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert!(heads[0].starts_with("post /mcp "), "{}", heads[0]);
    assert!(heads[1].starts_with("get /sse "), "{}", heads[1]);
    for head in &heads[..2] {
        assert!(head.contains("\r\ncf-access-client-id: client.access\r\n"), "{head}");
        assert!(head.contains("\r\nx-api-key: k-123\r\n"), "{head}");
    }
    assert!(heads[2].contains("\r\nauthorization: bearer tok-abc\r\n"), "{}", heads[2]);
    // rmcp's default client config offers 2026-07-28, which has no `initialize`; Portico offers
    // 2025-11-25 instead.
    assert!(heads[0].contains(r#""protocolVersion":"2025-11-25""#), "{}", heads[0]);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (target_port, target_heads) = raw_http::serve("HTTP/1.1 404 Not Found".into()).await;
    let location = format!("location: http://127.0.0.1:{target_port}/mcp");
    let (port, _) = raw_http::serve(format!("HTTP/1.1 307 Temporary Redirect\r\n{location}")).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let error = connect(&target(&url), &local_options(), ()).await.unwrap_err();
    assert_eq!(error.status_code, Some(307), "{error:?}");
    assert!(!error.retryable);
    assert!(target_heads.lock().unwrap().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn authentication_failure_is_not_retryable() {
    for head in ["HTTP/1.1 401 Unauthorized", "HTTP/1.1 403 Forbidden"] {
        let (port, _) = raw_http::serve(head.into()).await;
        for path in ["mcp", "sse"] {
            let url = Url::parse(&format!("http://127.0.0.1:{port}/{path}")).unwrap();
            let target =
                UpstreamTarget::new(url, UpstreamAuth::Bearer("sekrit-token"), false).unwrap();
            let error = connect(&target, &local_options(), ()).await.unwrap_err();
            assert!(!error.retryable && error.is_upstream, "{error:?}");
            assert!(error.cause.contains("authentication"), "{}", error.cause);
            assert!(!error.cause.contains("sekrit"), "{}", error.cause);
        }
    }
}

#[tokio::test]
async fn a_2025_06_18_session_works() {
    let Some(server) = everything::start("streamableHttp").await else { return };
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let mut older = ClientConfig::default();
    older.protocol_version = ProtocolVersion::V_2025_06_18;
    let connected = connect(&target(&url), &local_options(), older).await.unwrap();
    assert_eq!(connected.protocol_version(), Some(ProtocolVersion::V_2025_06_18));
    list_and_echo(connected).await;
}

#[tokio::test]
async fn silent_upstream_times_out_retryably() {
    let port = raw_http::silent().await;
    let options = ConnectOptions { request_timeout: Duration::from_millis(300), ..local_options() };
    for path in ["mcp", "sse"] {
        let url = format!("http://127.0.0.1:{port}/{path}");
        let error = connect(&target(&url), &options, ()).await.unwrap_err();
        assert!(error.retryable && error.is_upstream, "{error:?}");
        assert_eq!(error.status_code, None);
    }
}

#[tokio::test]
async fn connections_are_pooled_across_connects() {
    let (port, heads, accepted) = raw_http::serve_with("HTTP/1.1 404 Not Found".into(), true).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    for _ in 0..3 {
        let error = connect(&target(&url), &local_options(), ()).await.unwrap_err();
        assert_eq!(error.status_code, Some(404));
    }
    assert_eq!(heads.lock().unwrap().len(), 3);
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pooled connection serves all three"
    );
}
