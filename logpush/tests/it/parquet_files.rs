//! Parquet objects read back with the `parquet` crate's Arrow reader: the records, the schema,
//! the file's metadata, and byte-for-byte determinism.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{
    Compression, Encoding, LogicalType, TimeUnit as ParquetTimeUnit, TimestampType,
};
use parquet::file::metadata::ParquetMetaData;
use portico_core::domain::call::AuditedMethod;
use portico_logpush::encode::parquet::{ROW_GROUP_ROWS, arrow_schema};
use portico_logpush::{
    Dataset, Encoder, Field, McpPortalLog, OutputFormat, OutputType, Row, Value,
};
use proptest::prelude::*;

use crate::records::fixture_batch;

/// One cell as read back.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Str(String),
    Int(i64),
    Bool(bool),
    Timestamp(i64),
}

fn expected(value: Value<'_>) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::Str(s) => Cell::Str(s.to_owned()),
        Value::Int(n) => Cell::Int(n),
        Value::Bool(b) => Cell::Bool(b),
        Value::Timestamp(t) => Cell::Timestamp(t.timestamp_nanos_opt().unwrap()),
        // JSON values are their text in Parquet.
        Value::Json(s) => Cell::Str(s.to_owned()),
    }
}

fn cell(column: &ArrayRef, row: usize) -> Cell {
    if column.is_null(row) {
        return Cell::Null;
    }
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Cell::Timestamp(column.as_primitive::<TimestampNanosecondType>().value(row))
        }
        DataType::Int64 => Cell::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::Boolean => Cell::Bool(column.as_boolean().value(row)),
        DataType::Utf8 => Cell::Str(column.as_string::<i32>().value(row).to_owned()),
        DataType::Dictionary(..) => {
            let dictionary = column.as_dictionary::<Int32Type>();
            let key = usize::try_from(dictionary.keys().value(row)).unwrap();
            Cell::Str(dictionary.values().as_string::<i32>().value(key).to_owned())
        }
        other => panic!("unexpected column type {other}"),
    }
}

/// The 19 fields of `mcp_portal_logs`.
fn mcp_fields() -> Vec<Field> {
    Dataset::McpPortalLogs.fields()
}

fn parquet_format(fields: &[Field], redact: bool) -> OutputFormat {
    OutputFormat {
        fields: fields.to_vec(),
        output_type: OutputType::Parquet,
        redact_log4j: redact,
        ..OutputFormat::default()
    }
}

fn encode(fields: &[Field], records: &[McpPortalLog]) -> Vec<u8> {
    let encoded = Encoder::new(parquet_format(fields, false), 42).encode(records).unwrap();
    assert_eq!(encoded.content_encoding, None);
    assert_eq!(encoded.extension, "parquet");
    encoded.body
}

/// The batches and the file metadata of a Parquet object.
fn read(bytes: Vec<u8>) -> (Vec<RecordBatch>, ParquetMetaData) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
    let metadata = builder.metadata().as_ref().clone();
    let batches = builder.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    (batches, metadata)
}

/// Every cell of the records as read back, row by row.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(batch.columns().iter().map(|column| cell(column, row)).collect());
        }
    }
    rows
}

fn expected_rows(fields: &[Field], records: &[McpPortalLog]) -> Vec<Vec<Cell>> {
    records.iter().map(|r| fields.iter().map(|f| expected(r.value(*f))).collect()).collect()
}

#[test]
fn the_fixture_batch_reads_back_with_its_types() {
    let records = fixture_batch();
    let (batches, _) = read(encode(&mcp_fields(), &records));
    let schema = batches[0].schema();
    assert_eq!(schema.as_ref(), &arrow_schema(&mcp_fields()));
    let types = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(types("Datetime"), DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())));
    assert_eq!(types("Success"), DataType::Boolean);
    assert_eq!(types("ServerResponseDurationMs"), DataType::Int64);
    assert_eq!(
        types("PortalID"),
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    );
    assert_eq!(types("SessionID"), DataType::Utf8);
    assert!(!schema.field_with_name("UserID").unwrap().is_nullable());
    assert!(schema.field_with_name("Error").unwrap().is_nullable());
    assert_eq!(rows(&batches), expected_rows(&mcp_fields(), &records));
}

#[test]
fn the_file_is_zstd_with_nanosecond_utc_timestamps_and_names_dataset_job_and_positions() {
    let (_, metadata) = read(encode(&mcp_fields(), &fixture_batch()));
    let file = metadata.file_metadata();
    let kv: Vec<(String, Option<String>)> = file
        .key_value_metadata()
        .unwrap()
        .iter()
        .filter(|kv| kv.key.starts_with("portico."))
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        kv,
        vec![
            ("portico.dataset".to_owned(), some("mcp_portal_logs")),
            ("portico.job_id".to_owned(), some("42")),
            ("portico.first_position".to_owned(), some("101")),
            ("portico.last_position".to_owned(), some("105")),
        ]
    );
    let datetime = file.schema_descr().columns().iter().find(|c| c.name() == "Datetime").unwrap();
    assert_eq!(
        datetime.logical_type_ref(),
        Some(&LogicalType::Timestamp(TimestampType {
            is_adjusted_to_u_t_c: true,
            unit: ParquetTimeUnit::NANOS
        }))
    );
    for column in metadata.row_group(0).columns() {
        assert!(matches!(column.compression(), Compression::ZSTD(_)), "{}", column.column_path());
    }
    let portal = metadata
        .row_group(0)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "PortalID")
        .unwrap();
    assert!(
        portal
            .encodings()
            .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY)),
        "PortalID is dictionary-encoded"
    );
}

