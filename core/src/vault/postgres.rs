//! The vault's rows in PostgreSQL: the table `vault_secrets` in the database (and schema, by
//! `search_path`) of the PostgreSQL event log, reached through the pool the caller passes in.
//!
//! Several Portico instances may open the vault at once: the table is created under a
//! transaction-scoped advisory lock, and every write is a single statement whose conflicts the
//! primary key settles.

use std::fmt;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::log::postgres::create_beside_log;

use super::{SecretRef, StoredSecret, VaultError, VaultStore, stored_version, unix_now};

/// The advisory lock taken while creating the table: the bytes of `"ptcvault"`.
const SCHEMA_LOCK: i64 = 0x7074_6376_6175_6c74;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vault_secrets (
    owner      TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    version    BIGINT NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    nonce      BYTEA  NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, kind, version)
);
";

/// A [`VaultStore`] in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresVaultStore {
    pool: Pool,
}

impl fmt::Debug for PostgresVaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresVaultStore")
            .field("pool_size", &status.size)
            .field("pool_available", &status.available)
            .finish()
    }
}

impl PostgresVaultStore {
    /// Uses `pool` (the event log's pool, typically) and creates the `vault_secrets` table in
    /// its schema if it does not exist.
    pub async fn open(pool: Pool) -> Result<Self, VaultError> {
        create_beside_log(&pool, SCHEMA_LOCK, SCHEMA).await.map_err(VaultError::Storage)?;
        Ok(PostgresVaultStore { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, VaultError> {
        self.pool.get().await.map_err(VaultError::storage)
    }
}

#[async_trait]
impl VaultStore for PostgresVaultStore {
    async fn max_version(&self, owner: &str, kind: &str) -> Result<Option<u32>, VaultError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MAX(version) FROM vault_secrets WHERE owner = $1 AND kind = $2",
                &[&owner, &kind],
            )
            .await
            .map_err(VaultError::storage)?;
        let max: Option<i64> = row.try_get(0).map_err(VaultError::storage)?;
        max.map(|v| stored_version(owner, kind, v)).transpose()
    }

    async fn insert(&self, record: StoredSecret) -> Result<bool, VaultError> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO vault_secrets (owner, kind, version, nonce, ciphertext, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (owner, kind, version) DO NOTHING",
                &[
                    &record.secret.owner,
                    &record.secret.kind,
                    &i64::from(record.secret.version),
                    &record.nonce.as_slice(),
                    &record.ciphertext,
                    &unix_now(),
                ],
            )
            .await
            .map_err(VaultError::storage)?;
        Ok(inserted == 1)
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Option<StoredSecret>, VaultError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT nonce, ciphertext FROM vault_secrets
                 WHERE owner = $1 AND kind = $2 AND version = $3",
                &[&secret.owner, &secret.kind, &i64::from(secret.version)],
            )
            .await
            .map_err(VaultError::storage)?;
        let Some(row) = row else { return Ok(None) };
        let nonce: Vec<u8> = row.try_get(0).map_err(VaultError::storage)?;
        let ciphertext: Vec<u8> = row.try_get(1).map_err(VaultError::storage)?;
        StoredSecret::from_row(secret, &nonce, ciphertext).map(Some)
    }

    async fn delete(&self, secret: &SecretRef) -> Result<bool, VaultError> {
        let client = self.client().await?;
        let deleted = client
            .execute(
                "DELETE FROM vault_secrets WHERE owner = $1 AND kind = $2 AND version = $3",
                &[&secret.owner, &secret.kind, &i64::from(secret.version)],
            )
            .await
            .map_err(VaultError::storage)?;
        Ok(deleted > 0)
    }

    async fn delete_owner(&self, owner: &str) -> Result<u64, VaultError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM vault_secrets WHERE owner = $1", &[&owner])
            .await
            .map_err(VaultError::storage)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::test_postgres::{TestSchema, test_url};
    use crate::vault::conformance;
    use crate::vault::{KeySource, MasterKey, Vault};

    async fn vault_schema(url: &str) -> TestSchema {
        TestSchema::create(url, "vault_test").await
    }

    async fn store(schema: &TestSchema) -> Arc<dyn VaultStore> {
        Arc::new(PostgresVaultStore::open(schema.pool.clone()).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let Some(url) = test_url() else { return };
        let schema = vault_schema(&url).await;
        conformance::run_all(|| store(&schema)).await;
        schema.drop_schema().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_first_opens_agree() {
        let Some(url) = test_url() else { return };
        let schema = vault_schema(&url).await;
        conformance::racing_first_opens(|| store(&schema)).await;
        schema.drop_schema().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tampered_row_does_not_decrypt() {
        let Some(url) = test_url() else { return };
        let schema = vault_schema(&url).await;
        let vault =
            Vault::open(MasterKey::from_bytes([1; 32]), KeySource::Config, store(&schema).await)
                .await
                .unwrap();
        let secret = vault.put("server:x", "auth_credentials", &"Bearer abc".into()).await.unwrap();
        let table = format!("{}.vault_secrets", schema.name);
        let flipped = schema
            .admin
            .execute(
                &format!(
                    "UPDATE {table} SET ciphertext = set_byte(ciphertext, 2, get_byte(ciphertext, 2) # 1)
                     WHERE owner = 'server:x'"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(flipped, 1);
        let err = vault.get(&secret).await.unwrap_err();
        assert!(matches!(err, VaultError::Decrypt { version: 1, .. }), "{err:?}");
        drop(vault);
        schema.drop_schema().await;
    }
}
