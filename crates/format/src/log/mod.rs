//! The transparency log over a store's manifests (docs/FORMAT.md §11–§12): the store's origin,
//! log entries, C2SP tlog-tiles object names and contents ([`tiles`]), C2SP signed-note
//! checkpoints ([`checkpoint`]) and RFC 9162 inclusion and consistency proofs ([`proof`]).
//!
//! Pure like the rest of this crate: callers read and write the objects.

pub mod checkpoint;
pub mod event_proof;
pub mod proof;
pub mod tiles;

use std::fmt;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use event_proof::{EventProof, ProofError, ProofVerifier, ProvenEvent};

use crate::digest::Digest;

/// The object holding the store's origin.
pub const ORIGIN_OBJECT: &str = "v1/origin";
/// Everything of the log lives under this prefix.
pub const LOG_PREFIX: &str = "v1/log/";
/// Checkpoints: `v1/log/checkpoint/<size:020>`.
pub const CHECKPOINT_PREFIX: &str = "v1/log/checkpoint/";

/// A store's identity (FORMAT.md §11): 1–255 bytes of `[A-Za-z0-9._/:-]`, not starting or
/// ending with `/`. It is the origin line of the store's checkpoints and their key name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a store origin: use 1 to 255 characters of A-Z a-z 0-9 . _ / : - (a schema-less URL such as audit.example.com/vault/prod), not starting or ending with /"
)]
pub struct OriginError(pub String);

impl Origin {
    pub fn parse(s: &str) -> Result<Origin, OriginError> {
        let ok = (1..=255).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/:".contains(&b))
            && !s.starts_with('/')
            && !s.ends_with('/');
        if ok {
            Ok(Origin(s.to_string()))
        } else {
            Err(OriginError(s.to_string()))
        }
    }

    /// A fresh origin, `cairn.store/<32 random hex digits>`.
    pub fn generate() -> Origin {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the operating system's random number generator failed");
        Origin(format!("cairn.store/{}", hex::encode(b)))
    }

    /// The content of the origin object: the origin and one newline.
    pub fn to_object(&self) -> Vec<u8> {
        format!("{}\n", self.0).into_bytes()
    }

    /// Parses the origin object's content (exactly one line).
    pub fn from_object(bytes: &[u8]) -> Result<Origin, OriginError> {
        let text = std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| t.strip_suffix('\n'))
            .filter(|t| !t.contains('\n'))
            .ok_or_else(|| OriginError(String::from_utf8_lossy(bytes).into_owned()))?;
        Origin::parse(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The log entry of a manifest (FORMAT.md §12.1): `<chain hash hex> <object name>\n`.
pub fn entry(chain_hash: &Digest, manifest_name: &str) -> Vec<u8> {
    format!("{chain_hash} {manifest_name}\n").into_bytes()
}

/// The chain hash and manifest name an entry names, if it has the entry form.
pub fn parse_entry(entry: &[u8]) -> Option<(Digest, String)> {
    let text = std::str::from_utf8(entry).ok()?.strip_suffix('\n')?;
    let (hash, name) = text.split_once(' ')?;
    let hash = Digest::from_text(hash);
    (hash.is_canonical() && !name.is_empty() && !name.contains([' ', '\n']))
        .then(|| (hash, name.to_string()))
}

/// The object name of the checkpoint of `size`.
pub fn checkpoint_object(size: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{size:020}")
}

/// The kind of a log object, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogObject {
    /// `v1/log/tile/<L>/<N>[.p/<W>]`; `width` 256 for a full tile.
    HashTile { level: u8, index: u64, width: u16 },
    /// `v1/log/tile/entries/<N>[.p/<W>]`.
    EntryBundle { index: u64, width: u16 },
    /// `v1/log/checkpoint/<size:020>`.
    Checkpoint { size: u64 },
}

impl LogObject {
    /// Recognises the names of §12's objects (in their canonical spelling only).
    pub fn parse(name: &str) -> Option<LogObject> {
        if let Some(size) = name.strip_prefix(CHECKPOINT_PREFIX) {
            let n: u64 = (size.len() == 20 && size.bytes().all(|b| b.is_ascii_digit()))
                .then(|| size.parse().ok())??;
            return Some(LogObject::Checkpoint { size: n });
        }
        let rest = name.strip_prefix("v1/log/tile/")?;
        let (level_text, rest) = rest.split_once('/')?;
        let (path, width) = match rest.split_once(".p/") {
            Some((path, w)) => {
                let width: u16 = w.parse().ok()?;
                if !(1..=255).contains(&width) || width.to_string() != w {
                    return None;
                }
                (path, width)
            }
            None => (rest, tiles::TILE_WIDTH as u16),
        };
        let index = tiles::parse_index(path)?;
        if level_text == "entries" {
            return Some(LogObject::EntryBundle { index, width });
        }
        let level: u8 = level_text.parse().ok()?;
        (level.to_string() == level_text && level < 8).then_some(LogObject::HashTile {
            level,
            index,
            width,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_follow_the_syntax() {
        for ok in ["a", "audit.example.com/vault/prod", "cairn.store/0a:1_-"] {
            assert_eq!(Origin::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "/a", "a/", "a b", "a+b", "é", &"a".repeat(256)] {
            assert!(Origin::parse(bad).is_err(), "{bad:?}");
        }
        let g = Origin::generate();
        assert_eq!(Origin::from_object(&g.to_object()).unwrap(), g);
        assert!(Origin::from_object(b"a\nb\n").is_err());
        assert!(Origin::from_object(b"a").is_err());
    }

    #[test]
    fn entries_round_trip() {
        let d = Digest::of(b"body");
        let e = entry(&d, "v1/streams/s/0/x.manifest");
        assert_eq!(
            parse_entry(&e),
            Some((d, "v1/streams/s/0/x.manifest".into()))
        );
        assert_eq!(parse_entry(b"nothex name\n"), None);
    }

    #[test]
    fn log_object_names() {
        use LogObject::*;
        assert_eq!(
            LogObject::parse("v1/log/tile/0/x001/x234/067.p/8"),
            Some(HashTile {
                level: 0,
                index: 1234067,
                width: 8
            })
        );
        assert_eq!(
            LogObject::parse("v1/log/tile/entries/005"),
            Some(EntryBundle {
                index: 5,
                width: 256
            })
        );
        assert_eq!(
            LogObject::parse(&checkpoint_object(42)),
            Some(Checkpoint { size: 42 })
        );
        for bad in [
            "v1/log/tile/0/5",
            "v1/log/tile/0/x000/005",
            "v1/log/tile/00/005",
            "v1/log/tile/0/005.p/0",
            "v1/log/tile/0/005.p/256",
            "v1/log/tile/0/005.p/08",
            "v1/log/checkpoint/42",
            "v1/log/other",
        ] {
            assert_eq!(LogObject::parse(bad), None, "{bad}");
        }
    }
}
