//! The domain of MCP servers and portals: value types, commands, events and the rules that turn
//! one into the other (`decide`), and the fold that rebuilds an aggregate's state (`apply`).

pub mod error;
pub mod ids;
pub mod overrides;
pub mod portal;
pub mod server;
pub mod validate;

#[cfg(test)]
mod testing;

pub use error::DomainError;
