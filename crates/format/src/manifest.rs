//! Segment manifests: fields, canonical bytes, signature and chain (docs/FORMAT.md §6).
//!
//! A manifest object is exactly two lines:
//!
//! ```text
//! <body: compact JSON, fields in the order of `Manifest`>\n
//! ed25519 <key id: 16 hex> <signature: standard base64 with padding>\n
//! ```
//!
//! The signature is Ed25519 over `"cairn-manifest-v1\n" ‖ body` (body without its newline).
//! The chain hash of a manifest is `SHA-256(body)`. The first manifest of a stream links to
//! [`Digest::genesis`] (32 zero bytes).
//!
//! Reading is layered as FORMAT.md §8.3 is: [`ManifestLines::split`] (layout), then the
//! signature line ([`SignatureLine::parse`], judged on its own), then the body's structure
//! ([`ManifestLines::parse_body`]), then its rules ([`Manifest::rule_violations`]). A broken
//! signature line never stops the body from being read.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::event::{EventError, StreamId, parse_canonical_timestamp};
use crate::keys::{KeyId, PublicKey, SigningKey};
use crate::names::{ObjectKind, ObjectName, object_name};
use crate::range::OffsetRange;

pub const SIGNATURE_CONTEXT: &[u8] = b"cairn-manifest-v1\n";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRef {
    pub id: String,
    pub partition: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetRef {
    /// Object name relative to the store root: the segment's own Parquet name. Never used as
    /// a path by readers (FORMAT.md §6.1).
    pub object: String,
    /// SHA-256 of the whole Parquet file.
    pub sha256: Digest,
    pub size: u64,
    /// S3 version id of the object as written, `null` on stores without versions.
    pub version_id: Option<String>,
}

/// Everything a manifest says. Field order here is the canonical JSON order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// Format v3: the origin of the store the segment was sealed into (FORMAT.md §11).
    /// `None` exactly in v1 and v2 manifests, which name no store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    pub stream: StreamRef,
    /// 0 for the first segment of a stream, then +1 per segment.
    pub seq: u64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub event_count: u64,
    /// Inclusive offset ranges, ascending and disjoint, of input that was rejected (bad lines,
    /// dead-lettered messages) and so is not in the Parquet file.
    pub rejected: Vec<OffsetRange>,
    /// Inclusive offset ranges the source never delivered (Kafka transaction markers,
    /// compacted or aborted records). Always empty for file sources.
    pub absent: Vec<OffsetRange>,
    /// Format v2: inclusive offset ranges the source deleted (Kafka retention, DeleteRecords)
    /// before they were sealed. `None` exactly in v1 manifests, which have no such member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<Vec<OffsetRange>>,
    /// Canonical timestamps (FORMAT.md §0); `null` when the segment holds no events.
    pub min_occurred_at: Option<String>,
    pub max_occurred_at: Option<String>,
    /// Distinct tenants in the segment, ascending (for query pruning).
    pub tenants: Vec<String>,
    /// RFC 6962 root over the events' leaf bytes in offset order.
    pub merkle_root: Digest,
    pub parquet: ParquetRef,
    /// SHA-256 of the previous manifest's body in this stream, or [`Digest::genesis`].
    pub prev_manifest_sha256: Digest,
    /// SHA-256 of `schemas/audit_event.avsc` as the sealer shipped it.
    pub schema_sha256: Digest,
    pub key_id: String,
    pub sealed_at: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// FORMAT.md §6.2 layout: the object is not exactly two newline-terminated lines.
    #[error("not a manifest: expected exactly two newline-terminated lines (body, signature)")]
    Layout,
    /// FORMAT.md §6.1 structure: the first line is not a v1 manifest body.
    #[error("the body is not a cairn.segment.v1 manifest body: {0}")]
    Structure(String),
}

/// Why a signature is not valid (FORMAT.md §6.2).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureFailure {
    #[error("the signature line is malformed: {0}")]
    MalformedLine(String),
    #[error("the signature line names key {line} but the body's key_id is {body:?}")]
    KeyIdMismatch { line: KeyId, body: String },
    #[error("signed by key {0}, which is not among the trusted keys")]
    UnknownKey(KeyId),
    #[error("the signature does not verify under trusted key {0}")]
    DoesNotVerify(KeyId),
}

/// Outcome of checking a manifest's signature against a set of trusted keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    /// The signature line is malformed, names another key than the body, or the signature
    /// does not verify under the trusted key with its id.
    Invalid,
    /// No trusted key has this id.
    UnknownKey,
}

