//! `portico logs`: the auditors' commands. `export` writes the `mcp_portal_logs` records of a
//! period to a file (Parquet, NDJSON or CSV) straight from the event log; `tail` prints calls
//! as they are recorded, one NDJSON line each.
//!
//! Both read the event log itself (the record, not a read model), so they work with the server
//! stopped and give the same records Logpush pushes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use portico_core::domain::account::{ACCOUNT_STREAM, AccountState};
use portico_core::log::Subscription;
use portico_logpush::encode::parquet::ParquetEncoder;
use portico_logpush::encode::text;
use portico_logpush::{
    AuditLogRecord, DATASET, Dataset, McpPortalLog, OutputFormat, OutputOptions, Record, Row,
    fill_values,
};

use crate::config::Config;
use crate::storage::Storage;

/// Records are encoded this many at a time, so an export of any size needs bounded memory.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Write the calls of a period to a file, from the event log.
    Export(ExportArgs),
    /// Print calls as they are recorded (NDJSON), until interrupted.
    Tail(TailArgs),
}

/// The file formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Parquet,
    Ndjson,
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The dataset: `mcp_portal_logs` (every tools/call, prompts/get and resources/read) or
    /// `audit_logs` (every admin change).
    #[arg(long, default_value = DATASET)]
    pub dataset: String,
    /// Calls recorded at or after this time: RFC 3339 or a date (midnight UTC).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Calls recorded before this time: RFC 3339 or a date.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Only the calls of this portal.
    #[arg(long)]
    pub portal: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// The fields, comma-separated (dataset names, Portico's own included) [default: the
    /// dataset's own: 19 for mcp_portal_logs, 15 for audit_logs].
    #[arg(long, value_delimiter = ',')]
    pub fields: Option<Vec<String>>,
    /// How NDJSON and CSV write `Datetime`: `unixnano`, `unix`, `rfc3339`, `rfc3339ms` or
    /// `rfc3339ns` (Parquet always stores UTC nanoseconds).
    #[arg(long, default_value = "rfc3339")]
    pub timestamp_format: String,
    /// The file to write; `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only the calls of this portal.
    #[arg(long)]
    pub portal: Option<String>,
    /// Start with the calls recorded in the last N seconds (default: only new calls).
    #[arg(long, default_value_t = 0)]
    pub since_seconds: u64,
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("`{value}` is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))
}

/// Runs a `logs` command.
pub async fn run(config: Config, command: LogsCommand) -> anyhow::Result<()> {
    match command {
        LogsCommand::Export(args) => export(config, args).await,
        LogsCommand::Tail(args) => tail(config, args).await,
    }
}

/// The output format of `format` with `fields` (all when `None`) and, for text, NDJSON or CSV
/// `timestamp_format`, checked as a Logpush job's `output_options` are.
fn output_format(
    dataset: Dataset,
    format: Format,
    fields: Option<Vec<String>>,
    timestamp_format: &str,
) -> anyhow::Result<OutputFormat> {
    let output_type = match format {
        Format::Parquet => "parquet",
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
    };
    let options = OutputOptions {
        field_names: fields,
        output_type: Some(output_type.to_owned()),
        // Parquet has its own timestamp type.
        timestamp_format: (format != Format::Parquet).then(|| timestamp_format.to_owned()),
        ..Default::default()
    };
    let format = options.validate_for(dataset).map_err(|e| {
        anyhow::anyhow!("{}", e.to_string().replace("output_options.field_names", "--fields"))
    })?;
    Ok(format)
}

/// Where the records go, a chunk at a time.
enum Sink<W: Write + Send> {
    Text(OutputFormat, W),
    Parquet(ParquetEncoder, parquet::arrow::ArrowWriter<W>),
}

impl<W: Write + Send> Sink<W> {
    fn new(format: OutputFormat, out: W) -> anyhow::Result<Self> {
        Ok(match format.output_type {
            portico_logpush::OutputType::Parquet => {
                let encoder =
                    ParquetEncoder::new(format.dataset, &format.fields, format.redact_log4j);
                let metadata = vec![parquet::file::metadata::KeyValue::new(
                    portico_logpush::encode::parquet::METADATA_DATASET.to_owned(),
                    format.dataset.name().to_owned(),
                )];
                let writer = encoder.stream(out, metadata)?;
                Sink::Parquet(encoder, writer)
            }
            _ => Sink::Text(format, out),
        })
    }

