//! A session's call of an upstream tool is answered in place, as `application/json`, or as an
//! event stream of its progress and answer; what needs rmcp's session machinery (built-in
//! tools, a request without the protocol header, a malformed call) still gets it; a closed
//! session is `404` on both paths; a client's cancellation reaches a call answered in place, and
//! so does the process's stop. Raw HTTP, so the answer's media type is seen as a client sees it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use portico_frontend_http::mcp::SESSION_IDLE_TIMEOUT;

use crate::live::{Backend, Live, SERVER_ID};

/// The answer's media type and its JSON-RPC messages (a JSON body, or an event stream's data).
async fn messages(response: reqwest::Response) -> (u16, String, Vec<Value>) {
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    let messages = if kind.starts_with("application/json") {
        vec![serde_json::from_str(&text).unwrap()]
    } else {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim)
            .filter(|data| !data.is_empty())
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    };
    (status, kind, messages)
}

/// Opens a session as an SDK does (initialize, then `notifications/initialized`); returns its
/// id and the negotiated protocol revision.
async fn open_session(live: &Live) -> (String, String) {
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let response = live.mcp_post(None, &initialize, &[]).send().await.unwrap();
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let (status, _, answer) = messages(response).await;
    assert_eq!(status, 200);
    let version = answer[0]["result"]["protocolVersion"].as_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let headers = [("mcp-protocol-version", version.as_str())];
    let response = live.mcp_post(Some(&session), &initialized, &headers).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
    (session, version)
}

/// A Portico whose sessions end after `idle` without a request, an open session (its id and
/// the `MCP-Protocol-Version` it negotiated), and the exposed name of the upstream's `echo`.
async fn with_session(idle: Duration) -> (Live, String, String, String) {
    let live = Live::start_with_idle_timeout(Backend::Sqlite, idle).await.unwrap();
    let (session, version) = open_session(&live).await;
    (live, session, version, format!("{SERVER_ID}_echo"))
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

/// Waits until the upstream has a call (and fails if none comes within 10 s).
async fn upstream_has_the_call(live: &Live) {
    let started = Instant::now();
    while live.upstream_calls.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the call never reached the upstream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn text_of(message: &Value) -> &str {
    message["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{message}"))
}

#[actix_web::test]
async fn a_sessions_tool_call_is_answered_in_place_and_the_rest_as_before() {
    let (live, session, version, tool) = with_session(SESSION_IDLE_TIMEOUT).await;
    let headers = [("mcp-protocol-version", version.as_str())];

    let request = call(1, &tool, json!({"text": "in place"}));
    let response = live.mcp_post(Some(&session), &request, &headers).send().await.unwrap();
    let (status, kind, answer) = messages(response).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0]["id"], 1);
    assert_eq!(text_of(&answer[0]), "in place");
    assert!(answer[0]["result"].get("resultType").is_none(), "shaped for 2025-11-25");

    let answered = || live.state.app.gateway.sessions.answered();
    assert_eq!(answered(), 1);

    // A progress token: an event stream of the upstream's progress, under the client's token,
    // then the answer.
    let mut request = call(2, &tool, json!({"text": "with progress", "progress": 3}));
    request["params"]["_meta"] = json!({"progressToken": "p-1"});
    let response = live.mcp_post(Some(&session), &request, &headers).send().await.unwrap();
    let (status, kind, answer) = messages(response).await;
    assert_eq!((status, kind.as_str()), (200, "text/event-stream"));
    let progress: Vec<(&Value, &Value)> = answer[..answer.len() - 1]
        .iter()
        .map(|m| {
            assert_eq!(m["method"], "notifications/progress", "{m}");
            (&m["params"]["progressToken"], &m["params"]["progress"])
        })
        .collect();
    assert_eq!(
        progress,
        [(&json!("p-1"), &json!(1.0)), (&json!("p-1"), &json!(2.0)), (&json!("p-1"), &json!(3.0))]
    );
    assert_eq!(text_of(answer.last().unwrap()), "with progress");
    assert_eq!(answered(), 2);

    // So do the built-in tools, and a request without the protocol header.
    let request = call(3, "portal_list_servers", json!({}));
    let response = live.mcp_post(Some(&session), &request, &headers).send().await.unwrap();
    let (_, kind, _) = messages(response).await;
    assert_eq!(kind, "text/event-stream");
    let request = call(4, &tool, json!({"text": "no header"}));
    let response = live.mcp_post(Some(&session), &request, &[]).send().await.unwrap();
    let (status, kind, answer) = messages(response).await;
    assert_eq!((status, kind.as_str()), (200, "text/event-stream"));
    assert_eq!(text_of(answer.last().unwrap()), "no header");

    // Neither went in place; nor does a malformed call, which gets rmcp's answer (invalid
    // params, audited as invalid).
    assert_eq!(answered(), 2);
    let request = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                         "params": {"name": tool, "arguments": "not an object"}});
    let response = live.mcp_post(Some(&session), &request, &headers).send().await.unwrap();
    let (_, _, answer) = messages(response).await;
    assert_eq!(answer.last().unwrap()["error"]["code"], -32602, "{answer:?}");

    // Every call is audited once, whichever path answered it, with the session.
    let events = live.call_events().await;
    let statuses: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["tool_call_name"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            (tool.as_str(), "ok"),
            (tool.as_str(), "ok"),
            (tool.as_str(), "ok"),
            (tool.as_str(), "invalid")
        ]
    );
    assert!(events.iter().all(|e| e["session_id"] == session.as_str()), "{events:?}");
    assert_eq!(live.upstream_calls.load(Ordering::SeqCst), 3);
    // The calls without a progress token (1 and 4, whichever path answered the client) were
    // posted on the upstream's session from their own task; the one with a token (2) went
    // through Portico's MCP client, which relays progress.
    let metrics = crate::prometheus::parse(&live.get("/metrics").await.text);
    let upstream = |path| metrics.sum("portico_mcp_upstream_requests_total", &[("path", path)]);
    assert_eq!((upstream("direct"), upstream("client")), (2.0, 1.0));

    // A closed session is gone on both paths.
    let response = live
        .http
        .delete(format!("{}/portals/{}/mcp", live.base, crate::live::PORTAL_ID))
        .header("mcp-session-id", &session)
        .header("cf-access-client-id", live.client_id())
        .header("cf-access-client-secret", live.client_secret())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let request = call(6, &tool, json!({"text": "after close"}));
    let response = live.mcp_post(Some(&session), &request, &headers).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(live.upstream_calls.load(Ordering::SeqCst), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live.state.app.gateway.sessions.is_empty() {
        assert!(Instant::now() < deadline, "a closed session stays listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_call_answered_in_place_is_cancelled_by_its_client() {
    let (live, session, version, tool) = with_session(SESSION_IDLE_TIMEOUT).await;
    let headers = [("mcp-protocol-version", version.as_str())];
    let request = call(7, &tool, json!({"text": "slow", "wait_ms": 60_000}));
    let pending = live.mcp_post(Some(&session), &request, &headers).send();
    let started = Instant::now();
    let cancel = async {
        upstream_has_the_call(&live).await;
        let cancelled = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                               "params": {"requestId": 7, "reason": "the person pressed stop"}});
        let response = live.mcp_post(Some(&session), &cancelled, &headers).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 202);
    };
    let (response, ()) = tokio::join!(pending, cancel);
    let (status, kind, answer) = messages(response.unwrap()).await;
    assert!(started.elapsed() < Duration::from_secs(30), "the call ran to its end");
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(answer[0]["error"]["message"], "cancelled", "{answer:?}");
    let events = live.call_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], "cancelled", "{events:?}");
}

