//! A job's `output_options`: which fields, which output type, how records are laid out.
//!
//! [`OutputOptions`] is the wire object as a job carries it (every key optional, unknown keys
//! refused). [`OutputOptions::validate`] checks it and applies the defaults of its output type,
//! giving an [`OutputFormat`] the encoders use; each error names the key it is about
//! (`output_options.field_names[2]`), ready to become a 400 on the job's `output_options`.
//!
//! Defaults, as the product applies them: `ndjson` (the default type) lays a record out as
//! `{"Field":value,...}\n` (`record_prefix` `{`, `record_suffix` `}\n`, `field_delimiter` `,`);
//! `csv` as `value,value\n` with strings double-quoted. `timestamp_format` defaults to
//! `unixnano` (the API default), `sample_rate` to 1. A missing `field_names` selects every field
//! of the dataset in its order (Portico's default; the product has a per-dataset default list).
//!
//! `parquet` is Portico's addition: a typed columnar file. The text layout keys do not apply to
//! it and are refused when set; `timestamp_format` is accepted and ignored (Parquet stores
//! `TIMESTAMP(ns, UTC)`).

use chrono::{DateTime, SecondsFormat, Utc};
use portico_core::Position;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Field};
use crate::template::Template;

/// The longest prefix, suffix or delimiter accepted, in bytes.
pub const MAX_LAYOUT_BYTES: usize = 1024;
/// The longest `record_template` accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 4096;

/// The `output_options` object of a Logpush job, as it travels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<String>,
    /// Replace every `${` of the output with `x{` (log4j JNDI lookups).
    #[serde(rename = "CVE-2021-44228", default, skip_serializing_if = "Option::is_none")]
    pub cve_2021_44228: Option<bool>,
    /// Accepted for wire compatibility; only `false` is valid for this dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_subrequests: Option<bool>,
}

/// Why `output_options` was refused: the key (`field_names[2]`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`output_options.{key}`: {message}")]
pub struct OutputOptionsError {
    /// The key the problem is about, with an index for list items (`field_names[2]`).
    pub key: String,
    pub message: String,
}

impl OutputOptionsError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        OutputOptionsError { key: key.into(), message: message.into() }
    }
}

/// The kind of object a job writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputType {
    /// One JSON object per line, gzip-compressed.
    #[default]
    Ndjson,
    /// Comma-separated values, gzip-compressed.
    Csv,
    /// A Parquet file (ZSTD-compressed columns).
    Parquet,
}

impl OutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputType::Ndjson => "ndjson",
            OutputType::Csv => "csv",
            OutputType::Parquet => "parquet",
        }
    }

    fn from_name(name: &str) -> Option<OutputType> {
        [OutputType::Ndjson, OutputType::Csv, OutputType::Parquet]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// How `Datetime` is written in text outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampFormat {
    /// Integer nanoseconds since the Unix epoch: `1708213921123456789`.
    #[default]
    UnixNano,
    /// Integer seconds since the Unix epoch: `1708213921`.
    Unix,
    /// String, whole seconds: `"2024-02-17T23:52:01Z"`.
    Rfc3339,
    /// String, milliseconds: `"2024-02-17T23:52:01.123Z"`.
    Rfc3339Ms,
    /// String, nanoseconds: `"2024-02-17T23:52:01.123456789Z"`.
    Rfc3339Ns,
}

/// A timestamp as a text output writes it: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderedTimestamp {
    Int(i64),
    Str(String),
}

