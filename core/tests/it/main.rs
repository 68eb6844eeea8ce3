//! Integration tests of `portico-core`: the event-log conformance suite (run unchanged against
//! SQLite and PostgreSQL) and the crash test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod crash;
mod postgres_instances;
mod sqlite_commits;
mod support;