#[actix_web::test]
async fn calls_answered_in_place_keep_their_session_alive_and_an_idle_one_ends() {
    let idle = Duration::from_millis(1200);
    let (live, session, version, tool) = with_session(idle).await;
    let headers = [("mcp-protocol-version", version.as_str())];
    // Calls for three idle timeouts, each answered in place: rmcp never sees them, yet the
    // session lives on.
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < idle * 3 {
        calls += 1;
        let request = call(calls, &tool, json!({"text": "still here"}));
        let response = live.mcp_post(Some(&session), &request, &headers).send().await.unwrap();
        let (status, kind, answer) = messages(response).await;
        assert_eq!((status, kind.as_str()), (200, "application/json"), "call {calls}");
        assert_eq!(text_of(&answer[0]), "still here");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(live.state.app.gateway.sessions.answered(), calls);
    // Then nothing for longer than the timeout: the session ends.
    tokio::time::sleep(idle * 2).await;
    let request = call(calls + 1, &tool, json!({"text": "too late"}));
    let response = live.mcp_post(Some(&session), &request, &headers).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[actix_web::test]
async fn a_call_posted_directly_ends_when_the_process_stops() {
    // The upstream would answer in 60 s (the call timeout is 20 s): only closing the upstream
    // connections, as `portico serve` does when it stops, can end the call sooner, and then
    // with "unavailable" rather than a timeout.
    let (live, session, version, tool) = with_session(SESSION_IDLE_TIMEOUT).await;
    let headers = [("mcp-protocol-version", version.as_str())];
    let request = call(8, &tool, json!({"text": "slow", "wait_ms": 60_000}));
    let pending = live.mcp_post(Some(&session), &request, &headers).send();
    let stop = async {
        upstream_has_the_call(&live).await;
        live.state.app.close().await;
    };
    let (response, ()) = tokio::join!(pending, stop);
    let (status, kind, answer) = messages(response.unwrap()).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let error = answer[0]["error"]["message"].as_str().unwrap_or_else(|| panic!("{answer:?}"));
    assert_eq!(
        error,
        format!("server `{SERVER_ID}` is unavailable: the connection to the upstream was closed")
    );
    let metrics = crate::prometheus::parse(&live.get("/metrics").await.text);
    let upstream = |path| metrics.sum("portico_mcp_upstream_requests_total", &[("path", path)]);
    assert_eq!((upstream("direct"), upstream("client")), (1.0, 0.0), "posted directly");
    let events = live.call_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], "unavailable", "{events:?}");
}
