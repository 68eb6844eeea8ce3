//! The `ndjson` and `csv` outputs: records laid out by the job's [`TextLayout`].
//!
//! A batch is `batch_prefix`, the records separated by `record_delimiter`, then
//! `batch_suffix`. A record is `record_prefix`, its body, then `record_suffix`. The body is the
//! `record_template` when there is one; otherwise the selected fields joined by
//! `field_delimiter`, each written `"Name":value` in `ndjson` and `value` in `csv`.
//!
//! Values: strings are JSON strings in `ndjson` and double-quoted in `csv` (a `"` inside is
//! doubled, RFC 4180); integers and booleans are bare; `Datetime` follows `timestamp_format`
//! (a bare integer or a string); a field the record has no value for, or a template field that
//! is not in `field_names`, is `null`.
//!
//! With `CVE-2021-44228` set, every `${` of the output (values, prefixes and template text
//! alike, across their boundaries) becomes `x{`.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::dataset::Field;
use crate::options::{OutputFormat, OutputType, RenderedTimestamp, TimestampFormat};
use crate::record::{Row, Value};
use crate::template::Part;

/// The batch as uncompressed text.
pub fn encode(format: &OutputFormat, records: &[impl Row]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 256);
    // INVARIANT: writing to a Vec cannot fail.
    let _ = write(format, records, &mut out);
    out
}

/// The batch as gzip-compressed text (what a destination receives).
pub fn encode_gzip(format: &OutputFormat, records: &[impl Row]) -> io::Result<Vec<u8>> {
    // Level 6 (zlib's default); the header has no name and a zero mtime, so the bytes depend on
    // the content only.
    let mut gzip = GzEncoder::new(Vec::with_capacity(records.len() * 48), Compression::default());
    write(format, records, &mut gzip)?;
    gzip.finish()
}

/// Decompresses a gzip object (tests and tools).
pub fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut decoder = flate2::write::GzDecoder::new(&mut out);
    decoder.write_all(bytes)?;
    decoder.finish()?;
    Ok(out)
}

/// Writes the batch to `out`.
pub fn write<W: Write>(format: &OutputFormat, records: &[impl Row], out: W) -> io::Result<()> {
    let layout = &format.layout;
    let mut sink = Sink { out, redact: format.redact_log4j, held_dollar: false };
    let mut selected = [false; Field::ALL.len()];
    for field in &format.fields {
        selected[*field as usize] = true;
    }
    let writer =
        ValueWriter { output_type: format.output_type, timestamps: format.timestamp_format };
    let mut line = Vec::with_capacity(512);
    line.extend_from_slice(layout.batch_prefix.as_bytes());
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            line.extend_from_slice(layout.record_delimiter.as_bytes());
        }
        line.extend_from_slice(layout.record_prefix.as_bytes());
        match &layout.record_template {
            Some(template) => {
                for part in template.parts() {
                    match part {
                        Part::Text(text) => line.extend_from_slice(text.as_bytes()),
                        Part::Field(field) if selected[*field as usize] => {
                            writer.value(&mut line, record.value(*field))
                        }
                        Part::Field(_) => line.extend_from_slice(b"null"),
                    }
                }
            }
            None => {
                for (n, field) in format.fields.iter().enumerate() {
                    if n > 0 {
                        line.extend_from_slice(layout.field_delimiter.as_bytes());
                    }
                    if format.output_type == OutputType::Ndjson {
                        line.push(b'"');
                        line.extend_from_slice(field.name().as_bytes());
                        line.extend_from_slice(b"\":");
                    }
                    writer.value(&mut line, record.value(*field));
                }
            }
        }
        line.extend_from_slice(layout.record_suffix.as_bytes());
        sink.write(&mut line)?;
        line.clear();
    }
    line.extend_from_slice(layout.batch_suffix.as_bytes());
    sink.write(&mut line)?;
    sink.finish()
}

/// Writes values as one output type writes them.
struct ValueWriter {
    output_type: OutputType,
    timestamps: TimestampFormat,
}

impl ValueWriter {
    fn value(&self, out: &mut Vec<u8>, value: Value<'_>) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Str(s) => self.string(out, s),
            Value::Int(n) => integer(out, n),
            Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Value::Timestamp(t) => self.timestamp(out, t),
            // NDJSON (and a template) writes the JSON value itself; CSV its text, quoted.
            Value::Json(json) => match self.output_type {
                OutputType::Csv => self.string(out, json),
                OutputType::Ndjson | OutputType::Parquet => out.extend_from_slice(json.as_bytes()),
            },
        }
    }

    fn timestamp(&self, out: &mut Vec<u8>, time: DateTime<Utc>) {
        match self.timestamps.render(time) {
            RenderedTimestamp::Int(n) => integer(out, n),
            RenderedTimestamp::Str(s) => self.string(out, &s),
        }
    }

    fn string(&self, out: &mut Vec<u8>, s: &str) {
        match self.output_type {
            OutputType::Csv => {
                out.push(b'"');
                for (i, part) in s.split('"').enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b"\"\"");
                    }
                    out.extend_from_slice(part.as_bytes());
                }
                out.push(b'"');
            }
            OutputType::Ndjson | OutputType::Parquet => json_string(out, s),
        }
    }
}

