//! The portal logs API and its analytics, over calls recorded in the log as the data plane
//! records them (`PortalRequestHandled` on the portal's calls stream). The calls themselves
//! come from real MCP clients in the end-to-end suite (tests/e2e/test_portal_logs.py).

use std::collections::HashSet;
use std::time::Duration;

use actix_web::http::StatusCode;
use portico_core::domain::call::{AuditedMethod, CallStatus, PortalRequestHandled, calls_stream};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::{Actor, Event, EventMetadata, ExpectedVersion, NewEvent};
use serde_json::{Value, json};

use crate::support::TestApp;

fn call(i: u64) -> PortalRequestHandled {
    let server = if i.is_multiple_of(2) { "docs" } else { "git" };
    PortalRequestHandled {
        portal_id: PortalId::parse("team").unwrap(),
        portal_aud: Some("a".repeat(64)),
        method: if i % 7 == 6 { AuditedMethod::PromptsGet } else { AuditedMethod::ToolsCall },
        server_id: Some(ServerId::parse(server).unwrap()),
        server_url: Some(format!("https://{server}.example.com/mcp")),
        tool_call_name: (i % 7 != 6).then(|| format!("{server}_search")),
        prompt_get_name: (i % 7 == 6).then(|| format!("{server}_greet")),
        resource_read_uri: None,
        upstream_name: Some("search".into()),
        session_id: Some(format!("session-{}", i % 3)),
        client_ip: Some("192.0.2.7".into()),
        user_id: format!("user-{}", i % 3),
        user_email: Some(
            if i.is_multiple_of(3) { "Alice@Example.com" } else { "bob@example.com" }.into(),
        ),
        status: if i.is_multiple_of(5) { CallStatus::Denied } else { CallStatus::Ok },
        error: i.is_multiple_of(5).then(|| "no policy permits this call".into()),
        policies: if i.is_multiple_of(5) { vec![] } else { vec!["engineers-use-docs".into()] },
        duration_ms: i,
        server_response_duration_ms: (!i.is_multiple_of(5)).then_some(i / 2),
        execution_id: None,
        code_execution: None,
    }
}

/// An app with portal `team` and 25 of its calls recorded; waits until the call log has them.
async fn setup() -> TestApp {
    let app = TestApp::new().await;
    app.post(&app.portals(), json!({"id": "team", "name": "Team", "hostname": "team.example.com"}))
        .await
        .ok();
    let log = &app.state.app.log;
    let meta = EventMetadata::new(Actor::system("tests"));
    let mut head = 0;
    for i in 0..25 {
        let event = NewEvent::new(Event::PortalRequestHandled(call(i)));
        let stream = calls_stream(&PortalId::parse("team").unwrap());
        head = log
            .append(&stream, ExpectedVersion::Any, vec![event], &meta)
            .await
            .unwrap()
            .last_position;
    }
    app.state.app.calls.wait_for(head, Duration::from_secs(30)).await.unwrap();
    app
}

fn logs(app: &TestApp, query: &str) -> String {
    format!("{}/team/logs{query}", app.portals())
}

