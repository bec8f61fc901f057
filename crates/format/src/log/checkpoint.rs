//! Checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes (FORMAT.md §12.3).
//!
//! ```text
//! <origin>\n<size>\n<base64 root>\n
//! \n
//! — <origin> <base64(4-byte key hash ‖ 64-byte Ed25519 signature)>\n
//! ```
//!
//! Signature lines of unknown keys are ignored (witness cosignatures); one valid signature of
//! a trusted key is enough. The key name is the origin.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use super::Origin;
use crate::keys::{PublicKey, SigningKey};
use crate::merkle::Hash;

/// A tree head: what a checkpoint says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: Origin,
    pub size: u64,
    pub root: Hash,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("not a checkpoint (C2SP signed note with a tlog-checkpoint body): {0}")]
    Malformed(String),
    #[error(
        "no signature on the checkpoint for {origin} is by a trusted key (it has {lines} signature line(s)); pass the log's public key with --pubkey"
    )]
    NoTrustedSignature { origin: String, lines: usize },
    #[error("the checkpoint's signature by trusted key {key_hash} does not verify: it was altered")]
    BadSignature { key_hash: String },
}

/// The C2SP signed-note key hash of an Ed25519 key named `name`:
/// the first 4 bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
pub fn key_hash(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(key.to_bytes());
    h.finalize()[..4].try_into().expect("4 bytes")
}

/// The key in Go's `golang.org/x/mod/sumdb/note` verifier-key form:
/// `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    let mut k = vec![1u8];
    k.extend_from_slice(&key.to_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, key)),
        STANDARD.encode(k)
    )
}

impl Checkpoint {
    /// The signed body: origin, size and base64 root, one per line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// The signed note, signed by `key` under the origin as key name.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let name = self.origin.as_str();
        let mut sig = key_hash(name, &key.public()).to_vec();
        sig.extend_from_slice(&key.sign(body.as_bytes()));
        format!("{body}\n\u{2014} {name} {}\n", STANDARD.encode(sig))
    }

    /// Parses a signed note and accepts it when a signature line verifies under a trusted key.
    /// A line that names a trusted key but does not verify is an error (the note was altered);
    /// lines of other keys are ignored.
    pub fn open(note: &str, trusted: &[PublicKey]) -> Result<Checkpoint, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_string());
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line between the body and the signatures"))?;
        let (body, sigs) = (&note[..=split], &note[split + 2..]);
        let cp = Checkpoint::parse_body(body)?;
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or_else(|| bad("the last signature line does not end in a newline"))?;
        let name = cp.origin.as_str();
        let mut lines = 0;
        for line in sigs.split('\n') {
            lines += 1;
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line does not start with \"— \""))?;
            let (line_name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line has no key name"))?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| bad("a signature is not standard base64"))?;
            if raw.len() < 5 {
                return Err(bad("a signature is shorter than its key hash"));
            }
            if line_name != name {
                continue;
            }
            for key in trusted {
                if raw[..4] == key_hash(name, key) {
                    let sig: [u8; 64] =
                        raw[4..]
                            .try_into()
                            .map_err(|_| CheckpointError::BadSignature {
                                key_hash: hex::encode(&raw[..4]),
                            })?;
                    return if key.verify(body.as_bytes(), &sig) {
                        Ok(cp)
                    } else {
                        Err(CheckpointError::BadSignature {
                            key_hash: hex::encode(&raw[..4]),
                        })
                    };
                }
            }
        }
        Err(CheckpointError::NoTrustedSignature {
            origin: name.to_string(),
            lines,
        })
    }

    /// Parses a tlog-checkpoint body: origin, size, base64 root, and no extension lines.
    pub fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |m: String| CheckpointError::Malformed(m);
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("the body does not end in a newline".into()))?
            .split('\n')
            .collect();
        if lines.len() != 3 {
            return Err(bad(
                "the body is not exactly origin, size and root lines (cairn writes no extension lines)".into(),
            ));
        }
        let origin = Origin::parse(lines[0]).map_err(|e| bad(e.to_string()))?;
        let size: u64 = lines[1]
            .parse()
            .ok()
            .filter(|n: &u64| n.to_string() == lines[1])
            .ok_or_else(|| bad(format!("size {:?} is not a decimal integer", lines[1])))?;
        let root: Hash = STANDARD
            .decode(lines[2])
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad(format!("root {:?} is not 32 bytes of base64", lines[2])))?;
        Ok(Checkpoint { origin, size, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: Origin::parse("example.com/vault").unwrap(),
            size: 42,
            root: [7; 32],
        }
    }

    #[test]
    fn signed_notes_round_trip_and_reject_tampering() {
        let key = SigningKey::from_seed([0x2a; 32]);
        let other = SigningKey::from_seed([0x2b; 32]);
        let note = cp().sign(&key);
        assert!(note.starts_with("example.com/vault\n42\nBwcH"));
        assert_eq!(Checkpoint::open(&note, &[key.public()]).unwrap(), cp());
        // Another key: no trusted signature.
        assert!(matches!(
            Checkpoint::open(&note, &[other.public()]),
            Err(CheckpointError::NoTrustedSignature { lines: 1, .. })
        ));
        // A cosignature by an unknown key is ignored; the trusted one still verifies.
        let cosigned = format!("{note}{}", other_line(&other));
        assert_eq!(Checkpoint::open(&cosigned, &[key.public()]).unwrap(), cp());
        // Another size under the same signature.
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            Checkpoint::open(&forged, &[key.public()]),
            Err(CheckpointError::BadSignature { .. })
        ));
        // Another origin: the key name (and so the key hash) differs.
        let moved = note.replace("example.com/vault", "example.com/other");
        assert!(Checkpoint::open(&moved, &[key.public()]).is_err());
        for broken in [
            note.trim_end().to_string(),
            note.replace("\n\n", "\n"),
            note.replace("\u{2014}", "-"),
            note.replacen("42", "042", 1),
        ] {
            assert!(
                Checkpoint::open(&broken, &[key.public()]).is_err(),
                "{broken}"
            );
        }
    }

    fn other_line(k: &SigningKey) -> String {
        let name = "witness.example";
        let mut sig = key_hash(name, &k.public()).to_vec();
        sig.extend_from_slice(&k.sign(b"whatever"));
        format!("\u{2014} {name} {}\n", STANDARD.encode(sig))
    }

    #[test]
    fn verifier_keys_have_the_go_note_form() {
        let key = SigningKey::from_seed([0x2a; 32]).public();
        let vkey = verifier_key("example.com/vault", &key);
        let parts: Vec<&str> = vkey.split('+').collect();
        assert_eq!(parts[0], "example.com/vault");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(STANDARD.decode(parts[2]).unwrap()[0], 1);
    }
}