impl SignatureFailure {
    pub fn check(r: &Result<(), SignatureFailure>) -> SignatureCheck {
        match r {
            Ok(()) => SignatureCheck::Valid,
            Err(SignatureFailure::UnknownKey(_)) => SignatureCheck::UnknownKey,
            Err(_) => SignatureCheck::Invalid,
        }
    }
}

/// A well-formed signature line: `ed25519 <key id> <base64 signature>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLine {
    pub key_id: KeyId,
    pub signature: [u8; 64],
}

impl SignatureLine {
    /// Parses the second line of a manifest (without its newline), strictly: one space
    /// between fields, lowercase hex key id, 88 characters of canonical padded base64.
    pub fn parse(line: &[u8]) -> Result<SignatureLine, SignatureFailure> {
        let bad = |m: &str| SignatureFailure::MalformedLine(m.to_string());
        let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
        let mut parts = line.split(' ');
        let (Some(alg), Some(kid), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(
                "expected `ed25519 <16 hex key id> <base64 signature>` separated by single spaces",
            ));
        };
        if alg != "ed25519" {
            return Err(bad("the algorithm is not `ed25519`"));
        }
        let key_id =
            KeyId::parse(kid).ok_or_else(|| bad("the key id is not 16 lowercase hex digits"))?;
        // The STANDARD engine refuses missing padding and non-zero unused bits.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|_| bad("the signature is not canonical standard base64 with padding"))?;
        let signature: [u8; 64] = bytes
            .try_into()
            .map_err(|_| bad("the signature is not 64 bytes"))?;
        Ok(SignatureLine { key_id, signature })
    }

    fn verify(&self, body: &[u8], trusted: &[PublicKey]) -> Result<(), SignatureFailure> {
        let mut known = false;
        for k in trusted.iter().filter(|k| k.key_id() == self.key_id) {
            known = true;
            if k.verify(&signing_input(body), &self.signature) {
                return Ok(());
            }
        }
        Err(if known {
            SignatureFailure::DoesNotVerify(self.key_id)
        } else {
            SignatureFailure::UnknownKey(self.key_id)
        })
    }
}

/// The two lines of a manifest object (FORMAT.md §6.2), not yet interpreted.
#[derive(Clone, Copy, Debug)]
pub struct ManifestLines<'a> {
    pub body: &'a [u8],
    pub signature_line: &'a [u8],
}