    fn write(&mut self, records: &[impl Row]) -> anyhow::Result<()> {
        match self {
            Sink::Text(format, out) => text::write(format, records, out)?,
            Sink::Parquet(encoder, writer) => writer.write(&encoder.record_batch(records)?)?,
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Text(_, mut out) => out.flush()?,
            Sink::Parquet(_, writer) => {
                writer.close()?;
            }
        }
        Ok(())
    }
}

fn wanted(record: &McpPortalLog, portal: Option<&str>) -> bool {
    portal.is_none_or(|p| record.portal_id == p)
}

async fn export(config: Config, args: ExportArgs) -> anyhow::Result<()> {
    let Some(dataset) = Dataset::from_name(&args.dataset) else {
        bail!("unknown dataset `{}`: the datasets are {}", args.dataset, Dataset::list());
    };
    if args.portal.is_some() && dataset != Dataset::McpPortalLogs {
        bail!("--portal selects calls: it applies to {DATASET} only");
    }
    if let (Some(since), Some(until)) = (args.since, args.until) {
        anyhow::ensure!(since < until, "--until must be later than --since");
    }
    let format = output_format(dataset, args.format, args.fields.clone(), &args.timestamp_format)?;
    let storage = Storage::open(&config).await?;
    let account: AccountState = portico_app::load(&*storage.log, ACCOUNT_STREAM).await?;
    let owner_id = account.account_id.map(|a| a.to_string()).unwrap_or_default();
    let head = storage.log.head_position().await?;
    let out: Box<dyn Write + Send> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        let file = File::create(&args.out)
            .with_context(|| format!("cannot create `{}`", args.out.display()))?;
        Box::new(BufWriter::new(file))
    };
    let mut sink = Sink::new(format, out)?;
    let mut subscription = Subscription::new(Arc::clone(&storage.log), 0);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut written = 0usize;
    // The log as it was when the export started: later calls are not part of it.
    while subscription.position() < head {
        for event in subscription.next_batch().await? {
            if event.position > head {
                break;
            }
            let in_period = args.since.is_none_or(|t| event.recorded_at >= t)
                && args.until.is_none_or(|t| event.recorded_at < t);
            if !in_period {
                continue;
            }
            let record = match dataset {
                Dataset::McpPortalLogs => McpPortalLog::from_recorded(&event)
                    .filter(|r| wanted(r, args.portal.as_deref()))
                    .map(Record::Call),
                Dataset::AuditLogs => {
                    AuditLogRecord::from_recorded(&event, &owner_id).map(Record::Audit)
                }
            };
            chunk.extend(record);
            if chunk.len() == CHUNK {
                fill_values(&mut chunk, &*storage.log).await.map_err(anyhow::Error::msg)?;
                sink.write(&chunk)?;
                written += chunk.len();
                chunk.clear();
            }
        }
    }
    fill_values(&mut chunk, &*storage.log).await.map_err(anyhow::Error::msg)?;
    sink.write(&chunk)?;
    written += chunk.len();
    sink.finish()?;
    eprintln!("{written} records of {dataset} written to {}", args.out.display());
    Ok(())
}

async fn tail(config: Config, args: TailArgs) -> anyhow::Result<()> {
    let format = output_format(Dataset::McpPortalLogs, Format::Ndjson, None, "rfc3339")?;
    let storage = Storage::open(&config).await?;
    let start = if args.since_seconds == 0 { storage.log.head_position().await? } else { 0 };
    let since = Utc::now() - chrono::TimeDelta::seconds(i64::try_from(args.since_seconds)?);
    let mut subscription =
        Subscription::new(storage.log, start).with_poll_interval(Duration::from_millis(250));
    loop {
        let event = subscription.next().await?;
        if event.recorded_at < since {
            continue;
        }
        let Some(record) = McpPortalLog::from_recorded(&event) else { continue };
        if wanted(&record, args.portal.as_deref()) {
            let mut out = std::io::stdout().lock();
            text::write(&format, std::slice::from_ref(&record), &mut out)?;
            out.flush()?;
        }
    }
}
