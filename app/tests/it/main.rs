//! The application layer's integration tests: the commands against real storage, on every log
//! backend (SQLite, and PostgreSQL when `PORTICO_TEST_POSTGRES_URL` is set).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_apps;
mod identity_providers;
mod logpush_worker;
mod portals;
mod support;
