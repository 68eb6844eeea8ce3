//! The call log against a real SQLite event log: it follows the log, answers each portal's
//! calls newest first with every filter and keyset paging, survives a restart without
//! doubling a row, rebuilds itself for another log, and computes per-server analytics.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use portico_core::domain::call::{AuditedMethod, CallStatus, PortalRequestHandled, calls_stream};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::{
    Actor, CorrelationId, Event, EventLog, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent,
};
use portico_projections::call_log::{BucketWidth, CallLog, CallQuery, ServerBucket};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn call(
    portal: &str,
    server: Option<&str>,
    tool: &str,
    email: Option<&str>,
    status: CallStatus,
    ms: u64,
) -> PortalRequestHandled {
    PortalRequestHandled {
        portal_id: PortalId::parse(portal).unwrap(),
        portal_aud: None,
        method: AuditedMethod::ToolsCall,
        server_id: server.map(|s| ServerId::parse(s).unwrap()),
        server_url: server.map(|s| format!("https://{s}.example.com/mcp")),
        tool_call_name: Some(tool.to_owned()),
        prompt_get_name: None,
        resource_read_uri: None,
        upstream_name: None,
        session_id: Some("session".into()),
        client_ip: Some("192.0.2.1".into()),
        user_id: email.unwrap_or("token-1").to_owned(),
        user_email: email.map(str::to_owned),
        status,
        error: None,
        policies: vec![],
        duration_ms: ms,
        server_response_duration_ms: Some(ms / 2),
        execution_id: None,
        code_execution: None,
    }
}

pub(crate) async fn append(log: &dyn EventLog, calls: Vec<PortalRequestHandled>) -> u64 {
    let meta = EventMetadata::new(Actor::system("tests"));
    let mut last = 0;
    for c in calls {
        let stream = calls_stream(&c.portal_id);
        let events = vec![NewEvent::new(Event::PortalRequestHandled(c))];
        last =
            log.append(&stream, ExpectedVersion::Any, events, &meta).await.unwrap().last_position;
    }
    last
}

fn open_log(dir: &std::path::Path, name: &str) -> Arc<dyn EventLog> {
    Arc::new(SqliteLog::open(dir.join(name), SqliteOptions::default()).unwrap())
}

/// Thirty calls at portal `team` (alternating servers, users, tools and outcomes) and ten at
/// portal `other`, in that order interleaved.
fn history() -> Vec<PortalRequestHandled> {
    let mut calls = Vec::new();
    for i in 0..40u64 {
        if i % 4 == 3 {
            calls.push(call(
                "other",
                Some("docs"),
                "docs_search",
                Some("eve@example.com"),
                CallStatus::Ok,
                i,
            ));
            continue;
        }
        let server = if i % 2 == 0 { "docs" } else { "git" };
        let email = if i % 3 == 0 { "Alice@Example.com" } else { "bob@example.com" };
        let status = if i % 5 == 0 { CallStatus::Denied } else { CallStatus::Ok };
        calls.push(call(
            "team",
            Some(server),
            &format!("{server}_tool{}", i % 2),
            Some(email),
            status,
            i,
        ));
    }
    calls
}

fn team() -> CallQuery {
    CallQuery::portal(PortalId::parse("team").unwrap())
}

