//! Key files on disk: the I/O around `cairn_format::keys`' parsing.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use cairn_format::{PublicKey, SigningKey};

/// Reads a secret key file (from `cairn keygen`).
pub fn load_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    SigningKey::parse(&text, &path.display().to_string()).context("create one with `cairn keygen`")
}

/// Reads a trusted public key file; malformed or weak keys are refused.
pub fn load_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    PublicKey::parse(&text, &path.display().to_string())
        .context("each --pubkey must be a public key file written by `cairn keygen`")
}

/// Writes `dir/signing.key` (mode 0600, created exclusively) and `dir/signing.pub`.
pub fn write_keypair(dir: &Path, key: &SigningKey) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let secret = dir.join("signing.key");
    let public = dir.join("signing.pub");
    for p in [&secret, &public] {
        if p.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key (move it away or choose another --out)",
                p.display()
            );
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let write = |p: &Path| format!("cannot write key file {}", p.display());
    let mut f = opts.open(&secret).with_context(|| write(&secret))?;
    f.write_all(key.to_file_string().as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| write(&secret))?;
    std::fs::write(&public, key.public().to_file_string()).with_context(|| write(&public))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pairs_are_written_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed([7; 32]);
        write_keypair(dir.path(), &key).unwrap();
        let loaded = load_signing_key(&dir.path().join("signing.key")).unwrap();
        let public = load_public_key(&dir.path().join("signing.pub")).unwrap();
        assert_eq!(loaded.key_id(), public.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("signing.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = write_keypair(dir.path(), &key).unwrap_err().to_string();
        assert!(again.contains("refusing to overwrite"), "{again}");
    }
}
