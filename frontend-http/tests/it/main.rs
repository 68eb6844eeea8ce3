//! The integration tests of the HTTP front end: one test binary, one module per area, all
//! driving the real app from `create_app` over a temporary SQLite log and vault
//! (`support::TestApp`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_api;
mod audit_logs;
mod authorize;
mod cedar_api;
mod openapi;
mod service_tokens;
mod support;
