//! Rows for the unit tests.

use chrono::{TimeZone, Utc};
use portico_core::domain::call::AuditedMethod;

use crate::record::McpPortalLog;

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
    }
}