impl<'a> ManifestLines<'a> {
    /// Splits an object into exactly two `\n`-terminated lines.
    pub fn split(bytes: &'a [u8]) -> Result<Self, ManifestError> {
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ManifestError::Layout)?;
        let (body, rest) = (&bytes[..nl], &bytes[nl + 1..]);
        let signature_line = rest.strip_suffix(b"\n").ok_or(ManifestError::Layout)?;
        if signature_line.contains(&b'\n') {
            return Err(ManifestError::Layout);
        }
        Ok(ManifestLines {
            body,
            signature_line,
        })
    }

    /// The signature judged on the signature line alone, for a body that cannot be parsed
    /// (FORMAT.md §8.3 step 4).
    pub fn verify_line_only(&self, trusted: &[PublicKey]) -> Result<(), SignatureFailure> {
        SignatureLine::parse(self.signature_line)?.verify(self.body, trusted)
    }

    /// Parses the body's structure (FORMAT.md §6.1). The rules are checked separately by
    /// [`Manifest::rule_violations`]: a body that breaks them is still placed in its stream.
    pub fn parse_body(&self) -> Result<SignedManifest, ManifestError> {
        let manifest: Manifest = serde_json::from_slice(self.body)
            .map_err(|e| ManifestError::Structure(e.to_string()))?;
        manifest
            .check_structure()
            .map_err(ManifestError::Structure)?;
        Ok(SignedManifest {
            manifest,
            body: self.body.to_vec(),
            signature: SignatureLine::parse(self.signature_line),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedManifest {
    pub manifest: Manifest,
    /// The exact body bytes that were signed.
    pub body: Vec<u8>,
    /// The signature line, or why it is malformed (a signature failure, not a parse error).
    pub signature: Result<SignatureLine, SignatureFailure>,
}

/// Largest value of `seq`, `event_count`, `parquet.size` and offsets (FORMAT.md §0).
const MAX_COUNT: u64 = i64::MAX as u64;

fn is_hex16(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Manifest {
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serialisation cannot fail")
    }

    /// The structure tier's checks that JSON typing alone does not make (FORMAT.md §6.1).
    fn check_structure(&self) -> Result<(), String> {
        let (lost, store) = (self.lost.is_some(), self.store.is_some());
        match (self.format.as_str(), lost, store) {
            (crate::FORMAT_V1, false, false)
            | (crate::FORMAT_V2, true, false)
            | (crate::FORMAT_V3, true, true) => {}
            (crate::FORMAT_V1, true, _) => {
                return Err("unknown field `lost` in a cairn.segment.v1 body".into());
            }
            (crate::FORMAT_V1 | crate::FORMAT_V2, _, true) => {
                return Err(format!("unknown field `store` in a {} body", self.format));
            }
            (crate::FORMAT_V2 | crate::FORMAT_V3, false, _) => {
                return Err("missing field `lost`".into());
            }
            (crate::FORMAT_V3, true, false) => return Err("missing field `store`".into()),
            (other, _, _) => {
                return Err(format!(
                    "format is {other:?}; this reader knows {:?}, {:?} and {:?}",
                    crate::FORMAT_V1,
                    crate::FORMAT_V2,
                    crate::FORMAT_V3
                ));
            }
        }
        if self.stream.partition < 0 {
            return Err(format!(
                "stream.partition {} is negative",
                self.stream.partition
            ));
        }
        for (name, v) in [
            ("seq", self.seq),
            ("event_count", self.event_count),
            ("parquet.size", self.parquet.size),
        ] {
            if v > MAX_COUNT {
                return Err(format!("{name} {v} exceeds 2^63 - 1"));
            }
        }
        let offsets = [self.first_offset, self.last_offset]
            .into_iter()
            .chain(self.not_events().flat_map(|r| [r.first, r.last]));
        if let Some(o) = offsets.into_iter().find(|o| *o < 0) {
            return Err(format!("offset {o} is negative"));
        }
        if self.first_offset > self.last_offset {
            return Err(format!(
                "first_offset {} is after last_offset {}",
                self.first_offset, self.last_offset
            ));
        }
        Ok(())
    }

    /// The rules of FORMAT.md §6.1 this body breaks, one message each (empty when it keeps
    /// them all). A validly signed body that breaks one is a content mismatch.
    pub fn rule_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let stream = self.stream_id();
        if let Err(e) = &stream {
            out.push(format!("stream.id: {e}"));
        }
        for (name, v) in [
            ("merkle_root", &self.merkle_root),
            ("parquet.sha256", &self.parquet.sha256),
            ("prev_manifest_sha256", &self.prev_manifest_sha256),
            ("schema_sha256", &self.schema_sha256),
        ] {
            if !v.is_canonical() {
                out.push(format!(
                    "{name} {:?} is not 64 lowercase hex digits",
                    v.as_str()
                ));
            }
        }
        if let Some(store) = &self.store
            && let Err(e) = crate::log::Origin::parse(store)
        {
            out.push(format!("store: {e}"));
        }
        if !is_hex16(&self.key_id) {
            out.push(format!(
                "key_id {:?} is not 16 lowercase hex digits",
                self.key_id
            ));
        }
        let canonical = |name: &str, v: &str, out: &mut Vec<String>| {
            if parse_canonical_timestamp(v).is_none() {
                out.push(format!(
                    "{name} {v:?} is not a canonical timestamp (YYYY-MM-DDTHH:MM:SS.ffffffZ)"
                ));
            }
        };
        match (&self.min_occurred_at, &self.max_occurred_at) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                canonical("min_occurred_at", a, &mut out);
                canonical("max_occurred_at", b, &mut out);
            }
            _ => {
                out.push("min_occurred_at and max_occurred_at are not both null or both set".into())
            }
        }
        canonical("sealed_at", &self.sealed_at, &mut out);
        let range = self.range();
        for (name, ranges) in [
            ("rejected", self.rejected.as_slice()),
            ("absent", self.absent.as_slice()),
            ("lost", self.lost()),
        ] {
            for r in ranges {
                if !r.within(&range) {
                    out.push(format!(
                        "{name} range [{}, {}] is reversed or outside [{}, {}]",
                        r.first, r.last, range.first, range.last
                    ));
                }
            }
            if ranges.windows(2).any(|w| w[1].first <= w[0].last) {
                out.push(format!("{name} ranges are not ascending and disjoint"));
            }
        }
        let mut all: Vec<OffsetRange> = self.not_events().copied().collect();
        all.sort();
        if let Some(w) = all.windows(2).find(|w| w[1].first <= w[0].last) {
            out.push(format!("ranges {} and {} share offsets", w[0], w[1]));
        }
        if self
            .tenants
            .windows(2)
            .any(|w| w[0].as_bytes() >= w[1].as_bytes())
        {
            out.push("tenants are not strictly ascending".into());
        }
        if let Ok(stream) = &stream {
            let own = self.own_parquet_name(stream);
            if self.parquet.object != own {
                out.push(format!(
                    "parquet.object {:?} is not the segment's own name {own:?}",
                    self.parquet.object
                ));
            }
        }
        out
    }

    /// The segment's own Parquet name (FORMAT.md §2), from the body's stream and range; the
    /// only name a reader takes the segment's rows from. `None` when the body's stream id is
    /// not a valid stream id.
    pub fn own_parquet_object(&self) -> Option<String> {
        self.stream_id().ok().map(|s| self.own_parquet_name(&s))
    }

    /// The body's stream, if its id is a valid stream id.
    pub fn stream_id(&self) -> Result<StreamId, EventError> {
        StreamId::new(self.stream.id.clone(), self.stream.partition)
    }

    /// `[first_offset, last_offset]`.
    pub fn range(&self) -> OffsetRange {
        OffsetRange::new(self.first_offset, self.last_offset)
    }

    /// Does this body describe the stream and range that `name` says (FORMAT.md §8.3 step 5)?
    /// The sealer checks it on resume, the verifier on every manifest.
    pub fn matches(&self, name: &ObjectName) -> bool {
        self.stream.id == name.stream.source
            && self.stream.partition == name.stream.partition
            && self.range() == name.range()
    }

    /// The offsets that are not events: the rejected ranges, the absent ones, the lost ones.
    pub fn not_events(&self) -> impl Iterator<Item = &OffsetRange> {
        self.rejected.iter().chain(&self.absent).chain(self.lost())
    }

    /// The lost ranges (none in a v1 manifest).
    pub fn lost(&self) -> &[OffsetRange] {
        self.lost.as_deref().unwrap_or(&[])
    }

    fn own_parquet_name(&self, stream: &StreamId) -> String {
        object_name(
            stream,
            self.first_offset,
            self.last_offset,
            ObjectKind::Parquet,
        )
    }
}

