//! Key set files: trusted public keys with validity windows (docs/AUDITING.md, "Key sets").
//!
//! ```toml
//! [[key]]
//! file = "keys/sealer-2026.pub"          # a public key file, relative to this file
//! not_before = "2026-01-01T00:00:00Z"     # optional
//! not_after = "2027-01-01T00:00:00Z"      # optional: retired from this time on
//! revoked_at = "2026-06-01T00:00:00Z"     # optional: compromised from this time on
//! comment = "prod sealer, first key"      # optional
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_format::PublicKey;
use cairn_format::event::parse_rfc3339_micros;
use cairn_verify::KeyWindow;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetFile {
    key: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    file: PathBuf,
    not_before: Option<String>,
    not_after: Option<String>,
    revoked_at: Option<String>,
    #[allow(dead_code)]
    comment: Option<String>,
}

/// The keys of the key set at `path`, and their windows.
pub fn load(path: &Path) -> anyhow::Result<(Vec<PublicKey>, Vec<KeyWindow>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key set {}", path.display()))?;
    let set: KeySetFile =
        toml::from_str(&text).with_context(|| format!("key set {}", path.display()))?;
    if set.key.is_empty() {
        bail!("key set {} lists no [[key]]", path.display());
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut keys = Vec::new();
    let mut windows = Vec::new();
    for (i, k) in set.key.iter().enumerate() {
        let at = |v: &Option<String>, field: &str| -> anyhow::Result<Option<i64>> {
            v.as_deref()
                .map(parse_rfc3339_micros)
                .transpose()
                .map_err(|e| {
                    anyhow::anyhow!("key set {}, key {}: {field}: {e}", path.display(), i + 1)
                })
        };
        let key = crate::keyfile::load_public_key(&base.join(&k.file))?;
        let (not_before, not_after, revoked) = (
            at(&k.not_before, "not_before")?,
            at(&k.not_after, "not_after")?,
            at(&k.revoked_at, "revoked_at")?,
        );
        let (until, ends) = match (not_after, revoked) {
            (Some(a), Some(r)) if r <= a => (Some(r), "revoked"),
            (Some(a), _) => (Some(a), "expired"),
            (None, Some(r)) => (Some(r), "revoked"),
            (None, None) => (None, "expired"),
        };
        if let (Some(nb), Some(u)) = (not_before, until)
            && nb >= u
        {
            bail!(
                "key set {}, key {}: its window is empty (not_before is not before its end)",
                path.display(),
                i + 1
            );
        }
        windows.push(KeyWindow {
            key_id: key.key_id(),
            not_before,
            until,
            ends,
        });
        keys.push(key);
    }
    Ok((keys, windows))
}