#[tokio::test]
async fn it_follows_the_log_and_answers_a_portal_s_calls_newest_first_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), "portico.db");
    let calls = Arc::new(CallLog::open(&dir.path().join("calls.db")).unwrap());
    let follower = calls.follow(Arc::clone(&log));
    let head = append(log.as_ref(), history()).await;
    calls.wait_for(head, WAIT).await.unwrap();

    let all = calls.query(&team()).unwrap();
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| w[0].position > w[1].position), "newest first");
    assert!(all.iter().all(|r| r.call.portal_id.as_str() == "team"));
    let expected: Vec<_> =
        history().into_iter().filter(|c| c.portal_id.as_str() == "team").rev().collect();
    assert_eq!(
        all.iter().map(|r| r.call.clone()).collect::<Vec<_>>(),
        expected,
        "stored as appended"
    );

    let count = |q: CallQuery| calls.query(&q).unwrap().len();
    let expect =
        |f: &dyn Fn(&PortalRequestHandled) -> bool| expected.iter().filter(|c| f(c)).count();
    assert_eq!(
        count(CallQuery { server_id: Some("git".into()), ..team() }),
        expect(&|c| c.server_id.as_ref().is_some_and(|s| s.as_str() == "git"))
    );
    assert_eq!(
        count(CallQuery { user_email: Some("alice@EXAMPLE.com".into()), ..team() }),
        expect(&|c| c.user_email.as_deref() == Some("Alice@Example.com")),
        "emails compare without case"
    );
    assert_eq!(count(CallQuery { success: Some(false), ..team() }), expect(&|c| !c.success()));
    assert_eq!(
        count(CallQuery { tool: Some("docs_tool0".into()), ..team() }),
        expect(&|c| c.tool_call_name.as_deref() == Some("docs_tool0"))
    );
    assert_eq!(count(CallQuery { method: Some(AuditedMethod::ToolsCall), ..team() }), 30);
    assert_eq!(count(CallQuery { method: Some(AuditedMethod::PromptsGet), ..team() }), 0);
    let combined = CallQuery { server_id: Some("docs".into()), success: Some(true), ..team() };
    assert_eq!(
        count(combined),
        expect(&|c| c.server_id.as_ref().is_some_and(|s| s.as_str() == "docs") && c.success())
    );

    // Keyset pages of 7 cover every call once, in order.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = calls.query(&CallQuery { before, limit: 7, ..team() }).unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.position);
        seen.extend(page.into_iter().map(|r| r.position));
    }
    assert_eq!(seen, all.iter().map(|r| r.position).collect::<Vec<_>>());
    follower.abort();
}

#[tokio::test]
async fn a_restart_resumes_where_it_stopped_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), "portico.db");
    let path = dir.path().join("calls.db");
    let head = append(log.as_ref(), history()).await;
    {
        let calls = Arc::new(CallLog::open(&path).unwrap());
        let follower = calls.follow(Arc::clone(&log));
        calls.wait_for(head, WAIT).await.unwrap();
        follower.abort();
    }
    let head = append(log.as_ref(), history()).await;
    let calls = Arc::new(CallLog::open(&path).unwrap());
    assert!(calls.position() > 0, "the position was kept");
    let follower = calls.follow(Arc::clone(&log));
    calls.wait_for(head, WAIT).await.unwrap();
    let positions: Vec<_> = calls.query(&team()).unwrap().iter().map(|r| r.position).collect();
    assert_eq!(positions.len(), 60);
    assert_eq!(positions.iter().collect::<HashSet<_>>().len(), 60, "no call twice");
    follower.abort();
}

#[tokio::test]
async fn a_call_log_of_another_event_log_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.db");
    let first = open_log(dir.path(), "first.db");
    let head = append(first.as_ref(), history()).await;
    {
        let calls = Arc::new(CallLog::open(&path).unwrap());
        let follower = calls.follow(Arc::clone(&first));
        calls.wait_for(head, WAIT).await.unwrap();
        follower.abort();
    }
    // A new log with fewer calls, all at `team` and of another tool.
    let second = open_log(dir.path(), "second.db");
    let fresh: Vec<_> =
        (0..5).map(|i| call("team", Some("docs"), "docs_new", None, CallStatus::Ok, i)).collect();
    let head = append(second.as_ref(), fresh).await;
    let calls = Arc::new(CallLog::open(&path).unwrap());
    let follower = calls.follow(Arc::clone(&second));
    // The stored position (40) is past the new log's head: wait for the rebuild instead.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = calls.query(&team()).unwrap();
        if rows.len() == 5 && calls.position() == head {
            assert!(rows.iter().all(|r| r.call.tool_call_name.as_deref() == Some("docs_new")));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not rebuilt: {} rows", rows.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    follower.abort();
}

