//! Opens the event log and the vault on the configured backend: the SQLite file in the data
//! directory by default, or PostgreSQL when `database_url` is a `postgres://` URL.

use std::sync::Arc;

use anyhow::Context;
use portico_core::EventLog;
use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::vault::postgres::PostgresVaultStore;
use portico_core::vault::sqlite::SqliteVaultStore;
use portico_core::vault::{KeySource, MASTER_KEY_ENV, MasterKey, Vault, VaultStore};

use crate::config::{Config, redact_url};

/// The log and the vault of one instance.
#[derive(Debug, Clone)]
pub struct Storage {
    pub log: Arc<dyn EventLog>,
    pub vault: Arc<Vault>,
    /// Human description of where the data is, for the start-up log line.
    pub description: String,
}

impl Storage {
    /// Opens (creating if needed) the data directory, the log and the vault.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create the data directory `{}`", config.data_dir.display())
        })?;
        let (log, store, description): (Arc<dyn EventLog>, Arc<dyn VaultStore>, String) =
            match config.database_url.as_deref() {
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    let log = PostgresLog::connect_url(
                        url,
                        PostgresOptions { durability: config.durability },
                    )
                    .await
                    .with_context(|| {
                        format!("cannot open the event log at `{}`", redact_url(url))
                    })?;
                    let store = PostgresVaultStore::open(log.pool().clone())
                        .await
                        .context("cannot open the vault in PostgreSQL")?;
                    (Arc::new(log), Arc::new(store), format!("postgresql {}", redact_url(url)))
                }
                Some(other) if !other.starts_with("sqlite:") => anyhow::bail!(
                    "unsupported database URL `{}`: use `postgres://...`, or leave it unset for the embedded SQLite",
                    redact_url(other)
                ),
                sqlite => {
                    let path = match sqlite.and_then(|u| u.strip_prefix("sqlite:")) {
                        Some(p) => std::path::PathBuf::from(p.trim_start_matches("//")),
                        None => config.sqlite_path(),
                    };
                    let log =
                        SqliteLog::open(&path, SqliteOptions { durability: config.durability })
                            .with_context(|| {
                                format!("cannot open the event log `{}`", path.display())
                            })?;
                    let store = SqliteVaultStore::open(path.clone()).await.with_context(|| {
                        format!("cannot open the vault in `{}`", path.display())
                    })?;
                    (Arc::new(log), Arc::new(store), format!("sqlite {}", path.display()))
                }
            };
        let (key, source) = MasterKey::load(
            config.master_key.as_deref(),
            std::env::var(MASTER_KEY_ENV).ok(),
            &config.data_dir,
        )?;
        if let KeySource::Generated { path } = &source {
            tracing::info!(path = %path.display(), "generated a new vault master key; back it up with the data");
        }
        let vault = Vault::open(key, source, store).await?;
        Ok(Storage { log, vault: Arc::new(vault), description })
    }
}
