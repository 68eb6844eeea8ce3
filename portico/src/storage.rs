//! Opens the event log and the vault on the configured backend: the SQLite file in the data
//! directory by default, or PostgreSQL when `database_url` is a `postgres://` URL.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use portico_core::lease::MAX_LEASE_NAME_LEN;
use portico_core::lease::postgres::PostgresLeases;
use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use portico_core::log::sqlite::{SqliteLog, SqliteOptions};
use portico_core::vault::postgres::PostgresVaultStore;
use portico_core::vault::sqlite::SqliteVaultStore;
use portico_core::vault::{KeySource, MASTER_KEY_ENV, MasterKey, Vault, VaultStore};
use portico_core::{EventLog, Leases, LocalLeases};

use crate::config::{Config, redact_url};

/// The log and the vault of one instance.
#[derive(Debug, Clone)]
pub struct Storage {
    pub log: Arc<dyn EventLog>,
    pub vault: Arc<Vault>,
    /// Which instance runs which background work: in the database with PostgreSQL, in memory
    /// with the embedded SQLite (one process).
    pub leases: Arc<dyn Leases>,
    /// This instance's name in the leases: kept in the data directory, so that a restarted
    /// instance takes its own leases back without waiting for them to expire.
    pub instance_id: String,
    /// Human description of where the data is, for the start-up log line.
    pub description: String,
}

/// What one backend opens: the log, the vault's store, the leases and their description.
type Backend = (Arc<dyn EventLog>, Arc<dyn VaultStore>, Arc<dyn Leases>, String);

impl Storage {
    /// Opens (creating if needed) the data directory, the log and the vault.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create the data directory `{}`", config.data_dir.display())
        })?;
        let (log, store, leases, description): Backend = match config.database_url.as_deref() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let log = PostgresLog::connect_url(
                    url,
                    PostgresOptions { durability: config.durability },
                )
                .await
                .with_context(|| format!("cannot open the event log at `{}`", redact_url(url)))?;
                let store = PostgresVaultStore::open(log.pool().clone())
                    .await
                    .context("cannot open the vault in PostgreSQL")?;
                let leases = PostgresLeases::open(log.pool().clone())
                    .await
                    .context("cannot open the leases in PostgreSQL")?;
                let description = format!("postgresql {}", redact_url(url));
                (Arc::new(log), Arc::new(store), Arc::new(leases), description)
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
                let log = SqliteLog::open(&path, SqliteOptions { durability: config.durability })
                    .with_context(|| {
                    format!("cannot open the event log `{}`", path.display())
                })?;
                let store = SqliteVaultStore::open(path.clone())
                    .await
                    .with_context(|| format!("cannot open the vault in `{}`", path.display()))?;
                let description = format!("sqlite {}", path.display());
                (Arc::new(log), Arc::new(store), Arc::new(LocalLeases::new()), description)
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
        let instance_id = instance_id(&config.data_dir)?;
        Ok(Storage { log, vault: Arc::new(vault), leases, instance_id, description })
    }
}

/// The file of the data directory that names the instance.
pub const INSTANCE_ID_FILE: &str = "instance-id";

/// The id of the instance that uses `data_dir`, created the first time: the host name and a
/// random suffix. Each instance sharing a PostgreSQL database must have its own data directory.
fn instance_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(INSTANCE_ID_FILE);
    let read = |path: &Path| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the instance id `{}`", path.display()))?;
        let id = text.trim();
        let valid = !id.is_empty()
            && id.len() <= MAX_LEASE_NAME_LEN
            && id.bytes().all(|b| b.is_ascii_graphic());
        anyhow::ensure!(
            valid,
            "`{}` does not hold an instance id (1 to {MAX_LEASE_NAME_LEN} printable ASCII characters); delete it and a new one is made",
            path.display()
        );
        Ok(id.to_owned())
    };
    if path.exists() {
        return read(&path);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_graphic()).take(64).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "portico".to_owned());
    let mut suffix = [0u8; 6];
    getrandom::getrandom(&mut suffix).context("no randomness for the instance id")?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let id = format!("{host}-{suffix}");
    let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&path);
    match created {
        Ok(mut file) => {
            use std::io::Write;
            file.write_all(format!("{id}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the instance id `{}`", path.display()))?;
            Ok(id)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => {
            Err(e).with_context(|| format!("cannot create the instance id `{}`", path.display()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = instance_id(dir.path()).unwrap();
        assert_eq!(instance_id(dir.path()).unwrap(), first);
        assert!(first.len() > 13 && first.bytes().all(|b| b.is_ascii_graphic()), "{first}");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(instance_id(other.path()).unwrap(), first);
    }

    #[test]
    fn a_damaged_instance_id_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(INSTANCE_ID_FILE), "two words\n").unwrap();
        let error = instance_id(dir.path()).unwrap_err().to_string();
        assert!(error.contains("delete it"), "{error}");
    }
}
