//! Portico's MCP data plane.
//!
//! - [`ssrf`]: which upstream addresses Portico may connect to.
//! - [`transport`]: connecting to an upstream over streamable HTTP or the legacy HTTP+SSE
//!   transport, chosen as the product does (URL suffix, then fallback on 404/405/406).

pub mod ssrf;
pub mod transport;
