//! Rows for the unit tests.

use chrono::{TimeZone, Utc};
use portico_core::domain::call::{AuditedMethod, CallStatus, PortalRequestHandled};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::logpush_job::{LogpushJobId, LogpushJobIdReserved};
use portico_core::{Actor, CorrelationId, Event, Position, RecordedEvent};
use uuid::Uuid;

use crate::record::McpPortalLog;

/// A `tools/call` event with every field set, ending in `status`.
pub(crate) fn handled(status: CallStatus) -> PortalRequestHandled {
    PortalRequestHandled {
        portal_id: PortalId::parse("main").unwrap(),
        portal_aud: Some("aud-1".into()),
        method: AuditedMethod::ToolsCall,
        server_id: Some(ServerId::parse("github").unwrap()),
        server_url: Some("https://mcp.example.com/mcp".into()),
        tool_call_name: Some("github_search".into()),
        prompt_get_name: None,
        resource_read_uri: None,
        upstream_name: Some("search".into()),
        session_id: Some("s-1".into()),
        client_ip: Some("192.0.2.7".into()),
        user_id: "u-1".into(),
        user_email: Some("ada@example.com".into()),
        error: (status != CallStatus::Ok).then(|| "tool reported an error".into()),
        status,
        policies: vec!["p1".into()],
        duration_ms: 12,
        server_response_duration_ms: Some(9),
        execution_id: None,
        code_execution: None,
    }
}

/// `event` as recorded at `position`.
pub(crate) fn recorded_at(position: Position, event: Event) -> RecordedEvent {
    RecordedEvent {
        position,
        stream_id: "test".into(),
        stream_version: 1,
        event_id: Uuid::nil(),
        recorded_at: Utc.timestamp_opt(1_700_000_000, 5).unwrap(),
        actor: Actor::system("test"),
        correlation_id: CorrelationId(Uuid::nil()),
        schema_version: 1,
        event,
    }
}

/// A successful call recorded at `position`.
pub(crate) fn call_event(position: Position) -> RecordedEvent {
    recorded_at(position, Event::PortalRequestHandled(handled(CallStatus::Ok)))
}

/// An event that is no call, recorded at `position`.
pub(crate) fn other_event(position: Position) -> RecordedEvent {
    recorded_at(
        position,
        Event::LogpushJobIdReserved(LogpushJobIdReserved { job_id: LogpushJobId(1) }),
    )
}

/// A failed `tools/call` with every field the event can carry set.
pub(crate) fn tool_call() -> McpPortalLog {
    McpPortalLog {
        position: 7,
        client_country: None,
        client_ip: Some("192.0.2.7".into()),
        colo_code: None,
        datetime: Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 0).unwrap(),
        error: Some("upstream timed out".into()),
        method: AuditedMethod::ToolsCall,
        portal_aud: Some("aud-portal".into()),
        portal_id: "main".into(),
        prompt_get_name: None,
        resource_read_uri: None,
        server_aud: None,
        server_id: Some("github".into()),
        server_response_duration_ms: Some(250),
        server_url: Some("https://mcp.example.com/mcp".into()),
        session_id: Some("sess-1".into()),
        success: false,
        tool_call_name: Some("github_search_issues".into()),
        user_email: Some("ada@example.com".into()),
        user_id: "user-1".into(),
        event_id: "0190a3c4-0000-7000-8000-000000000007".into(),
        status: "timeout",
        policy_ids: r#"["allow-github"]"#.into(),
        duration_ms: 251,
    }
}
