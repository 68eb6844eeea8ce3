//! Encoders: one batch of records -> the bytes of one object.
//!
//! [`Encoder`] follows a job's [`OutputFormat`]: `ndjson` and `csv` are laid out as the
//! options say ([`text`]) and gzip-compressed, as the product delivers them; `parquet` is a
//! typed columnar file ([`parquet`]). Every encoding is deterministic: the same batch gives
//! byte-identical objects, so a batch encoded again after a crash overwrites its object with the
//! same bytes.

pub mod parquet;
pub mod text;

use portico_core::Position;

use crate::options::{OutputFormat, OutputType};
use crate::record::Row;

/// Why a batch could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("parquet encoding failed: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("arrow batch could not be built: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("compression failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One encoded object, ready for a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedObject {
    /// The object's bytes.
    pub body: Vec<u8>,
    /// `Content-Type` of the body once decoded.
    pub content_type: &'static str,
    /// `Content-Encoding` of the body (`gzip` for the text outputs).
    pub content_encoding: Option<&'static str>,
    /// The file name extension the object's key should end with (`log.gz`, `csv.gz`, `parquet`).
    pub extension: &'static str,
    /// How many records the object holds.
    pub records: usize,
    /// The log positions of the first and last record, if any.
    pub positions: Option<(Position, Position)>,
}

/// Encodes batches for one job.
#[derive(Debug, Clone)]
pub struct Encoder {
    format: OutputFormat,
    job_id: u64,
    parquet: Option<parquet::ParquetEncoder>,
}

impl Encoder {
    /// An encoder of `format` for job `job_id` (recorded in Parquet files' metadata).
    pub fn new(format: OutputFormat, job_id: u64) -> Encoder {
        let parquet = (format.output_type == OutputType::Parquet).then(|| {
            parquet::ParquetEncoder::new(format.dataset, &format.fields, format.redact_log4j)
        });
        Encoder { format, job_id, parquet }
    }

    /// The format this encoder follows.
    pub fn format(&self) -> &OutputFormat {
        &self.format
    }

    /// Encodes `records`, in the order given, into one object.
    pub fn encode(&self, records: &[impl Row]) -> Result<EncodedObject, EncodeError> {
        let positions =
            records.first().zip(records.last()).map(|(a, b)| (a.position(), b.position()));
        let (body, content_type, content_encoding, extension) = match &self.parquet {
            Some(encoder) => {
                let body = encoder.encode(records, self.job_id)?;
                (body, "application/vnd.apache.parquet", None, "parquet")
            }
            None => {
                let body = text::encode_gzip(&self.format, records)?;
                let (content_type, extension) = match self.format.output_type {
                    OutputType::Csv => ("text/csv; charset=utf-8", "csv.gz"),
                    _ => ("application/x-ndjson", "log.gz"),
                };
                (body, content_type, Some("gzip"), extension)
            }
        };
        Ok(EncodedObject {
            body,
            content_type,
            content_encoding,
            extension,
            records: records.len(),
            positions,
        })
    }
}
