use serde_json::json;

use super::*;
use crate::testing::tool_call;

fn parse(filter: serde_json::Value) -> Result<Filter, FilterError> {
    Filter::parse(&filter.to_string())
}

fn leaf(key: &str, operator: &str, value: serde_json::Value) -> serde_json::Value {
    json!({"key": key, "operator": operator, "value": value})
}

/// Whether the sample record passes `{"where": leaf}`.
fn passes(key: &str, operator: &str, value: serde_json::Value) -> bool {
    let filter = parse(json!({"where": leaf(key, operator, value)})).unwrap();
    filter.matches(&tool_call())
}

fn error(filter: serde_json::Value) -> String {
    parse(filter).unwrap_err().to_string()
}

#[test]
fn eq_and_not_eq_on_every_type() {
    assert!(passes("ToolCallName", "eq", json!("github_search_issues")));
    assert!(!passes("ToolCallName", "eq", json!("GITHUB_search_issues")), "case-sensitive");
    assert!(!passes("ToolCallName", "!eq", json!("github_search_issues")));
    assert!(passes("ToolCallName", "!eq", json!("other")));
    assert!(passes("Method", "eq", json!("tools/call")));
    assert!(passes("ServerResponseDurationMs", "eq", json!(250)));
    assert!(!passes("ServerResponseDurationMs", "eq", json!(251)));
    assert!(passes("Success", "eq", json!(false)));
    assert!(passes("Success", "!eq", json!(true)));
    assert!(passes("Datetime", "eq", json!("2026-03-01T12:30:00Z")));
    assert!(passes("Datetime", "eq", json!("2026-03-01T13:30:00+01:00")), "same instant");
    assert!(!passes("Datetime", "!eq", json!("2026-03-01T12:30:00Z")));
}

#[test]
fn eq_null_matches_a_field_without_value() {
    assert!(passes("PromptGetName", "eq", json!(null)));
    assert!(!passes("PromptGetName", "!eq", json!(null)));
    assert!(!passes("Error", "eq", json!(null)));
    assert!(passes("Error", "!eq", json!(null)));
    // A value never equals a missing one, so its negation holds.
    assert!(!passes("PromptGetName", "eq", json!("")));
    assert!(passes("PromptGetName", "!eq", json!("")));
}

#[test]
fn ordering_operators_on_integers() {
    assert!(passes("ServerResponseDurationMs", "lt", json!(251)));
    assert!(!passes("ServerResponseDurationMs", "lt", json!(250)));
    assert!(passes("ServerResponseDurationMs", "leq", json!(250)));
    assert!(!passes("ServerResponseDurationMs", "leq", json!(249)));
    assert!(passes("ServerResponseDurationMs", "gt", json!(249)));
    assert!(!passes("ServerResponseDurationMs", "gt", json!(250)));
    assert!(passes("ServerResponseDurationMs", "geq", json!(250)));
    assert!(!passes("ServerResponseDurationMs", "geq", json!(251)));
    assert!(passes("ServerResponseDurationMs", "gt", json!(-1)));
}

#[test]
fn ordering_operators_on_timestamps() {
    assert!(passes("Datetime", "lt", json!("2026-03-01T12:30:00.000000001Z")));
    assert!(!passes("Datetime", "lt", json!("2026-03-01T12:30:00Z")));
    assert!(passes("Datetime", "leq", json!("2026-03-01T12:30:00Z")));
    assert!(passes("Datetime", "gt", json!("2026-03-01T00:00:00Z")));
    assert!(!passes("Datetime", "gt", json!("2026-03-02T00:00:00Z")));
    assert!(passes("Datetime", "geq", json!("2026-03-01T12:30:00Z")));
    assert!(!passes("Datetime", "geq", json!("2026-03-01T12:30:01Z")));
}

#[test]
fn ordering_on_a_missing_value_is_false() {
    let mut record = tool_call();
    record.server_response_duration_ms = None;
    for op in ["lt", "leq", "gt", "geq"] {
        let filter =
            parse(json!({"where": leaf("ServerResponseDurationMs", op, json!(0))})).unwrap();
        assert!(!filter.matches(&record), "{op}");
    }
}

