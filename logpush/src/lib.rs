//! Portico's Logpush library: the records a job delivers (`mcp_portal_logs` calls and
//! `audit_logs` admin changes), the job's `filter`
//! and `output_options`, the encoders that turn a batch of records into the bytes of one
//! object, the batches ([`batch`]) and the destinations ([`sink`]: S3, HTTP, Splunk). The
//! worker that follows the log, plans batches and records deliveries is the application's
//! (`portico-app`), which holds the log and the vault.
//!
//! One batch of a job goes through it as:
//! `RecordedEvent` -> [`McpPortalLog::from_recorded`] -> [`Filter::matches`] ->
//! [`OutputFormat::samples`] -> [`Encoder::encode`] -> [`EncodedObject`] (body, content type,
//! content encoding, extension, position range).

pub mod audit;
pub mod batch;
pub mod dataset;
pub mod encode;
pub mod filter;
pub mod options;
pub mod record;
pub mod sink;
pub mod template;

#[cfg(test)]
mod testing;

pub use audit::{AuditLogRecord, fill_values};
pub use dataset::{DATASET, Dataset, Field, FieldType};
pub use encode::{EncodeError, EncodedObject, Encoder};
pub use filter::{Filter, FilterError, MAX_FILTER_BYTES, MAX_FILTER_OPERATORS, Operator};
pub use options::{
    OutputFormat, OutputOptions, OutputOptionsError, OutputType, TextLayout, TimestampFormat,
};
pub use record::{McpPortalLog, Record, Row, Value};
pub use template::{Template, TemplateError};
