//! Test support (the `testing` feature), shared by the integration tests of this crate and the
//! crates above it.
//!
//! PostgreSQL tests need `PORTICO_TEST_POSTGRES_URL` (`scripts/test` starts a throwaway cluster
//! and sets it); each test gets a schema of its own in that database. Without the variable they
//! fail, naming it, unless `PORTICO_SKIP_POSTGRES=1` says to skip them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// A fresh schema in the test database (the connection configuration selects it), or `None`
/// when PostgreSQL tests are skipped.
pub async fn postgres_config() -> Option<(tokio_postgres::Config, String)> {
    let url = match std::env::var("PORTICO_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) if std::env::var("PORTICO_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("skipped: PORTICO_SKIP_POSTGRES=1");
            return None;
        }
        Err(_) => panic!(
            "PORTICO_TEST_POSTGRES_URL is not set: run `scripts/test`, which starts PostgreSQL, \
             or set PORTICO_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
        ),
    };
    let mut config: tokio_postgres::Config = url.parse().expect("PORTICO_TEST_POSTGRES_URL");
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create schema");
    config.options(format!("-c search_path={schema}"));
    Some((config, schema))
}
