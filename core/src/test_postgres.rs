//! A throwaway PostgreSQL schema for the unit tests of this crate's PostgreSQL stores.
//!
//! The server is `PORTICO_TEST_POSTGRES_URL` (`scripts/test` starts one and sets it). Without
//! the variable a test fails, naming it, unless `PORTICO_SKIP_POSTGRES=1` says to skip it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

/// The server to test against, or `None` when PostgreSQL tests are explicitly skipped.
pub(crate) fn test_url() -> Option<String> {
    if let Ok(url) = std::env::var("PORTICO_TEST_POSTGRES_URL") {
        return Some(url);
    }
    if std::env::var("PORTICO_SKIP_POSTGRES").as_deref() == Ok("1") {
        eprintln!("skipped: PostgreSQL test (PORTICO_SKIP_POSTGRES=1)");
        return None;
    }
    panic!(
        "PORTICO_TEST_POSTGRES_URL is not set: point it at a PostgreSQL server \
         (e.g. postgres://postgres@127.0.0.1:5434/postgres) or set PORTICO_SKIP_POSTGRES=1 \
         to skip the PostgreSQL tests"
    );
}

/// A fresh schema on the test server, selected by its pool's `search_path`; dropped by
/// [`TestSchema::drop_schema`].
pub(crate) struct TestSchema {
    pub(crate) admin: tokio_postgres::Client,
    pub(crate) name: String,
    pub(crate) pool: Pool,
}

impl TestSchema {
    /// A new schema on `url`, named `{prefix}_{random}`.
    pub(crate) async fn create(url: &str, prefix: &str) -> TestSchema {
        let (admin, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to PORTICO_TEST_POSTGRES_URL: {e}"));
        tokio::spawn(connection);
        let mut suffix = [0u8; 8];
        getrandom::getrandom(&mut suffix).unwrap();
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{prefix}_{suffix}");
        admin.batch_execute(&format!("CREATE SCHEMA {name}")).await.unwrap();
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.options(format!("-csearch_path={name}"));
        let manager = deadpool_postgres::Manager::new(config, NoTls);
        let pool = Pool::builder(manager).max_size(8).build().unwrap();
        TestSchema { admin, name, pool }
    }

    pub(crate) async fn drop_schema(self) {
        self.pool.close();
        self.admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await.unwrap();
    }
}
