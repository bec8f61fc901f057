//! Ed25519 keys, key ids and their file encodings (docs/FORMAT.md, "Keys").
//!
//! Key files are one line: `cairn-ed25519-secret:<64 hex>` (the 32-byte seed) or
//! `cairn-ed25519-public:<64 hex>`. The key id is the first 8 bytes of
//! `SHA-256("cairn/ed25519\n" ‖ public key)`, written as 16 lowercase hex digits.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

const SECRET_TAG: &str = "cairn-ed25519-secret:";
const PUBLIC_TAG: &str = "cairn-ed25519-public:";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a cairn {kind} key: expected one line `{tag}<64 hex digits>` (create one with `cairn keygen`)"
    )]
    Malformed {
        path: String,
        kind: &'static str,
        tag: &'static str,
    },
    #[error(
        "{0} already exists; refusing to overwrite a key (move it away or choose another --out)"
    )]
    Exists(String),
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
            .ok_or_else(|| KeyError::Malformed {
                path: path.to_string(),
                kind: "secret",
                tag: SECRET_TAG,
            })
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
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

    pub fn parse(text: &str, path: &str) -> Result<Self, KeyError> {
        parse_tagged(text, PUBLIC_TAG)
            .and_then(Self::from_bytes)
            .ok_or_else(|| KeyError::Malformed {
                path: path.to_string(),
                kind: "public",
                tag: PUBLIC_TAG,
            })
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }
}

fn parse_tagged(text: &str, tag: &str) -> Option<[u8; 32]> {
    let hexpart = text.trim_end_matches('\n').strip_prefix(tag)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hexpart, &mut out).ok()?;
    Some(out)
}

/// Writes `dir/signing.key` (mode 0600, created exclusively) and `dir/signing.pub`.
pub fn write_keypair(dir: &Path, key: &SigningKey) -> Result<(), KeyError> {
    use std::io::Write;
    let werr = |p: &Path| {
        let path = p.display().to_string();
        move |source| KeyError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    let secret = dir.join("signing.key");
    let public = dir.join("signing.pub");
    for p in [&secret, &public] {
        if p.exists() {
            return Err(KeyError::Exists(p.display().to_string()));
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&secret).map_err(werr(&secret))?;
    f.write_all(key.to_file_string().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(werr(&secret))?;
    std::fs::write(&public, key.public().to_file_string()).map_err(werr(&public))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed([7; 32]);
        write_keypair(dir.path(), &key).unwrap();
        let loaded = SigningKey::load(&dir.path().join("signing.key")).unwrap();
        let public = PublicKey::load(&dir.path().join("signing.pub")).unwrap();
        assert_eq!(loaded.key_id(), public.key_id());
        let sig = loaded.sign(b"m");
        assert!(public.verify(b"m", &sig));
        assert!(!public.verify(b"n", &sig));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("signing.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_keypair(dir.path(), &key),
            Err(KeyError::Exists(_))
        ));
    }

    #[test]
    fn malformed_key_files_are_named() {
        let e = PublicKey::parse("cairn-ed25519-secret:00", "k.pub").unwrap_err();
        assert!(
            e.to_string().contains("k.pub is not a cairn public key"),
            "{e}"
        );
    }
}
