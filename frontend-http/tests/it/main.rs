//! The integration tests of the HTTP front end: one test binary, one module per area, all
//! driving the real app from `create_app` over a temporary SQLite log and vault
//! (`support::TestApp`), or served on a real port in front of a real upstream MCP server, over
//! SQLite or PostgreSQL (`live::Live`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_apps;
mod admin_api;
mod audit_fail_closed;
mod audit_logs;
mod authorize;
mod cedar_api;
mod identity_providers;
mod in_place;
mod live;
mod logpush_jobs;
mod metrics;
mod openapi;
mod portal_logs;
mod prometheus;
mod service_tokens;
mod sign_in;
mod support;
