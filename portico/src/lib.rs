//! The `portico` binary's library: the command line ([`cli`]), configuration ([`config`]),
//! opening the storage ([`storage`]), mailing sign-in PINs ([`mail`]) and `serve --demo` ([`demo`]). It wires the crates below
//! together; the writes it makes (bootstrap, API tokens, the demo's set-up) go through the
//! application layer (`portico-app`) like the admin API's.

pub mod cli;
pub mod codemode;
pub mod config;
pub mod demo;
pub mod mail;
pub mod storage;
