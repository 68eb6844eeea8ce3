//! The integration tests of the `portico` binary's library: one test binary, one module per
//! area.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod policy_cli;
mod process;
mod support;