fn recorded(position: u64, at: DateTime<Utc>, call: PortalRequestHandled) -> RecordedEvent {
    RecordedEvent {
        position,
        stream_id: calls_stream(&call.portal_id),
        stream_version: position,
        event_id: Uuid::now_v7(),
        recorded_at: at,
        actor: Actor::system("tests"),
        correlation_id: CorrelationId::new(),
        schema_version: 1,
        event: Event::PortalRequestHandled(call),
    }
}

#[test]
fn time_bounds_and_analytics_per_server_and_bucket() {
    let calls = CallLog::in_memory().unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
    let mut events = Vec::new();
    let mut position = 0;
    let mut at = |minute: i64, second: i64, c: PortalRequestHandled| {
        position += 1;
        events.push(recorded(
            position,
            t0 + TimeDelta::minutes(minute) + TimeDelta::seconds(second),
            c,
        ));
    };
    // Minute 0: docs answers in 1..=20 ms, two of them denied; git once.
    for ms in 1..=20 {
        let status = if ms <= 2 { CallStatus::Denied } else { CallStatus::Ok };
        at(0, ms as i64, call("team", Some("docs"), "docs_a", None, status, ms));
    }
    at(0, 30, call("team", Some("git"), "git_a", None, CallStatus::Timeout, 500));
    // Minute 2: a call whose name matched no server; another portal's call.
    at(2, 0, call("team", None, "nope", None, CallStatus::NotFound, 1));
    at(2, 1, call("other", Some("docs"), "docs_a", None, CallStatus::Ok, 9));
    calls.apply(&events).unwrap();

    let buckets = calls
        .analytics(
            &PortalId::parse("team").unwrap(),
            t0,
            t0 + TimeDelta::hours(1),
            BucketWidth::Minute,
        )
        .unwrap();
    assert_eq!(
        buckets,
        vec![
            ServerBucket {
                server_id: Some("docs".into()),
                start: t0,
                requests: 20,
                errors: 2,
                p50_ms: 10,
                p95_ms: 19
            },
            ServerBucket {
                server_id: Some("git".into()),
                start: t0,
                requests: 1,
                errors: 1,
                p50_ms: 500,
                p95_ms: 500
            },
            ServerBucket {
                server_id: None,
                start: t0 + TimeDelta::minutes(2),
                requests: 1,
                errors: 1,
                p50_ms: 1,
                p95_ms: 1,
            },
        ]
    );
    let hourly = calls
        .analytics(
            &PortalId::parse("team").unwrap(),
            t0,
            t0 + TimeDelta::hours(1),
            BucketWidth::Hour,
        )
        .unwrap();
    assert_eq!(hourly.iter().map(|b| b.requests).sum::<u64>(), 22);

    // `since` is inclusive, `until` exclusive.
    let window = CallQuery {
        since: Some(t0 + TimeDelta::seconds(5)),
        until: Some(t0 + TimeDelta::seconds(10)),
        ..team()
    };
    let rows = calls.query(&window).unwrap();
    assert_eq!(rows.iter().map(|r| r.call.duration_ms).collect::<Vec<_>>(), [9, 8, 7, 6, 5]);
}

#[test]
fn pruning_removes_the_calls_recorded_before_a_time_and_no_other() {
    let calls = CallLog::in_memory().unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let events: Vec<_> = (0..10u64)
        .map(|day| {
            let c = call("team", Some("docs"), "docs_a", None, CallStatus::Ok, day);
            recorded(day + 1, t0 + TimeDelta::days(day as i64), c)
        })
        .collect();
    calls.apply(&events).unwrap();
    assert_eq!(calls.prune(t0 + TimeDelta::days(7)).unwrap(), 7);
    let left: Vec<u64> = calls.query(&team()).unwrap().iter().map(|r| r.call.duration_ms).collect();
    assert_eq!(left, [9, 8, 7]);
    assert_eq!(calls.position(), 10, "pruning does not move the position");
}