impl SignedManifest {
    /// Fills in `key_id` from `key`, serialises and signs.
    pub fn sign(mut manifest: Manifest, key: &SigningKey) -> Self {
        let key_id = key.key_id();
        manifest.key_id = key_id.to_string();
        let body = manifest.body_bytes();
        let signature = key.sign(&signing_input(&body));
        SignedManifest {
            manifest,
            body,
            signature: Ok(SignatureLine { key_id, signature }),
        }
    }

    /// The object's bytes. Only for manifests made by [`SignedManifest::sign`] (a parsed one
    /// with a malformed signature line has no line to write back).
    pub fn to_bytes(&self) -> Vec<u8> {
        let line = self
            .signature
            .as_ref()
            .expect("to_bytes on a manifest with a malformed signature line");
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.extend_from_slice(&self.body);
        out.push(b'\n');
        out.extend_from_slice(b"ed25519 ");
        out.extend_from_slice(line.key_id.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(line.signature)
                .as_bytes(),
        );
        out.push(b'\n');
        out
    }

    /// Layout, then structure (FORMAT.md §8.3 steps 2 and 4). A malformed signature line is
    /// not an error here: [`SignedManifest::verify_signature`] reports it.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        ManifestLines::split(bytes)?.parse_body()
    }

    /// SHA-256 of the body: what the next manifest's `prev_manifest_sha256` must be.
    pub fn chain_hash(&self) -> Digest {
        Digest::from_bytes(&Sha256::digest(&self.body).into())
    }

    /// FORMAT.md §6.2: valid only when the line is well formed, names the body's `key_id`, a
    /// trusted key has that id and the signature verifies under it.
    pub fn verify_signature(&self, trusted: &[PublicKey]) -> Result<(), SignatureFailure> {
        let line = self.signature.as_ref().map_err(Clone::clone)?;
        if line.key_id.to_string() != self.manifest.key_id {
            return Err(SignatureFailure::KeyIdMismatch {
                line: line.key_id,
                body: self.manifest.key_id.clone(),
            });
        }
        line.verify(&self.body, trusted)
    }

    pub fn check_signature(&self, trusted: &[PublicKey]) -> SignatureCheck {
        SignatureFailure::check(&self.verify_signature(trusted))
    }
}

pub fn signing_input(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_CONTEXT.len() + body.len());
    m.extend_from_slice(SIGNATURE_CONTEXT);
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
pub(crate) mod tests;
