//! Ed25519 keys, key ids and their file encodings (docs/FORMAT.md §6.4). Parsing and
//! formatting only: reading and writing key files is the caller's I/O.
//!
//! Key files are one line: `cairn-ed25519-secret:<64 hex>` (the 32-byte seed) or
//! `cairn-ed25519-public:<64 hex>`. The key id is the first 8 bytes of
//! `SHA-256("cairn/ed25519\n" ‖ public key)`, written as 16 lowercase hex digits.

use std::fmt;

use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

const SECRET_TAG: &str = "cairn-ed25519-secret:";
const PUBLIC_TAG: &str = "cairn-ed25519-public:";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{path} is not a cairn {kind} key file: {problem}; expected exactly one line `{tag}<64 lowercase hex digits>`"
    )]
    Malformed {
        path: String,
        kind: &'static str,
        tag: &'static str,
        problem: String,
    },
    #[error("{path} holds a public key that cannot be trusted: {problem}")]
    WeakPublicKey { path: String, problem: &'static str },
    #[error("no randomness available: {0}")]
    Random(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl KeyId {
    pub fn parse(s: &str) -> Option<Self> {
        let mut out = [0u8; 8];
        hex::decode_to_slice(s, &mut out).ok()?;
        (hex::encode(out) == s).then_some(KeyId(out))
    }
}

#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl SigningKey {
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn key_id(&self) -> KeyId {
        self.public().key_id()
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    pub fn to_file_string(&self) -> String {
        format!("{SECRET_TAG}{}\n", hex::encode(self.0.to_bytes()))
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, KeyError> {
        parse_tagged(text, SECRET_TAG)
            .map(Self::from_seed)
            .map_err(|problem| KeyError::Malformed {
                path: path.to_string(),
                kind: "secret",
                tag: SECRET_TAG,
                problem,
            })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.key_id())
    }
}

impl PublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Option<Self> {
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .ok()
            .map(PublicKey)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn key_id(&self) -> KeyId {
        let mut h = Sha256::new();
        h.update(b"cairn/ed25519\n");
        h.update(self.0.as_bytes());
        let d = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        KeyId(id)
    }

    /// Strict RFC 8032 verification (rejects small-order keys and non-canonical signatures).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &sig).is_ok() && self.0.verify(msg, &sig).is_ok()
    }

    pub fn to_file_string(&self) -> String {
        format!("{PUBLIC_TAG}{}\n", hex::encode(self.to_bytes()))
    }

    /// Parses a public key file strictly (docs/FORMAT.md §6.4) and refuses keys a verifier
    /// must not trust: non-canonical encodings and points of small order.
    pub fn parse(text: &str, path: &str) -> Result<Self, KeyError> {
        let bytes = parse_tagged(text, PUBLIC_TAG).map_err(|problem| KeyError::Malformed {
            path: path.to_string(),
            kind: "public",
            tag: PUBLIC_TAG,
            problem,
        })?;
        let weak = |problem| KeyError::WeakPublicKey {
            path: path.to_string(),
            problem,
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| weak("it is not a point on the Ed25519 curve"))?;
        if key.to_bytes() != bytes {
            return Err(weak("it is not the canonical encoding of its point"));
        }
        if key.is_weak() {
            return Err(weak(
                "it is a point of small order (such as the identity), under which forged signatures verify",
            ));
        }
        Ok(PublicKey(key))
    }
}

/// `tag` + 64 lowercase hex digits + an optional single `\n`, and nothing else.
fn parse_tagged(text: &str, tag: &str) -> Result<[u8; 32], String> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    if line.contains('\r') {
        return Err("it has a carriage return (CRLF line ending): save it with LF".into());
    }
    if line.contains('\n') {
        return Err("it has more than one line".into());
    }
    let hexpart = line.strip_prefix(tag).ok_or_else(|| {
        if line.starts_with('\u{feff}') {
            "it starts with a byte-order mark".to_string()
        } else {
            format!("it does not start with `{tag}`")
        }
    })?;
    if hexpart.len() != 64
        || !hexpart
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("the key is not 64 lowercase hex digits".into());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hexpart, &mut out).expect("checked hex");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_sign() {
        let key = SigningKey::from_seed([7; 32]);
        let loaded = SigningKey::parse(&key.to_file_string(), "k").unwrap();
        let public = PublicKey::parse(&key.public().to_file_string(), "k.pub").unwrap();
        assert_eq!(loaded.key_id(), public.key_id());
        let sig = loaded.sign(b"m");
        assert!(public.verify(b"m", &sig));
        assert!(!public.verify(b"n", &sig));
    }

    #[test]
    fn malformed_key_files_are_named() {
        let e = PublicKey::parse("cairn-ed25519-secret:00", "k.pub").unwrap_err();
        assert!(
            e.to_string().contains("k.pub is not a cairn public key"),
            "{e}"
        );
    }

    /// FORMAT.md §6.4 (issue 7, question 14): one strict form, nothing lenient.
    #[test]
    fn key_files_are_strict() {
        let pk = SigningKey::from_seed([7; 32]).public();
        let good = pk.to_file_string();
        assert!(PublicKey::parse(&good, "k").is_ok());
        assert!(
            PublicKey::parse(good.trim_end(), "k").is_ok(),
            "no final newline"
        );
        let hexpart = good
            .trim_end()
            .strip_prefix(PUBLIC_TAG)
            .unwrap()
            .to_string();
        for (bad, says) in [
            (
                format!("{PUBLIC_TAG}{}\n", hexpart.to_uppercase()),
                "lowercase",
            ),
            (good.replace('\n', "\r\n"), "carriage return"),
            (format!("{good}\n"), "more than one line"),
            (format!("\n{good}"), "more than one line"),
            (format!(" {good}"), "does not start"),
            (
                format!("{}\n", good.trim_end()).replace(':', ": "),
                "lowercase",
            ),
            (format!("\u{feff}{good}"), "byte-order mark"),
            (format!("{PUBLIC_TAG}{}\n", &hexpart[2..]), "lowercase"),
        ] {
            let e = PublicKey::parse(&bad, "k").unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    /// Issue 7: a trusted key of small order (the identity) was loaded without complaint.
    #[test]
    fn small_order_and_non_canonical_public_keys_are_refused() {
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        let file = format!("{PUBLIC_TAG}{}\n", hex::encode(identity));
        let e = PublicKey::parse(&file, "id.pub").unwrap_err();
        assert!(matches!(e, KeyError::WeakPublicKey { .. }), "{e}");
        assert!(e.to_string().contains("small order"), "{e}");
        // y = p + 1 (non-canonical encoding of y = 1, the identity again).
        let mut noncanonical = [0xffu8; 32];
        noncanonical[0] = 0xee;
        noncanonical[31] = 0x7f;
        let file = format!("{PUBLIC_TAG}{}\n", hex::encode(noncanonical));
        let e = PublicKey::parse(&file, "nc.pub").unwrap_err();
        assert!(matches!(e, KeyError::WeakPublicKey { .. }), "{e}");
    }
}