impl TimestampFormat {
    pub const ALL: [TimestampFormat; 5] = [
        TimestampFormat::UnixNano,
        TimestampFormat::Unix,
        TimestampFormat::Rfc3339,
        TimestampFormat::Rfc3339Ms,
        TimestampFormat::Rfc3339Ns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimestampFormat::UnixNano => "unixnano",
            TimestampFormat::Unix => "unix",
            TimestampFormat::Rfc3339 => "rfc3339",
            TimestampFormat::Rfc3339Ms => "rfc3339ms",
            TimestampFormat::Rfc3339Ns => "rfc3339ns",
        }
    }

    fn from_name(name: &str) -> Option<TimestampFormat> {
        TimestampFormat::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// `time` in this format. Sub-second digits are truncated, never rounded, and the
    /// `rfc3339ms`/`rfc3339ns` forms always have 3 and 9 digits.
    pub fn render(self, time: DateTime<Utc>) -> RenderedTimestamp {
        match self {
            TimestampFormat::UnixNano => RenderedTimestamp::Int(unix_nanos(time)),
            TimestampFormat::Unix => RenderedTimestamp::Int(time.timestamp()),
            TimestampFormat::Rfc3339 => {
                RenderedTimestamp::Str(time.to_rfc3339_opts(SecondsFormat::Secs, true))
            }
            TimestampFormat::Rfc3339Ms => {
                RenderedTimestamp::Str(time.to_rfc3339_opts(SecondsFormat::Millis, true))
            }
            TimestampFormat::Rfc3339Ns => {
                RenderedTimestamp::Str(time.to_rfc3339_opts(SecondsFormat::Nanos, true))
            }
        }
    }
}

/// Nanoseconds since the Unix epoch, saturated outside the years 1677 to 2262.
pub(crate) fn unix_nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap_or(if time.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// The text layout of `ndjson` and `csv` outputs, with the type's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLayout {
    pub batch_prefix: String,
    pub batch_suffix: String,
    pub record_prefix: String,
    pub record_suffix: String,
    pub record_delimiter: String,
    /// Ignored when `record_template` is set.
    pub field_delimiter: String,
    pub record_template: Option<Template>,
}

/// Validated output options with their defaults applied: what the encoders follow.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFormat {
    /// The dataset of the records.
    pub dataset: Dataset,
    /// The fields written, in this order (never empty, no duplicates, all of the dataset).
    pub fields: Vec<Field>,
    pub output_type: OutputType,
    pub timestamp_format: TimestampFormat,
    /// In `(0, 1]`.
    pub sample_rate: f64,
    /// Replace `${` with `x{` in everything written.
    pub redact_log4j: bool,
    /// The text layout (meaningless for `parquet`).
    pub layout: TextLayout,
}

impl Default for OutputFormat {
    /// Every field as `ndjson` with the API's defaults: what empty `output_options` give.
    fn default() -> Self {
        OutputFormat {
            dataset: Dataset::McpPortalLogs,
            fields: Dataset::McpPortalLogs.fields(),
            output_type: OutputType::Ndjson,
            timestamp_format: TimestampFormat::UnixNano,
            sample_rate: 1.0,
            redact_log4j: false,
            layout: ndjson_layout(),
        }
    }
}

fn ndjson_layout() -> TextLayout {
    TextLayout {
        batch_prefix: String::new(),
        batch_suffix: String::new(),
        record_prefix: "{".into(),
        record_suffix: "}\n".into(),
        record_delimiter: String::new(),
        field_delimiter: ",".into(),
        record_template: None,
    }
}

fn csv_layout() -> TextLayout {
    TextLayout { record_prefix: String::new(), record_suffix: "\n".into(), ..ndjson_layout() }
}

impl OutputOptions {
    /// Checks the options for `mcp_portal_logs` and applies the defaults of their output type.
    pub fn validate(&self) -> Result<OutputFormat, OutputOptionsError> {
        self.validate_for(Dataset::McpPortalLogs)
    }

    /// Checks the options for `dataset` and applies the defaults of their output type.
    pub fn validate_for(&self, dataset: Dataset) -> Result<OutputFormat, OutputOptionsError> {
        let fields = self.fields(dataset)?;
        let output_type = match self.output_type.as_deref() {
            None => OutputType::default(),
            Some(name) => OutputType::from_name(name).ok_or_else(|| {
                OutputOptionsError::new(
                    "output_type",
                    format!("unknown output type `{name}`; expected `ndjson`, `csv` or `parquet`"),
                )
            })?,
        };
        let timestamp_format = match self.timestamp_format.as_deref() {
            None => TimestampFormat::default(),
            Some(name) => TimestampFormat::from_name(name).ok_or_else(|| {
                OutputOptionsError::new(
                    "timestamp_format",
                    format!(
                        "unknown timestamp format `{name}`; expected `unixnano`, `unix`, \
                         `rfc3339`, `rfc3339ms` or `rfc3339ns`"
                    ),
                )
            })?,
        };
        let sample_rate = self.sample_rate.unwrap_or(1.0);
        if !(sample_rate > 0.0 && sample_rate <= 1.0) {
            return Err(OutputOptionsError::new(
                "sample_rate",
                format!("must be greater than 0 and at most 1, not `{sample_rate}`"),
            ));
        }
        if self.merge_subrequests == Some(true) {
            return Err(OutputOptionsError::new(
                "merge_subrequests",
                "applies to the `http_requests` dataset only",
            ));
        }
        let layout = self.layout(dataset, output_type)?;
        Ok(OutputFormat {
            dataset,
            fields,
            output_type,
            timestamp_format,
            sample_rate,
            redact_log4j: self.cve_2021_44228.unwrap_or(false),
            layout,
        })
    }