fn integer(out: &mut Vec<u8>, n: i64) {
    // INVARIANT: writing to a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// `s` as a JSON string: `"`, `\` and control characters escaped, everything else as is.
fn json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Where rendered chunks go: the writer, through the log4j redaction when it is on.
struct Sink<W> {
    out: W,
    redact: bool,
    /// A `$` that ended the last chunk, not yet written: the next chunk decides whether it
    /// starts a `${`.
    held_dollar: bool,
}

impl<W: Write> Sink<W> {
    fn write(&mut self, chunk: &mut [u8]) -> io::Result<()> {
        if !self.redact {
            return self.out.write_all(chunk);
        }
        if std::mem::take(&mut self.held_dollar) {
            let held: &[u8] = if chunk.first() == Some(&b'{') { b"x" } else { b"$" };
            self.out.write_all(held)?;
        }
        for i in 1..chunk.len() {
            if chunk[i] == b'{' && chunk[i - 1] == b'$' {
                chunk[i - 1] = b'x';
            }
        }
        match chunk.split_last() {
            Some((b'$', rest)) => {
                self.held_dollar = true;
                self.out.write_all(rest)
            }
            _ => self.out.write_all(chunk),
        }
    }

    fn finish(mut self) -> io::Result<()> {
        if self.held_dollar {
            self.out.write_all(b"$")?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::OutputOptions;
    use crate::testing::tool_call;

    fn text(options: serde_json::Value, records: &[crate::record::McpPortalLog]) -> String {
        let options: OutputOptions = serde_json::from_value(options).unwrap();
        String::from_utf8(encode(&options.validate().unwrap(), records)).unwrap()
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls_only() {
        let mut out = Vec::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}é😀</>");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\nd\u0001é😀</>""#);
        let mut record = tool_call();
        record.error = Some("\t\u{7f}\u{1f}".into());
        let line = text(serde_json::json!({"field_names": ["Error"]}), &[record]);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["Error"], "\t\u{7f}\u{1f}");
    }

    #[test]
    fn csv_doubles_quotes_inside_strings() {
        let mut record = tool_call();
        record.error = Some(r#"said "no", twice"#.into());
        let line =
            text(serde_json::json!({"output_type": "csv", "field_names": ["Error"]}), &[record]);
        assert_eq!(line, "\"said \"\"no\"\", twice\"\n");
    }

    #[test]
    fn redaction_covers_values_layout_and_their_boundaries() {
        let mut record = tool_call();
        record.error = Some("${jndi:ldap://x} $${ok} $".into());
        let options = serde_json::json!({
            "output_type": "csv", "field_names": ["Error"], "CVE-2021-44228": true,
            "batch_prefix": "${", "record_prefix": "$", "record_suffix": "{\n",
        });
        assert_eq!(text(options, &[record]), "x{$\"x{jndi:ldap://x} $x{ok} $\"{\n");
        // A record ends in `$` and what follows starts with `{`: that pair is redacted too.
        let options = serde_json::json!({
            "output_type": "csv", "field_names": ["UserID"], "CVE-2021-44228": true,
            "record_suffix": "$", "batch_suffix": "{",
        });
        assert_eq!(text(options, &[tool_call(), tool_call()]), "\"user-1\"$\"user-1\"x{");
        // A `$` that ends the output is written.
        let options = serde_json::json!({
            "output_type": "csv", "field_names": ["UserID"], "CVE-2021-44228": true,
            "record_suffix": "$",
        });
        assert_eq!(text(options, &[tool_call()]), "\"user-1\"$");
    }

    #[test]
    fn without_the_option_nothing_is_redacted() {
        let mut record = tool_call();
        record.error = Some("${jndi}".into());
        let line = text(serde_json::json!({"field_names": ["Error"]}), &[record]);
        assert_eq!(line, "{\"Error\":\"${jndi}\"}\n");
    }

    #[test]
    fn gzip_round_trips_and_is_repeatable() {
        let format = OutputFormat::default();
        let records = vec![tool_call(); 100];
        let zipped = encode_gzip(&format, &records).unwrap();
        assert_eq!(zipped[..2], [0x1f, 0x8b]);
        assert_eq!(gunzip(&zipped).unwrap(), encode(&format, &records));
        assert_eq!(encode_gzip(&format, &records).unwrap(), zipped);
    }
}
