//! The domain of MCP servers and portals: value types, commands, events and the rules that turn
//! one into the other (`decide`), and the fold that rebuilds an aggregate's state (`apply`).
//!
//! A write goes: fold the aggregate's stream into its state (`ServerState::from_events`), run
//! `server::decide` (or `portal::decide`, with a [`ServerDirectory`]), then append the events to
//! the stream (`server_stream`, `portal_stream`) expecting `state.stream_version`.

pub mod access_app;
pub mod account;
pub mod aggregate;
pub mod call;
pub mod duration;
pub mod error;
pub mod grant;
pub mod hostname;
pub mod identity_provider;
pub mod ids;
pub mod logpush_job;
pub mod overrides;
pub mod policy;
pub mod portal;
pub mod server;
pub mod service_token;
pub mod sign_in;
pub mod upstream_auth;
pub mod validate;

#[cfg(test)]
#[allow(clippy::panic)]
mod testing;

pub use aggregate::Aggregate;
pub use error::DomainError;
pub use portal::{PortalCommand, PortalState, ServerCapabilities, ServerDirectory, portal_stream};
pub use server::{ServerCommand, ServerState, server_stream};
