//! The `parquet` output: the selected fields as typed Arrow columns, written with the `parquet`
//! crate's Arrow writer.
//!
//! Types: `Datetime` is `TIMESTAMP(ns, UTC)`, `Success` a boolean, `ServerResponseDurationMs`
//! a 64-bit integer, strings UTF-8, dictionary-encoded in Arrow (and so in Parquet) except the
//! two that are nearly unique per row (`SessionID`, `ResourceReadURI`), which Parquet would
//! have to abandon a dictionary for. The fields every call has (`Datetime`, `Method`,
//! `PortalID`, `Success`, `UserID`) are non-nullable; the others are nullable.
//!
//! Columns are ZSTD-compressed, row groups hold [`ROW_GROUP_ROWS`] rows, and the file's
//! key/value metadata names the dataset, the job and the position range. Nothing in the file
//! depends on the clock or on randomness: the same batch gives the same bytes.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Int64Builder, StringBuilder, StringDictionaryBuilder,
    TimestampNanosecondBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::dataset::{Dataset, Field, FieldType};
use crate::encode::EncodeError;
use crate::options::unix_nanos;
use crate::record::{Row, Value};

/// Rows per row group: large enough for good compression and few footer entries, small enough
/// that a reader (DuckDB, Athena) can split a full 1,000,000-record batch eight ways.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// The ZSTD level of every column.
pub const ZSTD_LEVEL: i32 = 3;
/// Key/value metadata key: the dataset (`mcp_portal_logs`).
pub const METADATA_DATASET: &str = "portico.dataset";
/// Key/value metadata key: the Logpush job id.
pub const METADATA_JOB_ID: &str = "portico.job_id";
/// Key/value metadata key: the log position of the first record.
pub const METADATA_FIRST_POSITION: &str = "portico.first_position";
/// Key/value metadata key: the log position of the last record.
pub const METADATA_LAST_POSITION: &str = "portico.last_position";

/// The Arrow type of a field's column.
pub fn data_type(field: Field) -> DataType {
    match field.field_type() {
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        FieldType::Int => DataType::Int64,
        FieldType::Bool => DataType::Boolean,
        FieldType::String if dictionary_encoded(field) => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
        FieldType::String | FieldType::Json => DataType::Utf8,
    }
}

/// Whether a string column repeats its values enough to be dictionary-encoded (not ids).
fn dictionary_encoded(field: Field) -> bool {
    !matches!(
        field,
        Field::SessionId
            | Field::ResourceReadUri
            | Field::EventId
            | Field::Id
            | Field::CorrelationId
    )
}

/// Whether every record has a value for `field`.
pub fn non_nullable(field: Field) -> bool {
    matches!(
        field,
        Field::Datetime
            | Field::Method
            | Field::PortalId
            | Field::Success
            | Field::UserId
            | Field::EventId
            | Field::Status
            | Field::PolicyIds
            | Field::DurationMs
            | Field::ActionResult
            | Field::ActionType
            | Field::ActorId
            | Field::ActorType
            | Field::Id
            | Field::Interface
            | Field::Metadata
            | Field::OwnerId
            | Field::ResourceId
            | Field::ResourceType
            | Field::When
            | Field::CorrelationId
            | Field::EventType
    )
}

/// The Arrow schema of a file holding `fields`, in that order.
pub fn arrow_schema(fields: &[Field]) -> Schema {
    Schema::new(
        fields
            .iter()
            .map(|f| ArrowField::new(f.name(), data_type(*f), !non_nullable(*f)))
            .collect::<Vec<_>>(),
    )
}

/// Writes batches of records as Parquet files of a fixed set of fields.
#[derive(Debug, Clone)]
pub struct ParquetEncoder {
    dataset: Dataset,
    fields: Vec<Field>,
    schema: SchemaRef,
    redact_log4j: bool,
}

impl ParquetEncoder {
    /// An encoder of `fields` of `dataset`; `redact_log4j` replaces `${` with `x{` in string
    /// values.
    pub fn new(dataset: Dataset, fields: &[Field], redact_log4j: bool) -> ParquetEncoder {
        ParquetEncoder {
            dataset,
            fields: fields.to_vec(),
            schema: Arc::new(arrow_schema(fields)),
            redact_log4j,
        }
    }

    /// The schema of the files.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The Arrow columns of `records`.
    pub fn record_batch(&self, records: &[impl Row]) -> Result<RecordBatch, EncodeError> {
        let columns: Vec<ArrayRef> =
            self.fields.iter().map(|field| self.column(*field, records)).collect();
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// A Parquet file of `records` for job `job_id`.
    pub fn encode(&self, records: &[impl Row], job_id: u64) -> Result<Vec<u8>, EncodeError> {
        let mut metadata = vec![
            KeyValue::new(METADATA_DATASET.to_owned(), self.dataset.name().to_owned()),
            KeyValue::new(METADATA_JOB_ID.to_owned(), job_id.to_string()),
        ];
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            metadata.push(KeyValue::new(
                METADATA_FIRST_POSITION.to_owned(),
                first.position().to_string(),
            ));
            metadata.push(KeyValue::new(
                METADATA_LAST_POSITION.to_owned(),
                last.position().to_string(),
            ));
        }
        // Parquet pages are about 1 MiB; a record is about 40 bytes once compressed.
        let capacity = 4096 + records.len() * 48;
        let mut writer = self.stream(Vec::with_capacity(capacity), metadata)?;
        // One Arrow batch per row group keeps memory at one row group's columns.
        for chunk in records.chunks(ROW_GROUP_ROWS) {
            writer.write(&self.record_batch(chunk)?)?;
        }
        Ok(writer.into_inner()?)
    }

    /// A Parquet file written to `out` a record batch at a time ([`Self::record_batch`]), with
    /// `metadata` in its footer: for files larger than memory (an export). Close the writer to
    /// finish the file.
    pub fn stream<W: std::io::Write + Send>(
        &self,
        out: W,
        metadata: Vec<KeyValue>,
    ) -> Result<ArrowWriter<W>, EncodeError> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(metadata))
            .build();
        Ok(ArrowWriter::try_new(out, self.schema.clone(), Some(properties))?)
    }

    fn column(&self, field: Field, records: &[impl Row]) -> ArrayRef {
        let n = records.len();
        match data_type(field) {
            DataType::Timestamp(..) => {
                let mut builder = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
                for record in records {
                    match record.value(field) {
                        Value::Timestamp(t) => builder.append_value(unix_nanos(t)),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            DataType::Int64 => {
                let mut builder = Int64Builder::with_capacity(n);
                for record in records {
                    match record.value(field) {
                        Value::Int(v) => builder.append_value(v),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            DataType::Boolean => {
                let mut builder = BooleanBuilder::with_capacity(n);
                for record in records {
                    match record.value(field) {
                        Value::Bool(v) => builder.append_value(v),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            DataType::Dictionary(..) => {
                let mut builder = StringDictionaryBuilder::<Int32Type>::new();
                for record in records {
                    match record.value(field) {
                        Value::Str(s) => builder.append_value(self.redacted(s)),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            _ => {
                let mut builder = StringBuilder::with_capacity(n, n * 32);
                for record in records {
                    match record.value(field) {
                        Value::Str(s) | Value::Json(s) => builder.append_value(self.redacted(s)),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
        }
    }

    fn redacted<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if self.redact_log4j && s.contains("${") {
            Cow::Owned(s.replace("${", "x{"))
        } else {
            Cow::Borrowed(s)
        }
    }
}
