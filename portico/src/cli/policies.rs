//! `portico policies ...`: policy-as-code. A policy directory holds one Cedar policy per
//! `*.cedar` file, whose id is the file stem, and an optional `policies.yaml` with each
//! policy's name, description and enabled flag, by id:
//!
//! ```yaml
//! engineering-uses-docs:
//!   name: Engineering may use Docs     # default: the id
//!   description: Example 1             # default: none
//!   enabled: true                      # default: true
//! ```
//!
//! `validate` checks a directory offline, `push` replaces the account's whole set with it
//! through the admin API (one event, all or nothing), `pull` writes the account's set into a
//! directory, and `test` checks a YAML file of cases against a directory (see [`cases`]).

pub mod cases;
pub mod evaluate;
pub mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use portico_core::domain::ids::PolicyId;
use portico_core::domain::policy::PolicyRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The metadata file of a policy directory.
pub const METADATA_FILE: &str = "policies.yaml";

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Check every `*.cedar` file of DIR against the schema, offline.
    Validate { dir: PathBuf },
    /// Replace the account's policy set with DIR's, atomically: through a running server's
    /// admin API, or with `--local` straight into this instance's storage (the configured data
    /// directory or database) through the same application layer.
    Push {
        dir: PathBuf,
        /// Write into the storage named by `--data-dir`/`--database-url` instead of calling an
        /// admin API.
        #[arg(long, conflicts_with_all = ["url", "account_id", "token"])]
        local: bool,
        #[command(flatten)]
        api: Option<ApiArgs>,
    },
    /// Write the account's policy set into DIR (`<id>.cedar` and `policies.yaml`).
    Pull {
        dir: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Check the cases of a YAML FILE against the policies of a directory.
    Test {
        file: PathBuf,
        /// The policy directory [default: the `policies` directory next to FILE].
        #[arg(long)]
        policies: Option<PathBuf>,
    },
}

/// Where the admin API is. Only `http://` URLs are supported (see [`http`]).
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The Portico base URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "PORTICO_API_URL")]
    pub url: String,
    #[arg(long, env = "PORTICO_ACCOUNT_ID")]
    pub account_id: String,
    /// An API token (the `edit` scope for `push`).
    #[arg(long, env = "PORTICO_API_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// Runs a `policies` command; `Ok(false)` when `validate` or `test` found failures.
pub async fn run(command: PoliciesCommand) -> anyhow::Result<bool> {
    match command {
        PoliciesCommand::Validate { dir } => {
            let report = validate_dir(&dir)?;
            print!("{report}");
            Ok(report.ok())
        }
        PoliciesCommand::Push { dir, api, .. } => {
            let api = api.context(
                "`policies push` needs `--url`, `--account-id` and `--token` (or `--local`)",
            )?;
            let count = push(&dir, api).await?;
            println!("pushed {count} policies from {}", dir.display());
            Ok(true)
        }
        PoliciesCommand::Pull { dir, api } => {
            let count = pull(&dir, api).await?;
            println!("pulled {count} policies into {}", dir.display());
            Ok(true)
        }
        PoliciesCommand::Test { file, policies } => {
            let dir = match policies {
                Some(dir) => dir,
                None => file.parent().unwrap_or(Path::new(".")).join("policies"),
            };
            let report = cases::run_file(&file, &dir)?;
            print!("{report}");
            Ok(report.ok())
        }
    }
}

/// A policy's metadata in `policies.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Reads a policy directory, by id. Nothing is validated but the ids and the metadata file.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<PolicyRecord>> {
    let metadata_path = dir.join(METADATA_FILE);
    let mut metadata: BTreeMap<String, Metadata> = if metadata_path.exists() {
        let text = std::fs::read_to_string(&metadata_path)
            .with_context(|| format!("cannot read {}", metadata_path.display()))?;
        serde_norway::from_str::<Option<BTreeMap<String, Metadata>>>(&text)
            .with_context(|| format!("invalid {}", metadata_path.display()))?
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "cedar") && path.is_file())
        .collect();
    files.sort();
    let mut records = Vec::with_capacity(files.len());
    for path in files {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let id = PolicyId::parse(stem.clone()).map_err(|e| {
            anyhow::anyhow!("{}: the file name is not a policy id: {e}", path.display())
        })?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let meta = metadata.remove(&stem).unwrap_or_default();
        records.push(PolicyRecord {
            id,
            name: meta.name.unwrap_or(stem),
            description: meta.description,
            policy: text,
            enabled: meta.enabled.unwrap_or(true),
        });
    }
    if let Some(orphan) = metadata.keys().next() {
        bail!("{}: `{orphan}` has no file `{orphan}.cedar`", metadata_path.display());
    }
    Ok(records)
}

/// What `validate` found: one line per policy.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub failures: usize,
}

impl Report {
    /// Whether nothing failed.
    pub fn ok(&self) -> bool {
        self.failures == 0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        let total = self.lines.len();
        writeln!(f, "{} of {total} passed", total - self.failures)
    }
}

