//! Records the tests share.

use chrono::{DateTime, TimeZone, Utc};
use portico_core::domain::call::AuditedMethod;
use portico_logpush::McpPortalLog;

fn at(nanos: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(nanos)
}

/// Three calls, one per method, with awkward values: quotes, backslashes, control characters,
/// non-ASCII text, a `${` lookup, missing values, a timestamp that must be truncated.
pub fn fixture_batch() -> Vec<McpPortalLog> {
    vec![
        McpPortalLog {
            position: 101,
            client_country: None,
            client_ip: Some("192.0.2.7".into()),
            colo_code: None,
            // 2026-03-01T12:30:00.123456789Z
            datetime: at(1_772_368_200_123_456_789),
            error: None,
            method: AuditedMethod::ToolsCall,
            portal_aud: Some("aud-7f3a".into()),
            portal_id: "main".into(),
            prompt_get_name: None,
            resource_read_uri: None,
            server_aud: None,
            server_id: Some("github".into()),
            server_response_duration_ms: Some(250),
            server_url: Some("https://mcp.example.com/mcp".into()),
            session_id: Some("3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b".into()),
            success: true,
            tool_call_name: Some("github_search_issues".into()),
            user_email: Some("ada@example.com".into()),
            user_id: "user-1".into(),
            event_id: "0190a3c4-0000-7000-8000-000000000101".into(),
            status: "ok",
            policy_ids: r#"["allow-github"]"#.into(),
            duration_ms: 252,
        },
        McpPortalLog {
            position: 102,
            client_country: None,
            client_ip: Some("2001:db8::1".into()),
            colo_code: None,
            // 2026-03-01T12:30:01Z exactly
            datetime: at(1_772_368_201_000_000_000),
            error: Some("denied by \"no-prompts\"\nsee C:\\docs\t(é, 日本)".into()),
            method: AuditedMethod::PromptsGet,
            portal_aud: None,
            portal_id: "main".into(),
            prompt_get_name: Some("github_review".into()),
            resource_read_uri: None,
            server_aud: None,
            server_id: Some("github".into()),
            server_response_duration_ms: None,
            server_url: Some("https://mcp.example.com/mcp".into()),
            session_id: None,
            success: false,
            tool_call_name: None,
            user_email: None,
            user_id: "svc-token-9".into(),
            event_id: "0190a3c4-0000-7000-8000-000000000102".into(),
            status: "denied",
            policy_ids: r#"["no-prompts"]"#.into(),
            duration_ms: 3,
        },
        McpPortalLog {
            position: 105,
            client_country: None,
            client_ip: None,
            colo_code: None,
            // 2026-03-01T23:59:59.999999999Z
            datetime: at(1_772_409_599_999_999_999),
            error: None,
            method: AuditedMethod::ResourcesRead,
            portal_aud: Some("aud-7f3a".into()),
            portal_id: "main".into(),
            prompt_get_name: None,
            resource_read_uri: Some("file:///tmp/${jndi:ldap://x}.txt".into()),
            server_aud: None,
            server_id: Some("docs".into()),
            server_response_duration_ms: Some(0),
            server_url: Some("http://10.0.0.5:8080/mcp".into()),
            session_id: Some("s\u{1}2".into()),
            success: true,
            tool_call_name: None,
            user_email: Some("o'brien@example.com".into()),
            user_id: "user-2".into(),
            event_id: "0190a3c4-0000-7000-8000-000000000103".into(),
            status: "ok",
            policy_ids: r#"[]"#.into(),
            duration_ms: 17,
        },
    ]
}
