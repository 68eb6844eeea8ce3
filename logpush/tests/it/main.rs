//! Integration tests of the Logpush library: the text outputs byte for byte against fixture
//! files, and Parquet read back with the `parquet` crate's Arrow reader.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod parquet_files;
mod records;
mod text_outputs;
