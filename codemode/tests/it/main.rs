//! The sandbox conformance suite: every engine behind [`Sandbox`] must pass the same tests.
//!
//! QuickJS always runs. workerd runs when `PORTICO_WORKERD` names its binary (`scripts/test`
//! installs it from npm and sets it); without the variable its tests fail, naming it, unless
//! `PORTICO_SKIP_WORKERD=1` says to skip them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod suite;
mod workerd;
