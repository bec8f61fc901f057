//! SHA-256 digests as manifests carry them: lowercase hex strings.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest in a manifest (`merkle_root`, `parquet.sha256`, `prev_manifest_sha256`,
/// `schema_sha256`). It holds the text exactly as stored: a parsed one may break the rule of
/// docs/FORMAT.md §0 (64 lowercase hex digits), which readers report rather than assume, and
/// comparisons are of the exact text (§8.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest::from_bytes(&Sha256::digest(data).into())
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Digest(hex::encode(bytes))
    }

    /// The chain's genesis link: 64 zeros.
    pub fn genesis() -> Self {
        Digest::from_bytes(&[0; 32])
    }

    /// 64 lowercase hex digits, as the format requires.
    pub fn is_canonical(&self) -> bool {
        self.0.len() == 64
            && self
                .0
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The 32 bytes, when the text is canonical.
    pub fn to_bytes(&self) -> Option<[u8; 32]> {
        let mut out = [0; 32];
        (self.is_canonical() && hex::decode_to_slice(&self.0, &mut out).is_ok()).then_some(out)
    }

    /// The text exactly as given (check [`Digest::is_canonical`] before relying on it).
    pub fn from_text(text: impl Into<String>) -> Self {
        Digest(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<[u8; 32]> for Digest {
    fn from(b: [u8; 32]) -> Self {
        Digest::from_bytes(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_digests_round_trip_and_others_are_kept_as_text() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.is_canonical());
        assert_eq!(Digest::from_bytes(&d.to_bytes().unwrap()), d);
        let upper: Digest =
            serde_json::from_str(&format!("\"{}\"", d.as_str().to_uppercase())).unwrap();
        assert!(!upper.is_canonical());
        assert_eq!(upper.to_bytes(), None);
        assert_ne!(upper, d, "compared as exact text");
        assert_eq!(Digest::genesis().as_str(), "0".repeat(64));
    }
}
