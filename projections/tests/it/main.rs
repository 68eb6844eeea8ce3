//! Integration tests of the projections: replay equals incremental application, the runner
//! against a real SQLite log, and the shape of the views.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod call_log;
mod replay;
mod runner;
mod scenario;
mod views;
