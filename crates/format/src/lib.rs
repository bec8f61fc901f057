//! cairn's sealed-segment format, as specified in `docs/FORMAT.md`.
//!
//! This crate owns every byte an auditor must be able to recompute: the event model and its
//! validation ([`event`]), the canonical leaf encoding ([`leaf`]), RFC 6962 Merkle hashing
//! ([`merkle`]), manifests and their signatures ([`manifest`], [`keys`]), the Parquet segment
//! encoding ([`segment`]), object names ([`names`]) and the statement a signed query result
//! carries ([`result`]), and the transparency log over manifests: entries, C2SP tiles,
//! checkpoints and RFC 9162 proofs ([`log`]).
//!
//! It is pure: no I/O beyond what callers hand it (byte slices, readers), no async, no
//! network, no storage. It must never depend on the store, sealer, verify or query crates;
//! they all depend on it. A change to anything here that alters bytes is a format change and
//! needs a new format version.

pub mod claim;
pub mod digest;
pub mod event;
pub mod keys;
pub mod leaf;
pub mod log;
pub mod manifest;
pub mod merkle;
pub mod names;
pub mod range;
pub mod result;
pub mod segment;

pub use claim::Claim;
pub use digest::Digest;
pub use event::{AuditEvent, EventError, StreamId};
pub use keys::{KeyError, KeyId, PublicKey, SigningKey};
pub use manifest::{Manifest, ManifestError, SignedManifest};
pub use names::{ObjectKind, ObjectName};
pub use range::OffsetRange;
pub use result::{ResultSegment, ResultStatement};

/// The Avro schema every event is validated against, exactly as shipped in `schemas/`.
pub const AVRO_SCHEMA: &str = include_str!("../../../schemas/audit_event.avsc");

/// SHA-256 of [`AVRO_SCHEMA`]'s bytes; recorded in every manifest.
pub fn schema_fingerprint() -> Digest {
    Digest::of(AVRO_SCHEMA.as_bytes())
}

/// The first manifest format: offsets are events, rejected or absent.
pub const FORMAT_V1: &str = "cairn.segment.v1";
/// Adds `lost` ranges: offsets the source deleted (Kafka retention) before they were sealed.
pub const FORMAT_V2: &str = "cairn.segment.v2";
/// The format tag the sealer writes; bumped when any sealed byte changes meaning. Readers accept
/// every earlier version (docs/FORMAT.md, "Versions").
pub const FORMAT_VERSION: &str = FORMAT_V3;
/// Adds `store`: the origin of the store the segment was sealed into (docs/FORMAT.md §11).
pub const FORMAT_V3: &str = "cairn.segment.v3";
