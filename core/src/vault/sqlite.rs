//! The vault's rows in SQLite: the table `vault_secrets` in the same database file as the
//! SQLite event log, on a connection of its own.
//!
//! Every call runs on the blocking thread pool. Each operation is a single statement, so no
//! transaction spans two calls; the primary key makes a racing insert of a taken version a
//! no-op that [`super::Vault::put`] retries.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SecretRef, StoredSecret, VaultError, VaultStore, stored_version, unix_now};

/// How long a statement waits for another connection's write lock (the event log's, say).
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vault_secrets (
    owner      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    nonce      BLOB    NOT NULL CHECK (length(nonce) = 12),
    ciphertext BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner, kind, version)
) STRICT;
";

/// A [`VaultStore`] in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteVaultStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteVaultStore {
    /// Opens (creating if needed) the database file at `path`, switches it to WAL and creates
    /// the `vault_secrets` table if it does not exist. Pass the event log's database file.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, VaultError> {
        let path = path.into();
        let opened = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_connection(&opened))
            .await
            .map_err(VaultError::storage)??;
        Ok(SqliteVaultStore { path, conn: Arc::new(Mutex::new(conn)) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking thread pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a statement half-done: every
            // operation is one statement, so the connection is still usable.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(VaultError::storage)?
        .map_err(VaultError::storage)
    }
}

fn open_connection(path: &Path) -> Result<Connection, VaultError> {
    let conn = Connection::open(path).map_err(VaultError::storage)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(VaultError::storage)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(VaultError::storage)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), journal_mode = %mode, "vault database is not in WAL mode");
    }
    conn.execute_batch(SCHEMA).map_err(VaultError::storage)?;
    Ok(conn)
}

#[async_trait]
impl VaultStore for SqliteVaultStore {
    async fn max_version(&self, owner: &str, kind: &str) -> Result<Option<u32>, VaultError> {
        let (owner, kind) = (owner.to_owned(), kind.to_owned());
        let (o, k) = (owner.clone(), kind.clone());
        let max: Option<i64> = self
            .with_conn(move |conn| {
                conn.query_row(
                    "SELECT MAX(version) FROM vault_secrets WHERE owner = ?1 AND kind = ?2",
                    params![o, k],
                    |row| row.get(0),
                )
            })
            .await?;
        max.map(|v| stored_version(&owner, &kind, v)).transpose()
    }

    async fn insert(&self, record: StoredSecret) -> Result<bool, VaultError> {
        let inserted = self
            .with_conn(move |conn| {
                conn.execute(
                    "INSERT INTO vault_secrets (owner, kind, version, nonce, ciphertext, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (owner, kind, version) DO NOTHING",
                    params![
                        record.secret.owner,
                        record.secret.kind,
                        i64::from(record.secret.version),
                        record.nonce.as_slice(),
                        record.ciphertext,
                        unix_now(),
                    ],
                )
            })
            .await?;
        Ok(inserted == 1)
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Option<StoredSecret>, VaultError> {
        let name = secret.clone();
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .with_conn(move |conn| {
                conn.query_row(
                    "SELECT nonce, ciphertext FROM vault_secrets
                     WHERE owner = ?1 AND kind = ?2 AND version = ?3",
                    params![name.owner, name.kind, i64::from(name.version)],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
            })
            .await?;
        row.map(|(nonce, ciphertext)| StoredSecret::from_row(secret, &nonce, ciphertext))
            .transpose()
    }

    async fn delete(&self, secret: &SecretRef) -> Result<bool, VaultError> {
        let name = secret.clone();
        let deleted = self
            .with_conn(move |conn| {
                conn.execute(
                    "DELETE FROM vault_secrets WHERE owner = ?1 AND kind = ?2 AND version = ?3",
                    params![name.owner, name.kind, i64::from(name.version)],
                )
            })
            .await?;
        Ok(deleted > 0)
    }

    async fn delete_owner(&self, owner: &str) -> Result<u64, VaultError> {
        let owner = owner.to_owned();
        let deleted = self
            .with_conn(move |conn| {
                conn.execute("DELETE FROM vault_secrets WHERE owner = ?1", params![owner])
            })
            .await?;
        Ok(deleted as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::vault::conformance;
    use crate::vault::{KeySource, MasterKey, SecretString, Vault};

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn VaultStore> {
        Arc::new(SqliteVaultStore::open(dir.path().join("portico.db")).await.unwrap())
    }

    #[tokio::test]
    async fn conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run_all(|| store(&dir)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_first_opens_agree() {
        let dir = tempfile::tempdir().unwrap();
        conformance::racing_first_opens(|| store(&dir)).await;
    }

    #[tokio::test]
    async fn database_is_wal_with_a_strict_table() {
        let dir = tempfile::tempdir().unwrap();
        let _store = store(&dir).await;
        let conn = Connection::open(dir.path().join("portico.db")).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let strict: i64 = conn
            .query_row(
                "SELECT strict FROM pragma_table_list WHERE name = 'vault_secrets'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(strict, 1);
    }

    #[tokio::test]
    async fn tampered_row_does_not_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let vault =
            Vault::open(MasterKey::from_bytes([1; 32]), KeySource::Config, store(&dir).await)
                .await
                .unwrap();
        let secret = vault.put("server:x", "auth_credentials", &"Bearer abc".into()).await.unwrap();
        let conn = Connection::open(dir.path().join("portico.db")).unwrap();
        let mut ciphertext: Vec<u8> = conn
            .query_row("SELECT ciphertext FROM vault_secrets WHERE owner = 'server:x'", [], |r| {
                r.get(0)
            })
            .unwrap();
        ciphertext[3] ^= 0x20;
        conn.execute(
            "UPDATE vault_secrets SET ciphertext = ?1 WHERE owner = 'server:x'",
            [&ciphertext],
        )
        .unwrap();
        let err = vault.get(&secret).await.unwrap_err();
        assert!(matches!(err, VaultError::Decrypt { version: 1, .. }), "{err:?}");
        assert!(!err.to_string().contains("Bearer abc"));
    }

    #[tokio::test]
    async fn short_nonce_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteVaultStore::open(dir.path().join("portico.db")).await.unwrap();
        let err = StoredSecret::from_row(&SecretRef::new("server:x", "k", 1), &[0u8; 5], vec![])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "stored secret `k` v1 of `server:x` is malformed: the nonce is 5 bytes instead of 12"
        );
        // The table refuses such a row in the first place.
        let refused = sqlite
            .with_conn(|conn| {
                conn.execute(
                    "INSERT INTO vault_secrets VALUES ('server:x', 'k', 1, x'00', x'00', 0)",
                    [],
                )
            })
            .await;
        assert!(refused.is_err());
    }

    #[tokio::test]
    async fn database_files_hold_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let vault =
            Vault::open(MasterKey::from_bytes([1; 32]), KeySource::Config, store(&dir).await)
                .await
                .unwrap();
        let plaintext = "sk-live-PLAINTEXT-MARKER-0123456789";
        for kind in ["auth_credentials", "client_secret"] {
            vault.put("server:x", kind, &SecretString::from(plaintext)).await.unwrap();
        }
        assert_eq!(
            vault
                .get(&SecretRef::new("server:x", "client_secret", 1))
                .await
                .unwrap()
                .expose_secret(),
            plaintext
        );
        // The owner is stored in clear, so finding it shows the search looks at the right bytes.
        let contains =
            |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        let mut owner_seen = false;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            owner_seen |= contains(&bytes, b"server:x");
            assert!(!contains(&bytes, plaintext.as_bytes()));
        }
        assert!(owner_seen);
    }
}
