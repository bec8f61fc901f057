//! Segment manifests: fields, canonical bytes, signature and chain (docs/FORMAT.md,
//! "Manifest").
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
//! [`GENESIS`] (32 zero bytes).

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KeyId, PublicKey, SigningKey};

pub const SIGNATURE_CONTEXT: &[u8] = b"cairn-manifest-v1\n";
pub const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRef {
    pub id: String,
    pub partition: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetRef {
    /// Object name relative to the store root.
    pub object: String,
    /// SHA-256 of the whole Parquet file, lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// S3 version id of the object as written, `null` on stores without versions.
    pub version_id: Option<String>,
}

/// Everything a manifest says. Field order here is the canonical JSON order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub stream: StreamRef,
    /// 0 for the first segment of a stream, then +1 per segment.
    pub seq: u64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub event_count: u64,
    /// Inclusive offset ranges, ascending and disjoint, of input that was rejected (bad lines,
    /// dead-lettered messages) and so is not in the Parquet file.
    pub rejected: Vec<[i64; 2]>,
    /// Inclusive offset ranges the source never delivered (Kafka transaction markers,
    /// compacted or aborted records). Always empty for file sources.
    pub absent: Vec<[i64; 2]>,
    /// RFC 3339 UTC, six fractional digits; `null` when the segment holds no events.
    pub min_occurred_at: Option<String>,
    pub max_occurred_at: Option<String>,
    /// Distinct tenants in the segment, ascending (for query pruning).
    pub tenants: Vec<String>,
    /// RFC 6962 root over the events' leaf bytes in offset order, lowercase hex.
    pub merkle_root: String,
    pub parquet: ParquetRef,
    /// SHA-256 of the previous manifest's body in this stream, or 64 zeros for the first.
    pub prev_manifest_sha256: String,
    /// SHA-256 of `schemas/audit_event.avsc` as the sealer shipped it.
    pub schema_sha256: String,
    pub key_id: String,
    pub sealed_at: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("not a manifest: expected two newline-terminated lines (body, signature)")]
    Layout,
    #[error("manifest body is not valid: {0}")]
    Body(String),
    #[error("signature line is malformed: expected `ed25519 <16 hex key id> <base64 signature>`")]
    SignatureLine,
    #[error("signature line names key {line} but the body names key {body}")]
    KeyIdMismatch { line: String, body: String },
}

/// Outcome of checking a manifest's signature against a set of trusted keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    /// A trusted key with this id exists but the signature does not verify.
    Invalid,
    /// No trusted key has this id.
    UnknownKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedManifest {
    pub manifest: Manifest,
    /// The exact body bytes that were signed.
    pub body: Vec<u8>,
    pub key_id: KeyId,
    pub signature: [u8; 64],
}

impl Manifest {
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serialisation cannot fail")
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
            key_id,
            signature,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.extend_from_slice(&self.body);
        out.push(b'\n');
        out.extend_from_slice(b"ed25519 ");
        out.extend_from_slice(self.key_id.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(self.signature)
                .as_bytes(),
        );
        out.push(b'\n');
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ManifestError::Layout)?;
        let (body, rest) = (&bytes[..nl], &bytes[nl + 1..]);
        let sig_line = rest.strip_suffix(b"\n").ok_or(ManifestError::Layout)?;
        if sig_line.contains(&b'\n') {
            return Err(ManifestError::Layout);
        }
        let manifest: Manifest =
            serde_json::from_slice(body).map_err(|e| ManifestError::Body(e.to_string()))?;
        let sig_line = std::str::from_utf8(sig_line).map_err(|_| ManifestError::SignatureLine)?;
        let mut parts = sig_line.split(' ');
        let (Some("ed25519"), Some(kid), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ManifestError::SignatureLine);
        };
        let key_id = KeyId::parse(kid).ok_or(ManifestError::SignatureLine)?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig_b64)
            .map_err(|_| ManifestError::SignatureLine)?;
        let signature: [u8; 64] = sig.try_into().map_err(|_| ManifestError::SignatureLine)?;
        if manifest.key_id != kid {
            return Err(ManifestError::KeyIdMismatch {
                line: kid.to_string(),
                body: manifest.key_id.clone(),
            });
        }
        Ok(SignedManifest {
            manifest,
            body: body.to_vec(),
            key_id,
            signature,
        })
    }

    /// SHA-256 of the body: what the next manifest's `prev_manifest_sha256` must be.
    pub fn chain_hash(&self) -> [u8; 32] {
        Sha256::digest(&self.body).into()
    }

    pub fn check_signature(&self, trusted: &[PublicKey]) -> SignatureCheck {
        let mut known = false;
        for k in trusted.iter().filter(|k| k.key_id() == self.key_id) {
            known = true;
            if k.verify(&signing_input(&self.body), &self.signature) {
                return SignatureCheck::Valid;
            }
        }
        if known {
            SignatureCheck::Invalid
        } else {
            SignatureCheck::UnknownKey
        }
    }
}

