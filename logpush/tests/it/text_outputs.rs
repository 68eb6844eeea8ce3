//! `ndjson` and `csv` objects byte for byte against the fixture files, for each
//! `timestamp_format` and for custom layouts. The fixtures were written from the product's
//! documented layout, independently of this crate's code.

use portico_logpush::encode::text::gunzip;
use portico_logpush::{Encoder, McpPortalLog, OutputOptions, TimestampFormat};
use serde_json::json;

use crate::records::fixture_batch;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/it/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The decompressed object of the fixture batch under `options`.
fn object(options: serde_json::Value) -> Vec<u8> {
    let options: OutputOptions = serde_json::from_value(options).unwrap();
    let encoded = Encoder::new(options.validate().unwrap(), 1).encode(&fixture_batch()).unwrap();
    assert_eq!(encoded.content_encoding, Some("gzip"));
    gunzip(&encoded.body).unwrap()
}

fn assert_same(actual: Vec<u8>, name: &str) {
    let expected = fixture(name);
    assert!(
        actual == expected,
        "{name} differs:\n--- expected\n{}\n--- actual\n{}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(&actual)
    );
}

#[test]
fn ndjson_for_each_timestamp_format() {
    for format in TimestampFormat::ALL {
        let actual = object(json!({"timestamp_format": format.as_str()}));
        assert_same(actual, &format!("all-fields.{}.ndjson", format.as_str()));
    }
}

#[test]
fn csv_for_each_timestamp_format() {
    for format in TimestampFormat::ALL {
        let actual = object(json!({"output_type": "csv", "timestamp_format": format.as_str()}));
        assert_same(actual, &format!("all-fields.{}.csv", format.as_str()));
    }
}

#[test]
fn every_ndjson_line_is_a_json_object_with_the_selected_fields() {
    let text = String::from_utf8(object(json!({}))).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["Error"], "denied by \"no-prompts\"\nsee C:\\docs\t(é, 日本)");
    assert_eq!(lines[2]["Datetime"], json!(1_772_409_599_999_999_999_i64));
    assert_eq!(lines[0].as_object().unwrap().len(), 19);
}

#[test]
fn tsv_with_a_header_a_subset_and_log4j_redaction() {
    let actual = object(json!({
        "output_type": "csv",
        "field_names": ["Datetime", "UserID", "ResourceReadURI", "Success"],
        "batch_prefix": "Datetime\tUserID\tResourceReadURI\tSuccess\n",
        "field_delimiter": "\t",
        "timestamp_format": "rfc3339",
        "CVE-2021-44228": true,
    }));
    assert_same(actual, "subset-header.rfc3339.tsv");
}

#[test]
fn nested_json_from_a_record_template() {
    let actual = object(json!({
        "output_type": "ndjson",
        "field_names": ["Datetime", "UserID", "ServerResponseDurationMs"],
        "batch_prefix": "{\"events\":[",
        "batch_suffix": "\n]}\n",
        "record_prefix": "\n  {\"info\":{",
        "record_suffix": "}}",
        "record_delimiter": ",",
        "record_template": "\"when\":{{.Datetime}},\"who\":{{ .UserID }},\"server\":{{.ServerID}}{{/* not in field_names: null */}},\"ms\":{{.ServerResponseDurationMs}}",
        "timestamp_format": "rfc3339ms",
    }));
    assert_same(actual.clone(), "nested-template.rfc3339ms.json");
    let parsed: serde_json::Value = serde_json::from_slice(&actual).unwrap();
    assert_eq!(parsed["events"].as_array().unwrap().len(), 3);
}

#[test]
fn objects_describe_themselves() {
    let batch = fixture_batch();
    let ndjson =
        Encoder::new(OutputOptions::default().validate().unwrap(), 9).encode(&batch).unwrap();
    assert_eq!(
        (ndjson.content_type, ndjson.extension, ndjson.records, ndjson.positions),
        ("application/x-ndjson", "log.gz", 3, Some((101, 105)))
    );
    let csv: OutputOptions = serde_json::from_value(json!({"output_type": "csv"})).unwrap();
    let csv = Encoder::new(csv.validate().unwrap(), 9).encode(&batch).unwrap();
    assert_eq!((csv.content_type, csv.extension), ("text/csv; charset=utf-8", "csv.gz"));
    let empty = Encoder::new(OutputOptions::default().validate().unwrap(), 9)
        .encode(&[] as &[McpPortalLog])
        .unwrap();
    assert_eq!((empty.records, empty.positions), (0, None));
    assert_eq!(gunzip(&empty.body).unwrap(), b"");
}
