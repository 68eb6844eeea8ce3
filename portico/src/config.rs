//! Configuration: command-line flags, `PORTICO_*` environment variables and an optional TOML
//! file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portico_core::Durability;
use serde::Deserialize;

/// The default address of `portico serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The JavaScript engine of code mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum EngineChoice {
    /// workerd when it is found (`PORTICO_WORKERD`, or `workerd` on the PATH), else QuickJS.
    #[default]
    Auto,
    /// V8 isolates in supervised workerd processes; start-up fails without workerd.
    Workerd,
    /// Embedded QuickJS, in process.
    Quickjs,
}

/// Settings that may come from the TOML file (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub account_id: Option<String>,
    pub durability: Option<String>,
    pub log_format: Option<LogFormat>,
    pub master_key: Option<String>,
    pub allow_private_upstreams: Option<bool>,
    pub upstream_connect_timeout_secs: Option<u64>,
    pub upstream_call_timeout_secs: Option<u64>,
    pub sync_interval_secs: Option<u64>,
    pub call_log_retention_days: Option<u64>,
    pub logpush_interval_secs: Option<u64>,
    pub logpush_max_retry_wait_secs: Option<u64>,
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    pub codemode_engine: Option<EngineChoice>,
    pub codemode_timeout_secs: Option<u64>,
    pub codemode_memory_mib: Option<u64>,
}

impl FileConfig {
    /// Reads a TOML file; a missing or malformed file is an error that names it.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file `{}`: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config file `{}` is invalid: {e}", path.display()))
    }
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: the SQLite file in the data directory.
    pub database_url: Option<String>,
    /// The externally visible base URL (`https://portico.example.com`).
    pub public_url: Option<String>,
    /// The account id to use on first start (generated when absent).
    pub account_id: Option<String>,
    pub durability: Durability,
    pub log_format: LogFormat,
    /// The vault master key from the configuration file (never logged).
    pub master_key: Option<String>,
    /// Allow upstream URLs on loopback, private, link-local and metadata addresses.
    pub allow_private_upstreams: bool,
    /// Upstream connect timeout (default 10 s).
    pub upstream_connect_timeout: std::time::Duration,
    /// Upstream call timeout (default 60 s).
    pub upstream_call_timeout: std::time::Duration,
    /// How often every server is synced again (default 2 h).
    pub sync_interval: std::time::Duration,
    /// Days of calls the call log keeps (default 30; 0: all).
    pub call_log_retention_days: u64,
    /// The Logpush worker's settings.
    pub logpush: portico_app::logpush_jobs::worker::LogpushConfig,
    /// The SMTP server one-time PINs are mailed through (`None`: they are logged). May hold a
    /// password: never logged.
    pub smtp_url: Option<String>,
    /// The sender of those mails.
    pub smtp_from: String,
    /// Code mode's engine.
    pub codemode_engine: EngineChoice,
    /// What one code-mode execution may use.
    pub codemode_limits: portico_codemode::Limits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("public_url", &self.public_url)
            .field("account_id", &self.account_id)
            .field("durability", &self.durability)
            .field("log_format", &self.log_format)
            .field("master_key", &self.master_key.as_ref().map(|_| "[redacted]"))
            .field("allow_private_upstreams", &self.allow_private_upstreams)
            .field("upstream_connect_timeout", &self.upstream_connect_timeout)
            .field("upstream_call_timeout", &self.upstream_call_timeout)
            .field("sync_interval", &self.sync_interval)
            .field("call_log_retention_days", &self.call_log_retention_days)
            .field("logpush", &self.logpush)
            .field("codemode_engine", &self.codemode_engine)
            .field("codemode_limits", &self.codemode_limits)
            .finish()
    }
}

/// A database URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Config {
    /// The SQLite database file in the data directory.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("portico.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@db:5432/p"), "postgres://u:***@db:5432/p");
        assert_eq!(redact_url("postgres://u@db/p"), "postgres://u@db/p");
        assert_eq!(redact_url("postgres://db/p"), "postgres://db/p");
    }
}
