//! The `policies` crate's integration tests: the example policies (the guide's,
//! `docs/examples/policies`), the JSON corpus of requests,
//! the differential test of the index against Cedar's whole-set evaluation, visibility, and the
//! official Cedar CLI's verdict on the schema and examples.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cedar_cli;
mod corpus;
mod differential;
mod support;
mod visibility;