pub fn signing_input(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_CONTEXT.len() + body.len());
    m.extend_from_slice(SIGNATURE_CONTEXT);
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Manifest {
        Manifest {
            format: crate::FORMAT_VERSION.into(),
            stream: StreamRef {
                id: "billing".into(),
                partition: 0,
            },
            seq: 0,
            first_offset: 1,
            last_offset: 3,
            event_count: 2,
            rejected: vec![[2, 2]],
            absent: vec![],
            min_occurred_at: None,
            max_occurred_at: None,
            tenants: vec!["acme".into()],
            merkle_root: hex::encode([1u8; 32]),
            parquet: ParquetRef {
                object: "x.parquet".into(),
                sha256: hex::encode([2u8; 32]),
                size: 10,
                version_id: None,
            },
            prev_manifest_sha256: hex::encode(GENESIS),
            schema_sha256: crate::schema_fingerprint(),
            key_id: String::new(),
            sealed_at: "2026-11-26T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn sign_serialise_parse_verify() {
        let key = SigningKey::from_seed([3; 32]);
        let sm = SignedManifest::sign(sample(), &key);
        let bytes = sm.to_bytes();
        let parsed = SignedManifest::parse(&bytes).unwrap();
        assert_eq!(parsed, sm);
        assert_eq!(
            parsed.check_signature(&[key.public()]),
            SignatureCheck::Valid
        );
        let other = SigningKey::from_seed([4; 32]).public();
        assert_eq!(parsed.check_signature(&[other]), SignatureCheck::UnknownKey);
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let key = SigningKey::from_seed([3; 32]);
        let bytes = SignedManifest::sign(sample(), &key).to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        let forged = text.replace("\"event_count\":2", "\"event_count\":3");
        let parsed = SignedManifest::parse(forged.as_bytes()).unwrap();
        assert_eq!(
            parsed.check_signature(&[key.public()]),
            SignatureCheck::Invalid
        );
    }

    #[test]
    fn malformed_manifests_are_refused() {
        assert_eq!(SignedManifest::parse(b"{}"), Err(ManifestError::Layout));
        assert!(matches!(
            SignedManifest::parse(b"{}\ned25519 00 AA==\n"),
            Err(ManifestError::Body(_))
        ));
        let key = SigningKey::from_seed([3; 32]);
        let text = String::from_utf8(SignedManifest::sign(sample(), &key).to_bytes()).unwrap();
        let extra = text.replace("{\"format\"", "{\"x\":1,\"format\"");
        assert!(matches!(
            SignedManifest::parse(extra.as_bytes()),
            Err(ManifestError::Body(_))
        ));
        let bad_line = format!("{}\ned25519 zz\n", text.lines().next().unwrap());
        assert_eq!(
            SignedManifest::parse(bad_line.as_bytes()),
            Err(ManifestError::SignatureLine)
        );
    }
}