    fn fields(&self, dataset: Dataset) -> Result<Vec<Field>, OutputOptionsError> {
        let Some(names) = &self.field_names else {
            return Ok(dataset.fields());
        };
        if names.is_empty() {
            return Err(OutputOptionsError::new("field_names", "must name at least one field"));
        }
        let mut fields = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let key = format!("field_names[{i}]");
            let field = dataset.field(name).ok_or_else(|| {
                OutputOptionsError::new(
                    &key,
                    format!(
                        "unknown field `{name}`; the fields of {dataset} are {}",
                        dataset.field_list()
                    ),
                )
            })?;
            if fields.contains(&field) {
                return Err(OutputOptionsError::new(key, format!("`{name}` is listed twice")));
            }
            fields.push(field);
        }
        Ok(fields)
    }

    fn layout(
        &self,
        dataset: Dataset,
        output_type: OutputType,
    ) -> Result<TextLayout, OutputOptionsError> {
        let keys = [
            ("batch_prefix", &self.batch_prefix),
            ("batch_suffix", &self.batch_suffix),
            ("record_prefix", &self.record_prefix),
            ("record_suffix", &self.record_suffix),
            ("record_delimiter", &self.record_delimiter),
            ("field_delimiter", &self.field_delimiter),
            ("record_template", &self.record_template),
        ];
        for (key, value) in keys {
            let Some(value) = value else { continue };
            let max = if key == "record_template" { MAX_TEMPLATE_BYTES } else { MAX_LAYOUT_BYTES };
            if value.len() > max {
                return Err(OutputOptionsError::new(
                    key,
                    format!("is {} bytes long; at most {max} bytes are allowed", value.len()),
                ));
            }
            if output_type == OutputType::Parquet && !value.is_empty() {
                return Err(OutputOptionsError::new(
                    key,
                    "does not apply to `parquet` output, which has no text layout",
                ));
            }
        }
        let defaults = match output_type {
            OutputType::Csv => csv_layout(),
            OutputType::Ndjson | OutputType::Parquet => ndjson_layout(),
        };
        let pick = |value: &Option<String>, default: String| value.clone().unwrap_or(default);
        let record_template = match self.record_template.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                Template::parse_for(dataset, text)
                    .map_err(|e| OutputOptionsError::new("record_template", e.to_string()))?,
            ),
        };
        Ok(TextLayout {
            batch_prefix: pick(&self.batch_prefix, defaults.batch_prefix),
            batch_suffix: pick(&self.batch_suffix, defaults.batch_suffix),
            record_prefix: pick(&self.record_prefix, defaults.record_prefix),
            record_suffix: pick(&self.record_suffix, defaults.record_suffix),
            record_delimiter: pick(&self.record_delimiter, defaults.record_delimiter),
            field_delimiter: pick(&self.field_delimiter, defaults.field_delimiter),
            record_template,
        })
    }
}

impl OutputFormat {
    /// Whether the record at `position` is kept by `sample_rate` in job `job_id`.
    ///
    /// The decision is a pure function of the job and the position, so a batch encoded again
    /// after a crash keeps the same records (and gives the same object); different jobs sample
    /// independently. Sampling is applied after the filter.
    pub fn samples(&self, job_id: u64, position: Position) -> bool {
        if self.sample_rate >= 1.0 {
            return true;
        }
        // 53 uniformly distributed bits in [0, 1), compared with the rate.
        let draw = (mix(position ^ mix(job_id)) >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.sample_rate
    }
}

/// SplitMix64's finaliser: a bijective mix of all 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;
