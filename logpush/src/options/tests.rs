use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;

fn options(value: serde_json::Value) -> OutputOptions {
    serde_json::from_value(value).unwrap()
}

fn refused(value: serde_json::Value) -> OutputOptionsError {
    options(value).validate().unwrap_err()
}

#[test]
fn empty_options_are_every_field_as_ndjson() {
    let format = OutputOptions::default().validate().unwrap();
    assert_eq!(format, OutputFormat::default());
    assert_eq!(format.fields, Dataset::McpPortalLogs.fields());
    assert_eq!(format.dataset, Dataset::McpPortalLogs);
    assert_eq!(format.output_type, OutputType::Ndjson);
    assert_eq!(format.timestamp_format, TimestampFormat::UnixNano);
    assert_eq!(format.sample_rate, 1.0);
    assert!(!format.redact_log4j);
    assert_eq!(format.layout.record_prefix, "{");
    assert_eq!(format.layout.record_suffix, "}\n");
    assert_eq!(format.layout.field_delimiter, ",");
    assert_eq!(format.layout.record_delimiter, "");
}

#[test]
fn csv_has_its_own_defaults_and_set_keys_win() {
    let format = options(json!({"output_type": "csv"})).validate().unwrap();
    assert_eq!(format.layout.record_prefix, "");
    assert_eq!(format.layout.record_suffix, "\n");
    assert_eq!(format.layout.field_delimiter, ",");
    let format = options(json!({
        "output_type": "csv", "field_delimiter": "\t", "batch_prefix": "ClientIP\n",
        "record_suffix": "", "record_delimiter": "\r\n",
    }))
    .validate()
    .unwrap();
    assert_eq!(format.layout.field_delimiter, "\t");
    assert_eq!(format.layout.batch_prefix, "ClientIP\n");
    assert_eq!(format.layout.record_suffix, "", "an empty string is a value, not a default");
    assert_eq!(format.layout.record_delimiter, "\r\n");
}

#[test]
fn the_wire_object_round_trips_with_its_cve_key() {
    let value = json!({
        "field_names": ["ClientIP", "Datetime"], "output_type": "ndjson", "sample_rate": 0.5,
        "timestamp_format": "rfc3339", "CVE-2021-44228": true, "record_template": "{{.ClientIP}}",
    });
    let parsed = options(value.clone());
    assert_eq!(parsed.cve_2021_44228, Some(true));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), value);
    assert!(parsed.validate().unwrap().redact_log4j);
    // Nulls are absent keys, as the API sends them.
    let nulls = options(json!({"field_names": null, "output_type": null, "CVE-2021-44228": null}));
    assert_eq!(nulls, OutputOptions::default());
}

#[test]
fn unknown_keys_are_refused() {
    let error = serde_json::from_value::<OutputOptions>(json!({"fields": []})).unwrap_err();
    assert!(error.to_string().contains("unknown field `fields`"), "{error}");
}

#[test]
fn field_names_are_checked_by_position() {
    let format = options(json!({"field_names": ["UserID", "Datetime"]})).validate().unwrap();
    assert_eq!(format.fields, vec![Field::UserId, Field::Datetime], "in the order given");
    let error = refused(json!({"field_names": ["UserID", "RayID"]}));
    assert_eq!(error.key, "field_names[1]");
    assert!(error.to_string().starts_with("`output_options.field_names[1]`: unknown field `RayID`; the fields of mcp_portal_logs are `ClientCountry`"), "{error}");
    let error = refused(json!({"field_names": ["UserID", "Success", "UserID"]}));
    assert_eq!(error.to_string(), "`output_options.field_names[2]`: `UserID` is listed twice");
    let error = refused(json!({"field_names": []}));
    assert_eq!(error.to_string(), "`output_options.field_names`: must name at least one field");
    assert_eq!(refused(json!({"field_names": ["userid"]})).key, "field_names[0]");
}