#[test]
fn string_operators_and_their_negations() {
    assert!(passes("ToolCallName", "startsWith", json!("github_")));
    assert!(!passes("ToolCallName", "startsWith", json!("gitlab_")));
    assert!(passes("ToolCallName", "!startsWith", json!("gitlab_")));
    assert!(!passes("ToolCallName", "!startsWith", json!("github_")));
    assert!(passes("ServerURL", "endsWith", json!("/mcp")));
    assert!(!passes("ServerURL", "endsWith", json!("/sse")));
    assert!(passes("ServerURL", "!endsWith", json!("/sse")));
    assert!(!passes("ServerURL", "!endsWith", json!("/mcp")));
    assert!(passes("UserEmail", "contains", json!("@example.")));
    assert!(!passes("UserEmail", "contains", json!("@corp.")));
    assert!(passes("UserEmail", "!contains", json!("@corp.")));
    assert!(!passes("UserEmail", "!contains", json!("@example.")));
    // On a field without value the positive forms are false and the negations true.
    assert!(!passes("PromptGetName", "startsWith", json!("")));
    assert!(!passes("PromptGetName", "contains", json!("")));
    assert!(passes("PromptGetName", "!endsWith", json!("x")));
}

#[test]
fn in_and_not_in() {
    assert!(passes("ServerID", "in", json!(["gitlab", "github"])));
    assert!(!passes("ServerID", "in", json!(["gitlab", "jira"])));
    assert!(passes("ServerID", "!in", json!(["gitlab", "jira"])));
    assert!(!passes("ServerID", "!in", json!(["github"])));
    assert!(passes("ServerResponseDurationMs", "in", json!([1, 250])));
    assert!(passes("Success", "in", json!([false])));
    assert!(passes("Datetime", "in", json!(["2026-03-01T12:30:00Z"])));
    assert!(!passes("PromptGetName", "in", json!(["a"])));
    assert!(passes("PromptGetName", "!in", json!(["a"])));
}

#[test]
fn and_or_nest() {
    let filter = parse(json!({"where": {"and": [
        leaf("Method", "eq", json!("tools/call")),
        {"or": [
            leaf("Success", "eq", json!(true)),
            {"and": [
                leaf("ServerID", "eq", json!("github")),
                leaf("ServerResponseDurationMs", "gt", json!(100)),
            ]},
        ]},
    ]}}))
    .unwrap();
    assert_eq!(filter.operator_count(), 4);
    let mut record = tool_call();
    assert!(filter.matches(&record));
    record.server_response_duration_ms = Some(50);
    assert!(!filter.matches(&record));
    record.success = true;
    assert!(filter.matches(&record));
    record.method = portico_core::domain::call::AuditedMethod::PromptsGet;
    assert!(!filter.matches(&record));
}

#[test]
fn an_or_is_true_when_any_branch_is() {
    let filter = parse(json!({"where": {"or": [
        leaf("ServerID", "eq", json!("jira")),
        leaf("ServerID", "eq", json!("github")),
    ]}}))
    .unwrap();
    assert!(filter.matches(&tool_call()));
    let filter = parse(json!({"where": {"or": [leaf("ServerID", "eq", json!("jira"))]}})).unwrap();
    assert!(!filter.matches(&tool_call()));
}

/// A filter with one `in` of `n` values.
fn with_operators(n: usize) -> serde_json::Value {
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    json!({"where": leaf("ServerID", "in", json!(values))})
}

#[test]
fn thirty_operators_are_allowed_and_thirty_one_are_not() {
    assert_eq!(parse(with_operators(30)).unwrap().operator_count(), 30);
    assert_eq!(parse(with_operators(31)), Err(FilterError::TooManyOperators { count: 31 }));
    assert!(error(with_operators(31)).contains("31 operators; at most 30"));
}

#[test]
fn operators_are_counted_across_nesting() {
    let filter = json!({"where": {"or": [
        with_operators(20)["where"].clone(),
        {"and": [
            with_operators(9)["where"].clone(),
            leaf("Success", "eq", json!(true)),
            leaf("Error", "!eq", json!(null)),
        ]},
    ]}});
    assert_eq!(parse(filter), Err(FilterError::TooManyOperators { count: 31 }));
    let filter = json!({"where": {"or": [
        with_operators(20)["where"].clone(),
        {"and": [with_operators(9)["where"].clone(), leaf("Success", "eq", json!(true))]},
    ]}});
    assert_eq!(parse(filter).unwrap().operator_count(), 30);
}

