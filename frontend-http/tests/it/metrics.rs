//! `GET /metrics`: scraped before and after some admin requests and MCP calls, parsed as the
//! Prometheus text format (`prometheus`), and checked series by series. Counters are compared
//! as differences between the two scrapes and must move by exactly what the test did; the
//! registry is the process's, and nextest (`scripts/test`) runs every test in a process of its
//! own.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::audit_fail_closed::echo;
use crate::live::{Backend, Live, PORTAL_ID, SERVER_ID};
use crate::prometheus::{self, Exposition};
use crate::support::{ACCOUNT_ID, ADMIN_TOKEN};

const SERVERS_ROUTE: &str = "/client/v4/accounts/{account_id}/access/ai-controls/mcp/servers";
const SERVER_ROUTE: &str = "/client/v4/accounts/{account_id}/access/ai-controls/mcp/servers/{id}";
const MCP_ROUTE: &str = "/portals/{portal_id}/mcp";

async fn scrape(live: &Live) -> (Exposition, String) {
    let scraped = live.get("/metrics").await;
    assert_eq!(scraped.status, 200, "{}", scraped.text);
    (prometheus::parse(&scraped.text), scraped.text)
}

#[actix_web::test]
async fn metrics_count_requests_calls_and_appends() {
    let live = Live::start(Backend::Sqlite).await.unwrap();
    let client = live.mcp_client().await;
    let (before, _) = scrape(&live).await;

    // Admin requests: three lists, one server that does not exist, one path no route takes.
    for _ in 0..3 {
        let listed = live.admin(Method::GET, "/access/ai-controls/mcp/servers", None).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
    }
    let missing = live.admin(Method::GET, "/access/ai-controls/mcp/servers/nothere", None).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(live.get("/no/such/route/4242").await.status, 404);
    // MCP: two calls answered, one for a tool that does not exist.
    let argument = format!("argument-{}", uuid::Uuid::now_v7().simple());
    assert_eq!(echo(&client, &argument).await.unwrap(), argument);
    assert_eq!(echo(&client, "again").await.unwrap(), "again");
    let unknown = client
        .peer()
        .call_tool(rmcp::model::CallToolRequestParams::new("nosuchserver_tool"))
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("unknown tool"), "{unknown}");

    let (after, text) = scrape(&live).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);

    // HTTP requests, by route pattern and status.
    let requests = "portico_http_requests_total";
    let get_servers = [("method", "GET"), ("route", SERVERS_ROUTE), ("status", "200")];
    assert_eq!(moved(requests, &get_servers), 3.0);
    let get_server = [("method", "GET"), ("route", SERVER_ROUTE), ("status", "404")];
    assert_eq!(moved(requests, &get_server), 1.0);
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(moved(requests, &unmatched), 1.0);
    // The first scrape is counted (the second is answered before it is).
    let scrapes = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert_eq!(moved(requests, &scrapes), 1.0);
    // The MCP endpoint under its pattern: the three calls at least (rmcp's client may also
    // open its event stream).
    assert!(moved(requests, &[("route", MCP_ROUTE), ("method", "POST")]) >= 3.0);
    let durations = "portico_http_request_duration_seconds_count";
    assert_eq!(moved(durations, &[("method", "GET"), ("route", SERVERS_ROUTE)]), 3.0);
    assert_eq!(after.types["portico_http_request_duration_seconds"], "histogram");
    // Routes are patterns: no id, account or raw path of a request is a label value.
    for sample in after.series(requests, &[]) {
        let route = &sample.labels["route"];
        assert!(route == "unmatched" || route.starts_with('/'), "{sample:?}");
        for raw in [ACCOUNT_ID, PORTAL_ID, "nothere", "4242"] {
            assert!(!route.contains(raw), "a raw path in a label: {sample:?}");
        }
    }

    // MCP calls by portal, server, method and outcome, and the upstream's latency.
    let calls = "portico_mcp_requests_total";
    let ok =
        [("portal", PORTAL_ID), ("server", SERVER_ID), ("method", "tools/call"), ("outcome", "ok")];
    assert_eq!(moved(calls, &ok), 2.0);
    let not_found =
        [("portal", PORTAL_ID), ("server", ""), ("method", "tools/call"), ("outcome", "not_found")];
    assert_eq!(moved(calls, &not_found), 1.0);
    let upstream = "portico_mcp_upstream_duration_seconds";
    let labels = [("portal", PORTAL_ID), ("server", SERVER_ID), ("method", "tools/call")];
    assert_eq!(moved(&format!("{upstream}_count"), &labels), 2.0);
    assert!(moved(&format!("{upstream}_sum"), &labels) > 0.0);
    assert_eq!(after.types[upstream], "histogram");
    // Every audited request's time inside Portico, the not-found one (no upstream) included.
    let request = "portico_mcp_request_duration_seconds";
    assert_eq!(moved(&format!("{request}_count"), &labels), 2.0);
    let no_server = [("portal", PORTAL_ID), ("server", ""), ("method", "tools/call")];
    assert_eq!(moved(&format!("{request}_count"), &no_server), 1.0);
    assert!(
        moved(&format!("{request}_sum"), &labels) >= moved(&format!("{upstream}_sum"), &labels),
        "a request takes at least its upstream's time"
    );
    assert_eq!(after.types[request], "histogram");
    assert_eq!(moved("portico_audit_append_failures_total", &[]), 0.0);

    // The log: three audit events appended (maybe more, if a sync ran), in timed commits.
    assert!(moved("portico_log_appends_total", &[("outcome", "ok")]) >= 3.0);
    assert!(moved("portico_log_append_duration_seconds_count", &[]) >= 3.0);
    assert!(moved("portico_log_commit_events_sum", &[("backend", "sqlite")]) >= 3.0);
    assert!(moved("portico_log_commit_appends_count", &[("backend", "sqlite")]) >= 1.0);
    assert!(moved("portico_log_commit_duration_seconds_count", &[("backend", "sqlite")]) >= 1.0);
    assert_eq!(after.types["portico_log_commit_appends"], "histogram");
    // The calls came one at a time to an idle log: their appenders committed them themselves.
    let appender = [("backend", "sqlite"), ("thread", "appender")];
    assert!(moved("portico_log_commits_total", &appender) >= 1.0);
    // rmcp's client asks for progress on every call, so the two calls of an upstream tool went
    // to it through Portico's MCP client, which relays progress (the in-place tests count the
    // calls posted directly).
    assert_eq!(moved("portico_mcp_upstream_requests_total", &[("path", "client")]), 2.0);
    assert_eq!(moved("portico_mcp_upstream_requests_total", &[("path", "direct")]), 0.0);

    // Gauges: projection lag, servers by status, open sessions.
    for projection in ["read_models", "call_log"] {
        let lag = after.value("portico_projection_lag_events", &[("projection", projection)]);
        assert!(lag.is_some_and(|lag| (0.0..1000.0).contains(&lag)), "{projection}: {lag:?}");
    }
    assert_eq!(after.value("portico_servers", &[("status", "ready")]), Some(1.0));
    assert_eq!(after.value("portico_servers", &[("status", "error")]), Some(0.0));
    assert_eq!(after.value("portico_servers", &[("status", "waiting")]), Some(0.0));
    let synced = [("server", SERVER_ID), ("outcome", "synced")];
    assert!(after.sum("portico_server_syncs_total", &synced) >= 1.0);
    assert_eq!(after.value("portico_mcp_sessions_open", &[]), Some(1.0));

    // Every family is named `portico_...` with a unit, and nothing secret or user-provided
    // appears in the exposition.
    for name in after.types.keys() {
        assert!(name.starts_with("portico_"), "{name}");
    }
    for secret in [ADMIN_TOKEN, argument.as_str(), "again", "nosuchserver"] {
        assert!(!text.contains(secret), "`{secret}` in the metrics");
    }

    // A second session counts while it is open; closing both brings the gauge back to zero.
    let second = live.mcp_client().await;
    let (during, _) = scrape(&live).await;
    assert_eq!(during.value("portico_mcp_sessions_open", &[]), Some(2.0));
    client.cancel().await.unwrap();
    second.cancel().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, _) = scrape(&live).await;
        if now.value("portico_mcp_sessions_open", &[]) == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "closed sessions are still counted as open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