#[test]
fn output_type_and_timestamp_format_are_closed_lists() {
    assert_eq!(
        refused(json!({"output_type": "json"})).to_string(),
        "`output_options.output_type`: unknown output type `json`; expected `ndjson`, `csv` or `parquet`"
    );
    assert_eq!(refused(json!({"timestamp_format": "RFC3339"})).key, "timestamp_format");
    for format in TimestampFormat::ALL {
        let parsed = options(json!({"timestamp_format": format.as_str()})).validate().unwrap();
        assert_eq!(parsed.timestamp_format, format);
    }
    for (name, expected) in
        [("ndjson", OutputType::Ndjson), ("csv", OutputType::Csv), ("parquet", OutputType::Parquet)]
    {
        assert_eq!(options(json!({"output_type": name})).validate().unwrap().output_type, expected);
    }
}

#[test]
fn sample_rate_is_in_zero_exclusive_to_one() {
    for ok in [1.0, 0.5, 0.0001] {
        assert_eq!(options(json!({"sample_rate": ok})).validate().unwrap().sample_rate, ok);
    }
    for bad in [0.0, -0.1, 1.0001, 2.0] {
        let error = refused(json!({"sample_rate": bad}));
        assert_eq!(error.key, "sample_rate", "{bad}");
        assert!(error.message.starts_with("must be greater than 0 and at most 1"));
    }
    let nan = OutputOptions { sample_rate: Some(f64::NAN), ..Default::default() };
    assert_eq!(nan.validate().unwrap_err().key, "sample_rate");
}

#[test]
fn parquet_refuses_the_text_layout_keys() {
    for key in [
        "batch_prefix",
        "batch_suffix",
        "record_prefix",
        "record_suffix",
        "record_delimiter",
        "field_delimiter",
        "record_template",
    ] {
        let error = refused(json!({"output_type": "parquet", key: "x"}));
        assert_eq!(error.key, key);
        assert!(error.message.contains("does not apply to `parquet`"), "{error}");
        // An empty string says nothing and is accepted.
        assert!(options(json!({"output_type": "parquet", key: ""})).validate().is_ok());
    }
    // The dashboard always sends a timestamp format: accepted.
    assert!(
        options(json!({"output_type": "parquet", "timestamp_format": "rfc3339"}))
            .validate()
            .is_ok()
    );
}

#[test]
fn layout_strings_and_templates_are_bounded() {
    let error = refused(json!({"batch_prefix": "x".repeat(MAX_LAYOUT_BYTES + 1)}));
    assert_eq!(error.key, "batch_prefix");
    assert!(options(json!({"batch_prefix": "x".repeat(MAX_LAYOUT_BYTES)})).validate().is_ok());
    let error = refused(json!({"record_template": "x".repeat(MAX_TEMPLATE_BYTES + 1)}));
    assert_eq!(error.key, "record_template");
}

#[test]
fn record_templates_are_parsed_with_errors_on_the_key() {
    let format = options(json!({"record_template": "{{.UserID}}"})).validate().unwrap();
    assert!(format.layout.record_template.is_some());
    let error = refused(json!({"record_template": "{{ .Nope }}"}));
    assert_eq!(error.key, "record_template");
    assert!(error.message.starts_with("unknown field `Nope`"), "{error}");
    // An empty template is no template.
    let format = options(json!({"record_template": ""})).validate().unwrap();
    assert_eq!(format.layout.record_template, None);
}

#[test]
fn merge_subrequests_is_for_another_dataset() {
    assert!(options(json!({"merge_subrequests": false})).validate().is_ok());
    assert_eq!(refused(json!({"merge_subrequests": true})).key, "merge_subrequests");
}

