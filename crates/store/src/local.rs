//! A local write-once directory: the embedded default store.
//!
//! Objects are written to a temporary file, fsynced, then hard-linked into place (which fails
//! if the name exists, so nothing is ever replaced), made read-only, and the directory is
//! fsynced. There is no delete. File permissions are a guard against accidents, not a
//! security boundary: an administrator can still change files, which `cairn verify` detects.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{Created, ObjectInfo, StoreError};

pub struct LocalStore {
    root: PathBuf,
}

fn io_err(op: &'static str, object: &str, root: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend {
        op,
        object: object.to_string(),
        store: root.display().to_string(),
        message: e.to_string(),
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('.'));
    if bad {
        return Err(StoreError::InvalidUrl(name.to_string()));
    }
    Ok(())
}

impl LocalStore {
    /// Opens `dir`, creating it unless `read_only` (a reader must not invent an empty store
    /// out of a mistyped path).
    pub fn open(dir: &str, read_only: bool) -> Result<Self, StoreError> {
        let root = PathBuf::from(dir);
        if read_only {
            if !root.is_dir() {
                return Err(StoreError::Backend {
                    op: "open",
                    object: String::new(),
                    store: root.display().to_string(),
                    message: "no such directory".into(),
                });
            }
        } else {
            std::fs::create_dir_all(&root).map_err(|e| io_err("open", "", &root, e))?;
        }
        Ok(LocalStore { root })
    }

    pub fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StoreError> {
        check_name(name)?;
        let root = self.root.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || create_blocking(&root, &name, &bytes))
            .await
            .expect("local create task panicked")
    }

    pub async fn get(&self, name: &str) -> Result<Bytes, StoreError> {
        check_name(name)?;
        let path = self.root.join(name);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
                object: name.to_string(),
            }),
            Err(e) => Err(io_err("read", name, &self.root, e)),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, &root, &mut out).map_err(|e| io_err("list", &prefix, &root, e))?;
            out.retain(|o| o.name.starts_with(&prefix));
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
        .expect("local list task panicked")
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(fname) = file_name.to_str() else {
            continue;
        };
        if fname.starts_with('.') {
            continue; // temporary files of an interrupted write
        }
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else if ty.is_file() {
            let rel = path.strip_prefix(root).expect("walk stays under root");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(ObjectInfo {
                name,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

fn create_blocking(root: &Path, name: &str, bytes: &[u8]) -> Result<Created, StoreError> {
    let err = |op, e| io_err(op, name, root, e);
    let path = root.join(name);
    let dir = path.parent().expect("object path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| err("create directory for", e))?;
    if let Some(c) = compare_existing(&path, bytes).map_err(|e| err("read existing", e))? {
        return c.map_err(|()| StoreError::Conflict {
            object: name.to_string(),
        });
    }
    let file_name = path
        .file_name()
        .expect("object has a file name")
        .to_string_lossy();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| err("create temporary file for", e))?;
        f.write_all(bytes).map_err(|e| err("write", e))?;
        f.sync_all().map_err(|e| err("fsync", e))?;
        let mut perms = f.metadata().map_err(|e| err("stat", e))?.permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&tmp, perms).map_err(|e| err("make read-only", e))?;
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Some(())),
            Err(e) => Err(err("link into place", e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    if result? == Some(()) {
        // Lost a race with another writer of the same name: same rule as above.
        return match compare_existing(&path, bytes).map_err(|e| err("read existing", e))? {
            Some(Ok(c)) => Ok(c),
            _ => Err(StoreError::Conflict {
                object: name.to_string(),
            }),
        };
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err("fsync directory of", e))?;
    Ok(Created {
        version_id: None,
        already_existed: false,
    })
}

/// `None`: no such file. `Some(Ok)`: identical bytes. `Some(Err)`: different bytes.
#[allow(clippy::type_complexity)]
fn compare_existing(path: &Path, bytes: &[u8]) -> std::io::Result<Option<Result<Created, ()>>> {
    match std::fs::read(path) {
        Ok(existing) if existing == bytes => Ok(Some(Ok(Created {
            version_id: None,
            already_existed: true,
        }))),
        Ok(_) => Ok(Some(Err(()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_is_exclusive_idempotent_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path().to_str().unwrap(), false).unwrap();
        let c = s
            .create("a/b/x.bin", Bytes::from_static(b"one"))
            .await
            .unwrap();
        assert!(!c.already_existed);
        let again = s
            .create("a/b/x.bin", Bytes::from_static(b"one"))
            .await
            .unwrap();
        assert!(again.already_existed);
        let e = s
            .create("a/b/x.bin", Bytes::from_static(b"two"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        assert_eq!(&s.get("a/b/x.bin").await.unwrap()[..], b"one");
        let meta = std::fs::metadata(dir.path().join("a/b/x.bin")).unwrap();
        assert!(meta.permissions().readonly());
        let listed = s.list("a/").await.unwrap();
        assert_eq!(
            listed,
            vec![ObjectInfo {
                name: "a/b/x.bin".into(),
                size: 3
            }]
        );
        assert!(matches!(
            s.get("a/nope").await.unwrap_err(),
            StoreError::NotFound { .. }
        ));
        assert!(s.create("../escape", Bytes::new()).await.is_err());
    }
}
