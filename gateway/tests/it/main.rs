//! Integration tests of the gateway against real peers.
//!
//! MCP peers are the official `@modelcontextprotocol/server-everything`: `scripts/test` installs
//! it and sets `PORTICO_TEST_SERVER_EVERYTHING` to its `mcp-server-everything` bin script. The
//! tests that need it fail without the variable unless `PORTICO_SKIP_PEERS=1`
//! (`everything::peer`). `raw_http` is a plain TCP listener that records request heads and
//! answers a fixed status: it checks what goes on the wire (headers, redirects, auth failures),
//! not MCP behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connect;
mod everything;
mod raw_http;