#[test]
fn a_thousand_bytes_are_allowed_and_one_more_is_not() {
    let base = json!({"where": leaf("ToolCallName", "eq", json!(""))}).to_string();
    let pad = MAX_FILTER_BYTES - base.len();
    let exact = json!({"where": leaf("ToolCallName", "eq", json!("x".repeat(pad)))}).to_string();
    assert_eq!(exact.len(), MAX_FILTER_BYTES);
    assert!(Filter::parse(&exact).is_ok());
    let over = json!({"where": leaf("ToolCallName", "eq", json!("x".repeat(pad + 1)))}).to_string();
    assert_eq!(Filter::parse(&over), Err(FilterError::TooLong { len: MAX_FILTER_BYTES + 1 }));
    assert!(Filter::parse(&over).unwrap_err().to_string().contains("1001 bytes"));
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let message = error(json!({"where": {"and": [
        leaf("Success", "eq", json!(true)),
        leaf("RayID", "eq", json!("x")),
    ]}}));
    assert!(message.starts_with("`where.and[1].key`: unknown field `RayID`"), "{message}");
    assert!(message.contains("`ClientIP`"), "lists the fields: {message}");
    // Names are case-sensitive.
    assert!(matches!(
        parse(json!({"where": leaf("clientip", "eq", json!("x"))})),
        Err(FilterError::UnknownField { .. })
    ));
}

#[test]
fn unknown_operators_are_refused_by_name() {
    let message = error(json!({"where": leaf("ServerID", "neq", json!("x"))}));
    assert!(message.starts_with("`where.operator`: unknown operator `neq`"), "{message}");
    assert!(message.contains("`!startsWith`"), "lists the operators: {message}");
    assert!(matches!(
        parse(json!({"where": leaf("ServerID", "Eq", json!("x"))})),
        Err(FilterError::UnknownOperator { .. })
    ));
}

#[test]
fn operators_must_suit_the_fields_type() {
    for (field, op) in [
        ("ServerID", "lt"),
        ("ServerID", "geq"),
        ("Success", "gt"),
        ("ServerResponseDurationMs", "startsWith"),
        ("ServerResponseDurationMs", "!contains"),
        ("Datetime", "endsWith"),
        ("Success", "contains"),
    ] {
        let result = parse(json!({"where": leaf(field, op, json!(1))}));
        assert!(
            matches!(result, Err(FilterError::OperatorNotForField { .. })),
            "{field} {op}: {result:?}"
        );
    }
    assert_eq!(
        error(json!({"where": leaf("ServerID", "lt", json!("a"))})),
        "`where.operator`: operator `lt` does not apply to `ServerID`, a string field"
    );
}

#[test]
fn values_must_have_the_fields_type() {
    for (field, op, value) in [
        ("ServerID", "eq", json!(1)),
        ("ServerID", "startsWith", json!(true)),
        ("ServerResponseDurationMs", "eq", json!("250")),
        ("ServerResponseDurationMs", "lt", json!(2.5)),
        ("Success", "eq", json!("true")),
        ("Datetime", "gt", json!(1_700_000_000)),
        ("Datetime", "gt", json!("yesterday")),
        ("ServerID", "in", json!(["github", 2])),
    ] {
        let result = parse(json!({"where": leaf(field, op, value.clone())}));
        assert!(
            matches!(result, Err(FilterError::WrongValue { .. })),
            "{field} {op} {value}: {result:?}"
        );
    }
    assert_eq!(
        error(json!({"where": leaf("ServerID", "in", json!(["github", 2]))})),
        "`where.value[1]`: `ServerID` is a string field; expected a string"
    );
}

#[test]
fn lists_go_with_in_only_and_null_with_eq_only() {
    assert_eq!(
        error(json!({"where": leaf("ServerID", "in", json!("github"))})),
        "`where.value`: operator `in` takes a list"
    );
    assert_eq!(
        error(json!({"where": leaf("ServerID", "!in", json!([]))})),
        "`where.value`: must not be an empty list"
    );
    assert!(matches!(
        parse(json!({"where": leaf("ServerID", "eq", json!(["github"]))})),
        Err(FilterError::WrongValue { .. })
    ));
    assert_eq!(
        error(json!({"where": leaf("ServerResponseDurationMs", "lt", json!(null))})),
        "`where.value`: `null` is only allowed with `eq` and `!eq`"
    );
    assert!(parse(json!({"where": leaf("ServerID", "in", json!([null]))})).is_err());
}

