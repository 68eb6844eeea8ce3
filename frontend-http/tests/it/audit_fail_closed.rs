//! An answered call is always audited: when the log refuses the call's `PortalRequestHandled`
//! event, the client gets a JSON-RPC error instead of the upstream's answer, `/readyz` says the
//! log is unhealthy, and the failure is counted; once the log takes appends again, calls are
//! answered and audited and `/readyz` recovers. On SQLite and PostgreSQL, with a real upstream
//! and a real MCP client (see `live`).

use std::sync::atomic::Ordering;

use rmcp::model::{CallToolRequestParams, ErrorCode};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use serde_json::{Value, json};

use crate::live::{Backend, Live, PORTAL_ID, SERVER_ID};
use crate::prometheus;

/// The exposed name of the upstream's `echo`.
fn echo_tool() -> String {
    format!("{SERVER_ID}_echo")
}

/// Calls `echo` through the portal with `text`.
pub async fn echo(
    client: &RunningService<RoleClient, ()>,
    text: &str,
) -> Result<String, ServiceError> {
    let arguments = json!({"text": text}).as_object().unwrap().clone();
    let result = client
        .peer()
        .call_tool(CallToolRequestParams::new(echo_tool()).with_arguments(arguments))
        .await?;
    assert_ne!(result.is_error, Some(true), "{result:?}");
    Ok(serde_json::to_value(&result.content).unwrap()[0]["text"].as_str().unwrap().to_owned())
}

async fn metrics(live: &Live) -> prometheus::Exposition {
    let scraped = live.get("/metrics").await;
    assert_eq!(scraped.status, 200, "{}", scraped.text);
    prometheus::parse(&scraped.text)
}

async fn readyz(live: &Live) -> (u16, Value) {
    let answer = live.get("/readyz").await;
    (answer.status, answer.json())
}

async fn a_call_the_log_refuses_is_not_answered(backend: Backend) {
    let Some(live) = Live::start(backend).await else { return };
    let client = live.mcp_client().await;
    let failures = [("portal", PORTAL_ID)];
    let not_recorded = [("portal", PORTAL_ID), ("server", SERVER_ID), ("outcome", "not_recorded")];
    let before = metrics(&live).await;

    // The log takes appends: the call is answered and audited.
    assert_eq!(echo(&client, "first").await.unwrap(), "first");
    let events = live.call_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["status"], "ok");
    assert_eq!(events[0]["tool_call_name"], echo_tool());
    assert_eq!(readyz(&live).await.0, 200);

    // The log refuses appends: the upstream runs, but its answer is withheld.
    live.refuse_appends().await;
    let secret_answer = format!("answer-{}", uuid::Uuid::now_v7().simple());
    let error = echo(&client, &secret_answer).await.unwrap_err();
    let ServiceError::McpError(error) = error else { panic!("not a JSON-RPC error: {error:?}") };
    assert_eq!(error.code, ErrorCode::INTERNAL_ERROR, "{error:?}");
    assert!(error.message.contains("could not be recorded in the audit log"), "{error:?}");
    assert!(error.data.is_none(), "{error:?}");
    let shown = serde_json::to_string(&error).unwrap();
    assert!(!shown.contains(&secret_answer), "the withheld answer leaked: {shown}");
    assert!(!shown.contains("refused by test"), "the storage's error leaked: {shown}");
    assert_eq!(live.upstream_calls.load(Ordering::SeqCst), 2, "the upstream ran the call");
    assert_eq!(live.call_events().await.len(), 1, "nothing was appended");

    let (status, body) = readyz(&live).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("audit"), "{body}");
    assert_eq!(body["audit_failures"], 1, "{body}");
    assert!(!body.to_string().contains("refused by test"), "{body}");

    // A second refused call is counted too, and the session stays usable.
    echo(&client, "second").await.unwrap_err();
    assert_eq!(readyz(&live).await.1["audit_failures"], 2);
    let during = metrics(&live).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| during.sum(name, labels) - before.sum(name, labels);
    assert_eq!(moved("portico_audit_append_failures_total", &failures), 2.0);
    assert_eq!(moved("portico_mcp_requests_total", &not_recorded), 2.0);

    // The log takes appends again: calls are answered and audited, readiness recovers.
    live.accept_appends().await;
    assert_eq!(echo(&client, "third").await.unwrap(), "third");
    let events = live.call_events().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["status"], "ok");
    let (status, body) = readyz(&live).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    let after = metrics(&live).await;
    assert_eq!(
        after.sum("portico_audit_append_failures_total", &failures)
            - before.sum("portico_audit_append_failures_total", &failures),
        2.0,
        "a success does not move the failure counter"
    );
    client.cancel().await.unwrap();
}

#[actix_web::test]
async fn sqlite_a_call_the_log_refuses_is_not_answered() {
    a_call_the_log_refuses_is_not_answered(Backend::Sqlite).await;
}

#[actix_web::test]
async fn postgres_a_call_the_log_refuses_is_not_answered() {
    a_call_the_log_refuses_is_not_answered(Backend::Postgres).await;
}