#[test]
fn timestamps_render_in_the_five_formats() {
    let time = Utc.timestamp_opt(1_708_213_921, 123_456_789).unwrap();
    let render = |f: TimestampFormat| f.render(time);
    assert_eq!(
        render(TimestampFormat::UnixNano),
        RenderedTimestamp::Int(1_708_213_921_123_456_789)
    );
    assert_eq!(render(TimestampFormat::Unix), RenderedTimestamp::Int(1_708_213_921));
    assert_eq!(
        render(TimestampFormat::Rfc3339),
        RenderedTimestamp::Str("2024-02-17T23:52:01Z".into())
    );
    assert_eq!(
        render(TimestampFormat::Rfc3339Ms),
        RenderedTimestamp::Str("2024-02-17T23:52:01.123Z".into())
    );
    assert_eq!(
        render(TimestampFormat::Rfc3339Ns),
        RenderedTimestamp::Str("2024-02-17T23:52:01.123456789Z".into())
    );
    // Fixed widths and truncation, never rounding.
    let whole = Utc.timestamp_opt(1_708_213_921, 999_999_999).unwrap();
    assert_eq!(
        TimestampFormat::Rfc3339.render(whole),
        RenderedTimestamp::Str("2024-02-17T23:52:01Z".into())
    );
    assert_eq!(TimestampFormat::Unix.render(whole), RenderedTimestamp::Int(1_708_213_921));
    let round = Utc.timestamp_opt(1_708_213_921, 0).unwrap();
    assert_eq!(
        TimestampFormat::Rfc3339Ms.render(round),
        RenderedTimestamp::Str("2024-02-17T23:52:01.000Z".into())
    );
    assert_eq!(
        TimestampFormat::Rfc3339Ns.render(round),
        RenderedTimestamp::Str("2024-02-17T23:52:01.000000000Z".into())
    );
}

#[test]
fn sampling_keeps_about_the_rate_and_is_repeatable() {
    let format = OutputFormat { sample_rate: 0.1, ..OutputFormat::default() };
    let kept: Vec<u64> = (1..=100_000).filter(|p| format.samples(7, *p)).collect();
    assert!((9_000..11_000).contains(&kept.len()), "kept {}", kept.len());
    let again: Vec<u64> = (1..=100_000).filter(|p| format.samples(7, *p)).collect();
    assert_eq!(kept, again);
    let other_job: Vec<u64> = (1..=100_000).filter(|p| format.samples(8, *p)).collect();
    assert_ne!(kept, other_job, "jobs sample independently");
    let all = OutputFormat::default();
    assert!((1..=1000).all(|p| all.samples(7, p)));
}

#[test]
fn each_dataset_takes_its_own_fields_and_portico_extras_only_by_name() {
    let audit = OutputOptions::default().validate_for(Dataset::AuditLogs).unwrap();
    assert_eq!(audit.dataset, Dataset::AuditLogs);
    assert_eq!(audit.fields, Dataset::AuditLogs.fields());
    let named = options(json!({"field_names": ["When", "ActorName", "NewValue"]}));
    assert_eq!(
        named.validate_for(Dataset::AuditLogs).unwrap().fields,
        [Field::When, Field::ActorName, Field::NewValue]
    );
    // A field of the other dataset is unknown here, and the message lists this dataset's.
    let error = options(json!({"field_names": ["When", "ClientIP"]}))
        .validate_for(Dataset::AuditLogs)
        .unwrap_err();
    assert_eq!(error.key, "field_names[1]");
    assert!(
        error
            .message
            .starts_with("unknown field `ClientIP`; the fields of audit_logs are `ActionResult`"),
        "{error}"
    );
    assert!(error.message.contains("`CorrelationID`"), "{error}");
    let extra = options(json!({"field_names": ["Datetime", "Status", "PolicyIDs"]}));
    assert_eq!(
        extra.validate().unwrap().fields,
        [Field::Datetime, Field::Status, Field::PolicyIds]
    );
    let template = options(json!({"record_template": "{{ .ActorEmail }}"}));
    assert!(template.validate().is_err());
    assert!(template.validate_for(Dataset::AuditLogs).is_ok());
}