#[test]
fn the_shape_is_checked() {
    let cases = [
        (json!([]), "`filter`: must be an object"),
        (json!({}), "`filter`: must not be empty; expected `where`"),
        (json!({"wher": {}}), "`filter`: unknown key `wher`; expected `where`"),
        (
            json!({"where": leaf("Success", "eq", json!(true)), "limit": 1}),
            "`filter`: must have exactly one key",
        ),
        (json!({"where": []}), "`where`: must be an object"),
        (
            json!({"where": {}}),
            "`where`: a comparison needs `key`, `operator` and `value`; `key` is missing",
        ),
        (json!({"where": {"and": []}}), "`where.and`: must not be empty"),
        (json!({"where": {"or": {}}}), "`where.or`: must be a list of expressions"),
        (
            json!({"where": {"and": [leaf("Success", "eq", json!(true))], "or": []}}),
            "`where`: must have exactly one key",
        ),
        (json!({"where": {"and": [1]}}), "`where.and[0]`: must be an object"),
        (
            json!({"where": {"key": "Success", "operator": "eq"}}),
            "`where`: a comparison needs `key`, `operator` and `value`; `value` is missing",
        ),
        (
            json!({"where": {"key": "Success", "operator": "eq", "value": true, "not": true}}),
            "`where`: unknown key `not`",
        ),
        (
            json!({"where": {"key": 1, "operator": "eq", "value": true}}),
            "`where.key`: must be a field name",
        ),
        (
            json!({"where": {"key": "Success", "operator": 1, "value": true}}),
            "`where.operator`: must be an operator name",
        ),
    ];
    for (filter, expected) in cases {
        let message = error(filter.clone());
        assert!(message.starts_with(expected), "{filter}: {message}");
    }
}

#[test]
fn text_that_is_not_json_is_refused() {
    assert!(matches!(Filter::parse("{\"where\":"), Err(FilterError::NotJson { .. })));
    assert!(matches!(Filter::parse(""), Err(FilterError::NotJson { .. })));
}

#[test]
fn an_absent_or_empty_filter_is_no_filter() {
    assert_eq!(Filter::parse_optional(Dataset::McpPortalLogs, None), Ok(None));
    assert_eq!(Filter::parse_optional(Dataset::McpPortalLogs, Some("")), Ok(None));
    assert!(
        Filter::parse_optional(
            Dataset::McpPortalLogs,
            Some(r#"{"where":{"key":"Success","operator":"eq","value":true}}"#)
        )
        .unwrap()
        .is_some()
    );
    assert!(Filter::parse_optional(Dataset::McpPortalLogs, Some("{}")).is_err());
}

#[test]
fn every_operator_parses_from_its_name() {
    for op in Operator::ALL {
        assert_eq!(Operator::from_name(op.as_str()), Some(op));
    }
}

#[test]
fn a_filter_names_the_fields_of_its_dataset_and_cannot_compare_objects() {
    let on_actor = r#"{"where":{"key":"ActorEmail","operator":"endsWith","value":"@example.com"}}"#;
    assert!(Filter::parse_for(Dataset::AuditLogs, on_actor).is_ok());
    let message = Filter::parse(on_actor).unwrap_err().to_string();
    assert!(
        message.contains("unknown field `ActorEmail`; the fields of mcp_portal_logs are"),
        "{message}"
    );
    let on_value = r#"{"where":{"key":"NewValue","operator":"eq","value":null}}"#;
    let message = Filter::parse_for(Dataset::AuditLogs, on_value).unwrap_err().to_string();
    assert_eq!(
        message,
        "`where.operator`: operator `eq` does not apply to `NewValue`, a object field"
    );
    // Portico's own fields filter as any other.
    let status = r#"{"where":{"key":"Status","operator":"in","value":["denied","timeout"]}}"#;
    assert!(Filter::parse(status).unwrap().matches(&tool_call()));
}