/// Validates every policy of `dir` strictly against the schema.
pub fn validate_dir(dir: &Path) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for record in read_dir(dir)? {
        match portico_policies::validate_policy(record.id.as_str(), &record.policy) {
            Ok(_) => report.lines.push(format!("✓ {}", record.id)),
            Err(rejection) => {
                report.failures += 1;
                report.lines.push(format!("✗ {}.cedar: {rejection}", record.id));
            }
        }
    }
    Ok(report)
}

/// Validates `dir` and replaces the account's policy set with it; the number of policies.
pub async fn push(dir: &Path, api: ApiArgs) -> anyhow::Result<usize> {
    let records = checked_dir(dir)?;
    let count = records.len();
    let body = json!({ "policies": records });
    let path = format!("/client/v4/accounts/{}/cedar/policies", api.account_id);
    http::call(api, "PUT", path, Some(body)).await?;
    Ok(count)
}

/// The policies of `dir`, once every one of them validates.
pub fn checked_dir(dir: &Path) -> anyhow::Result<Vec<PolicyRecord>> {
    let report = validate_dir(dir)?;
    if !report.ok() {
        bail!("{report}nothing was pushed");
    }
    read_dir(dir)
}

/// Writes the account's policies into `dir`, one `<id>.cedar` each and `policies.yaml`.
pub async fn pull(dir: &Path, api: ApiArgs) -> anyhow::Result<usize> {
    let mut records: Vec<PolicyRecord> = Vec::new();
    for page in 1.. {
        let path = format!(
            "/client/v4/accounts/{}/cedar/policies?page={page}&per_page=1000",
            api.account_id
        );
        let body = http::call(api.clone(), "GET", path, None).await?;
        let items: Vec<PolicyRecord> = serde_json::from_value(body["result"].clone())
            .context("the API answered an unexpected policy list")?;
        let done = items.len() < 1000;
        records.extend(items);
        if done {
            break;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut metadata = BTreeMap::new();
    for record in &records {
        let path = dir.join(format!("{}.cedar", record.id));
        let mut text = record.policy.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        let meta = Metadata {
            name: Some(record.name.clone()).filter(|n| n != record.id.as_str()),
            description: record.description.clone(),
            enabled: Some(record.enabled).filter(|e| !e),
        };
        if meta != Metadata::default() {
            metadata.insert(record.id.to_string(), meta);
        }
    }
    let yaml = serde_norway::to_string(&metadata).context("cannot write the metadata")?;
    let path = dir.join(METADATA_FILE);
    std::fs::write(&path, yaml).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(records.len())
}

/// The error of an API answer, for the operator.
fn api_error(status: u16, body: &Value) -> anyhow::Error {
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let messages: Vec<String> = errors
        .iter()
        .map(|e| {
            let mut m = e["message"].as_str().unwrap_or("").to_owned();
            if let Some(pointer) = e["source"]["pointer"].as_str() {
                m.push_str(&format!(" (at {pointer})"));
            }
            m
        })
        .collect();
    if messages.is_empty() {
        anyhow::anyhow!("the API answered {status}: {body}")
    } else {
        anyhow::anyhow!("the API answered {status}: {}", messages.join("; "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn push_takes_the_api_from_flags() {
        let cli = Cli::try_parse_from([
            "portico",
            "policies",
            "push",
            "policies",
            "--url",
            "http://127.0.0.1:8080",
            "--account-id",
            "abc",
            "--token",
            "t",
        ])
        .unwrap();
        let Command::Policies(PoliciesCommand::Push { dir, api: Some(api), local: false }) =
            cli.command
        else {
            panic!("not a push to an API: {:?}", cli.command)
        };
        assert_eq!(dir, PathBuf::from("policies"));
        assert_eq!((api.url.as_str(), api.account_id.as_str()), ("http://127.0.0.1:8080", "abc"));
        let local = Cli::try_parse_from(["portico", "policies", "push", "policies", "--local"]);
        assert!(matches!(
            local.unwrap().command,
            Command::Policies(PoliciesCommand::Push { api: None, local: true, .. })
        ));
        let both = ["portico", "policies", "push", "p", "--local", "--url", "http://x"];
        assert!(Cli::try_parse_from(both).is_err(), "--local and --url conflict");
        let test = Cli::try_parse_from(["portico", "policies", "test", "cases.yaml"]).unwrap();
        assert!(matches!(
            test.command,
            Command::Policies(PoliciesCommand::Test { policies: None, .. })
        ));
    }

    #[test]
    fn a_directory_reads_ids_from_file_stems_and_metadata_from_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.cedar"), "permit(principal, action, resource);").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.path().join(METADATA_FILE), "a: {name: A, enabled: false}\n").unwrap();
        let records = read_dir(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].id.as_str(), records[0].name.as_str()), ("a", "A"));
        assert!(!records[0].enabled);
        std::fs::write(dir.path().join(METADATA_FILE), "b: {name: B}\n").unwrap();
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("`b` has no file `b.cedar`"), "{err}");
        std::fs::remove_file(dir.path().join(METADATA_FILE)).unwrap();
        std::fs::write(dir.path().join("Bad_Name.cedar"), "").unwrap();
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a policy id"), "{err}");
    }
}
