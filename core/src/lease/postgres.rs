//! Leases in PostgreSQL: the table `portico_leases` in the database (and schema, by
//! `search_path`) of the PostgreSQL event log, shared by every instance on it.
//!
//! Each operation is one statement. Taking or renewing is an `INSERT ... ON CONFLICT DO UPDATE
//! ... WHERE` that succeeds only if the row is absent, expired or the caller's own; PostgreSQL
//! locks the conflicting row, so of several instances racing for a lease exactly one gets it.
//! Expiries are read and written with the database's clock, never an instance's.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::{LeaseError, Leases, validate};
use crate::log::postgres::create_beside_log;

/// The advisory lock taken while creating the table: the bytes of `"ptcleases"` truncated to
/// eight.
const SCHEMA_LOCK: i64 = 0x7074_636c_6561_7365;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS portico_leases (
    name       TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
";

const HOLD: &str = "
INSERT INTO portico_leases AS l (name, holder, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
RETURNING holder
";

/// [`Leases`] in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresLeases {
    pool: Pool,
}

impl fmt::Debug for PostgresLeases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLeases").finish_non_exhaustive()
    }
}

impl PostgresLeases {
    /// Uses `pool` (the event log's) and creates the `portico_leases` table in its schema if it
    /// does not exist.
    pub async fn open(pool: Pool) -> Result<Self, LeaseError> {
        create_beside_log(&pool, SCHEMA_LOCK, SCHEMA).await.map_err(LeaseError::Storage)?;
        Ok(PostgresLeases { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, LeaseError> {
        self.pool.get().await.map_err(LeaseError::storage)
    }
}

#[async_trait]
impl Leases for PostgresLeases {
    async fn hold(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, LeaseError> {
        validate(name, holder, ttl)?;
        let rows = self
            .client()
            .await?
            .query(HOLD, &[&name, &holder, &ttl.as_secs_f64()])
            .await
            .map_err(LeaseError::storage)?;
        Ok(!rows.is_empty())
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), LeaseError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM portico_leases WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await
            .map_err(LeaseError::storage)?;
        Ok(())
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, LeaseError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT holder FROM portico_leases WHERE name = $1 AND expires_at > clock_timestamp()",
                &[&name],
            )
            .await
            .map_err(LeaseError::storage)?;
        row.map(|r| r.try_get(0)).transpose().map_err(LeaseError::storage)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::lease::conformance;
    use crate::test_postgres::{TestSchema, test_url};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let Some(url) = test_url() else { return };
        let schema = TestSchema::create(&url, "lease_test").await;
        let leases = PostgresLeases::open(schema.pool.clone()).await.unwrap();
        conformance::run_all(Arc::new(leases)).await;
        schema.drop_schema().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_opening_at_once_share_one_table() {
        let Some(url) = test_url() else { return };
        let schema = TestSchema::create(&url, "lease_test").await;
        let opens: Vec<_> =
            (0..4).map(|_| tokio::spawn(PostgresLeases::open(schema.pool.clone()))).collect();
        let mut stores = Vec::new();
        for open in opens {
            stores.push(open.await.unwrap().unwrap());
        }
        assert!(stores[0].hold("job:1", "a", Duration::from_secs(30)).await.unwrap());
        assert!(!stores[3].hold("job:1", "b", Duration::from_secs(30)).await.unwrap());
        schema.drop_schema().await;
    }
}