#[actix_web::test]
async fn a_portal_s_calls_newest_first_with_the_dataset_s_fields() {
    let app = setup().await;
    let answer = app.get(&logs(&app, "")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let rows = answer.body["result"].as_array().unwrap();
    assert_eq!(rows.len(), 25);
    assert_eq!(answer.body["result_info"], json!({"count": 25, "per_page": 100}));
    let durations: Vec<u64> = rows.iter().map(|r| r["DurationMs"].as_u64().unwrap()).collect();
    assert_eq!(durations, (0..25).rev().collect::<Vec<_>>(), "newest first");

    let newest = &rows[0]; // call 24
    let fields: HashSet<&str> = newest.as_object().unwrap().keys().map(String::as_str).collect();
    let dataset = [
        "ClientCountry",
        "ClientIP",
        "ColoCode",
        "Datetime",
        "Error",
        "Method",
        "PortalAUD",
        "PortalID",
        "PromptGetName",
        "ResourceReadURI",
        "ServerAUD",
        "ServerID",
        "ServerResponseDurationMs",
        "ServerURL",
        "SessionID",
        "Success",
        "ToolCallName",
        "UserEmail",
        "UserID",
    ];
    let portico = ["EventID", "Status", "PolicyIDs", "DurationMs"];
    assert_eq!(fields, dataset.iter().chain(&portico).copied().collect());
    assert_eq!(newest["Method"], "tools/call");
    assert_eq!(newest["ServerID"], "docs");
    assert_eq!(newest["ToolCallName"], "docs_search");
    assert_eq!(newest["UserEmail"], "Alice@Example.com", "as the call recorded it");
    assert_eq!(newest["Success"], true);
    assert_eq!(newest["Status"], "ok");
    assert_eq!(newest["PolicyIDs"], json!(["engineers-use-docs"]));
    assert_eq!(newest["ServerResponseDurationMs"], 12);
    assert_eq!(newest["ClientCountry"], Value::Null);
    assert!(newest["Datetime"].as_str().unwrap().ends_with('Z'));
    let denied = &rows[4]; // call 20
    assert_eq!(
        (denied["Success"].clone(), denied["Status"].clone()),
        (json!(false), json!("denied"))
    );
    assert_eq!(denied["Error"], "no policy permits this call");
}

#[actix_web::test]
async fn filters_narrow_the_rows_and_a_cursor_pages_through_them_once() {
    let app = setup().await;
    let count = |query: &'static str| {
        let app = &app;
        async move {
            let answer = app.get(&logs(app, query)).await;
            assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.text);
            answer.body["result"].as_array().unwrap().len()
        }
    };
    let expect =
        |f: &dyn Fn(&PortalRequestHandled) -> bool| (0..25).map(call).filter(|c| f(c)).count();
    assert_eq!(
        count("?server_id=git").await,
        expect(&|c| c.server_id.as_ref().unwrap().as_str() == "git")
    );
    assert_eq!(
        count("?user_email=ALICE@example.com").await,
        expect(&|c| c.user_email.as_deref() == Some("Alice@Example.com"))
    );
    assert_eq!(
        count("?method=prompts/get").await,
        expect(&|c| c.method == AuditedMethod::PromptsGet)
    );
    assert_eq!(count("?success=false").await, expect(&|c| !c.success()));
    assert_eq!(
        count("?tool=docs_search").await,
        expect(&|c| c.tool_call_name.as_deref() == Some("docs_search"))
    );
    assert_eq!(
        count("?server_id=docs&success=true&method=tools/call").await,
        expect(&|c| c.server_id.as_ref().unwrap().as_str() == "docs"
            && c.success()
            && c.method == AuditedMethod::ToolsCall)
    );
    assert_eq!(count("?since=2000-01-01&until=2000-01-02").await, 0);
    assert_eq!(count("?since=2000-01-01").await, 25);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let query = match &cursor {
            Some(c) => format!("?per_page=10&cursor={c}"),
            None => "?per_page=10".to_owned(),
        };
        let answer = app.get(&logs(&app, &query)).await.expect(StatusCode::OK).body;
        let rows = answer["result"].as_array().unwrap().clone();
        seen.extend(rows.iter().map(|r| r["EventID"].as_str().unwrap().to_owned()));
        cursor = answer["result_info"]["cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25, "no row twice");
}

#[actix_web::test]
async fn bad_queries_are_refused_naming_the_parameter() {
    let app = setup().await;
    for (query, named) in [
        ("?per_page=0", "per_page"),
        ("?per_page=1001", "per_page"),
        ("?method=tools/list", "method"),
        ("?success=yes", "success"),
        ("?since=yesterday", "since"),
        ("?since=2026-01-02&until=2026-01-01", "until"),
        ("?cursor=not-a-cursor!", "cursor"),
        ("?server_id=", "server_id"),
        ("?colour=red", "colour"),
    ] {
        let answer = app.get(&logs(&app, query)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {}", answer.text);
        let message = answer.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {message}");
    }
    let long = format!("?tool={}", "x".repeat(513));
    assert_eq!(app.get(&logs(&app, &long)).await.status, StatusCode::BAD_REQUEST);
    let missing = app.get(&format!("{}/nowhere/logs", app.portals())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    let unauthenticated =
        app.request(actix_web::http::Method::GET, &logs(&app, ""), None, None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn analytics_count_calls_and_errors_with_percentiles_per_server() {
    let app = setup().await;
    let path = format!("{}/team/analytics?bucket=1d", app.portals());
    let answer = app.get(&path).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let result = &answer.body["result"];
    assert_eq!(result["bucket"], "1d");
    let series = result["series"].as_array().unwrap();
    let totals = |server: &str| {
        series
            .iter()
            .filter(|s| s["server_id"] == server)
            .map(|s| (s["requests"].as_u64().unwrap(), s["errors"].as_u64().unwrap()))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let expect = |server: &str| {
        let calls: Vec<_> = (0..25)
            .map(call)
            .filter(|c| c.server_id.as_ref().unwrap().as_str() == server)
            .collect();
        (calls.len() as u64, calls.iter().filter(|c| !c.success()).count() as u64)
    };
    assert_eq!(totals("docs"), expect("docs"));
    assert_eq!(totals("git"), expect("git"));
    if let [one] = &series.iter().filter(|s| s["server_id"] == "docs").collect::<Vec<_>>()[..] {
        // All of docs' calls fell in one day: durations 0, 2, …, 24, median 12 by nearest rank.
        assert_eq!((one["p50_ms"].as_u64(), one["p95_ms"].as_u64()), (Some(12), Some(24)));
    }

    for (query, named) in [
        ("?bucket=5m", "bucket"),
        ("?bucket=1m&since=2026-01-01&until=2026-01-03", "bucket"),
        ("?since=2026-01-02&until=2026-01-01", "until"),
        ("?until=soon", "until"),
    ] {
        let answer = app.get(&format!("{}/team/analytics{query}", app.portals())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {}", answer.text);
        assert!(answer.body["errors"][0]["message"].as_str().unwrap().contains(named), "{query}");
    }
}