#[test]
fn large_batches_are_split_into_row_groups() {
    let template = fixture_batch();
    let records: Vec<McpPortalLog> = (0..2 * ROW_GROUP_ROWS + 5)
        .map(|i| McpPortalLog { position: i as u64 + 1, ..template[i % 3].clone() })
        .collect();
    let fields = [Field::Datetime, Field::UserId, Field::Success];
    let (batches, metadata) = read(encode(&fields, &records));
    let sizes: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(sizes, vec![ROW_GROUP_ROWS as i64, ROW_GROUP_ROWS as i64, 5]);
    assert_eq!(rows(&batches), expected_rows(&fields, &records));
}

#[test]
fn the_same_batch_gives_the_same_bytes() {
    let records = fixture_batch();
    let first = encode(&mcp_fields(), &records);
    assert_eq!(encode(&mcp_fields(), &records), first);
    let many: Vec<McpPortalLog> = records.iter().cycle().take(3000).cloned().collect();
    assert_eq!(encode(&mcp_fields(), &many), encode(&mcp_fields(), &many));
    // A different batch gives a different object.
    assert_ne!(encode(&mcp_fields(), &records[..2]), first);
}

/// Determinism across processes and builds: the fixture batch's object is committed. A
/// deliberate change of the format (or of the `parquet` crate, whose version is in the file's
/// `created_by`) re-blesses it with `PORTICO_BLESS=1`.
#[test]
fn the_fixture_batch_gives_the_committed_object() {
    let path = format!("{}/tests/it/fixtures/fixture-batch.parquet", env!("CARGO_MANIFEST_DIR"));
    let actual = encode(&mcp_fields(), &fixture_batch());
    if std::env::var_os("PORTICO_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let committed = std::fs::read(&path).unwrap();
    assert!(actual == committed, "the Parquet object of the fixture batch changed");
}

#[test]
fn log4j_redaction_applies_to_string_values() {
    let fields = [Field::ResourceReadUri, Field::UserId];
    let encoded = Encoder::new(parquet_format(&fields, true), 1).encode(&fixture_batch()).unwrap();
    let (batches, _) = read(encoded.body);
    assert_eq!(cell(batches[0].column(0), 2), Cell::Str("file:///tmp/x{jndi:ldap://x}.txt".into()));
}

fn text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![any::<String>(), "[a-z]{0,3}", Just("${x}".to_owned())])
}

prop_compose! {
    fn record()(
        position in any::<u64>(),
        (client_country, client_ip, colo_code, error, portal_aud, prompt_get_name)
            in (text(), text(), text(), text(), text(), text()),
        (resource_read_uri, server_aud, server_id, server_url, session_id, tool_call_name)
            in (text(), text(), text(), text(), text(), text()),
        user_email in text(),
        nanos in any::<i64>(),
        method in prop_oneof![
            Just(AuditedMethod::ToolsCall),
            Just(AuditedMethod::PromptsGet),
            Just(AuditedMethod::ResourcesRead),
        ],
        portal_id in "[a-z0-9-]{1,12}",
        duration in prop::option::of(any::<i64>()),
        success in any::<bool>(),
        user_id in any::<String>(),
        (event_id, status, policies, duration_ms) in (
            "[0-9a-f-]{36}",
            prop_oneof![Just("ok"), Just("denied"), Just("timeout")],
            prop::collection::vec(any::<String>(), 0..3),
            any::<i64>(),
        ),
    ) -> McpPortalLog {
        McpPortalLog {
            position, client_country, client_ip, colo_code,
            datetime: Utc.timestamp_nanos(nanos),
            error, method, portal_aud, portal_id, prompt_get_name, resource_read_uri,
            server_aud, server_id, server_response_duration_ms: duration, server_url,
            session_id, success, tool_call_name, user_email, user_id,
            event_id, status, policy_ids: serde_json::to_string(&policies).unwrap(), duration_ms,
        }
    }
}

fn fields() -> impl Strategy<Value = Vec<Field>> {
    // Portico's own fields too.
    let all = Dataset::McpPortalLogs.all_fields();
    let len = all.len();
    prop::sample::subsequence(all, 1..=len).prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Parquet -> Arrow read-back equals the records, for any records and any field selection.
    #[test]
    fn parquet_reads_back_as_the_records(
        records in prop::collection::vec(record(), 0..40),
        fields in fields(),
    ) {
        let (batches, metadata) = read(encode(&fields, &records));
        prop_assert_eq!(metadata.file_metadata().num_rows(), records.len() as i64);
        prop_assert_eq!(rows(&batches), expected_rows(&fields, &records));
        if let Some(batch) = batches.first() {
            let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
            let wanted: Vec<&str> = fields.iter().map(|f| f.name()).collect();
            prop_assert_eq!(names, wanted);
        }
    }
}
