//! Helpers for cairn's integration tests, in one place: the `cairn` binary and what the tests
//! do with it ([`cli`]), the real services they start on 127.0.0.1 and stop on drop (S3 with
//! Object Lock: [`s3`]; a Kafka-protocol broker, a network gate and real Kafka producers:
//! [`kafka`]), `cairn ingest` as a watched child process ([`ingester`]) and the Python peers
//! written from docs/FORMAT.md alone ([`python`]).
//!
//! The integration tests themselves are the `tests/*.rs` files, wired into the `cairn` package
//! (`crates/cairn/Cargo.toml`): only a test of the package that owns a binary gets that binary
//! built fresh for it, which [`cli::bin`] relies on. A service a test needs and cannot start
//! fails the test; nothing is skipped.

pub mod cli;
pub mod ingester;
pub mod interop;
pub mod kafka;
pub mod oidc;
pub mod opa;
pub mod python;
pub mod registry;
pub mod s3;
pub mod serve;

#[cfg(test)]
mod boundaries;

pub use cli::*;
pub use ingester::*;
pub use interop::*;
pub use kafka::*;
pub use python::*;
pub use registry::*;
pub use s3::*;

// The crates test files use directly, so the `cairn` package needs only this one dev-dependency.
pub use {
    apache_avro, bytes, cairn_format, cairn_store, cairn_verify, hex, parquet, rdkafka, serde_json,
    tempfile, tokio,
};
