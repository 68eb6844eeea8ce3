//! Code mode: agent-written JavaScript that calls a portal's tools, run in a sandbox.
//!
//! - [`sandbox`]: the [`Sandbox`] trait every engine implements, what a run is given (the code,
//!   a [`Bridge`] back to the host, [`Limits`]) and what it ends with ([`Execution`]).
//! - [`workerd`]: V8 isolates in a pool of supervised `workerd` processes, one fresh worker per
//!   execution.
//! - [`quickjs`]: embedded QuickJS, in process, one fresh runtime per execution.
//! - [`typescript`]: TypeScript declarations of the tools, generated from their JSON Schemas.
//! - [`normalize`]: turns what a model wrote into one async arrow function.
//! - [`output`]: what an execution's result becomes for the MCP client (truncation).
//!
//! The sandbox has no network, no filesystem and no environment. The only way out is the
//! bridge: `codemode.<name>(args)` inside the sandbox becomes one [`Bridge::call`] on the host,
//! which decides what the name means (a tool, or `tools()` in search) and whether the caller may
//! use it.

pub mod normalize;
pub mod output;
pub mod quickjs;
pub mod sandbox;
pub mod typescript;
pub mod workerd;

pub use sandbox::{Bridge, Engine, Execution, ExecutionError, Limits, Run, Sandbox};
