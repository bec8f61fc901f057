//! A local write-once directory: the embedded default store.
//!
//! Objects are written to a temporary file (created read-only), fsynced, then hard-linked into
//! place (which fails if the name exists, so nothing is ever replaced), and the directory is
//! fsynced. There is no delete. File permissions are a guard against accidents, not a security
//! boundary: an administrator can still change files, which `cairn verify` detects.
//!
//! A vault holds regular files and directories only (docs/FORMAT.md §7). Every path below the
//! root is resolved one component at a time relative to an open directory (`openat` with
//! `O_NOFOLLOW`), so a symbolic link anywhere below the root — to a file or to a directory — is
//! never followed for reading, writing or listing: reads and writes through one fail with
//! [`StoreError::NotRegular`], and listings report it as an [`EntryKind::Symlink`] entry. The
//! root itself, as the user names it, may be a link: it is resolved once at open.

use std::io::{Read, Write};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use bytes::Bytes;
use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::{BackendKind, Created, EntryKind, ObjectInfo, StoreError};

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_err(op: &'static str, object: &str, root: &std::path::Path, e: std::io::Error) -> StoreError {
    // A vault that vanished after it was opened (an unmounted volume) may come back: only a
    // permission problem is permanent.
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied => BackendKind::Unauthorized,
        _ => BackendKind::Io,
    };
    StoreError::Backend {
        op,
        object: object.to_string(),
        store: root.display().to_string(),
        kind,
        source: Box::new(e),
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('.'));
    if bad {
        return Err(StoreError::InvalidName(name.to_string()));
    }
    Ok(())
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// Why a path below the root could not be used.
enum PathError {
    NotFound,
    /// A component is a symbolic link or another non-directory where a directory is needed,
    /// or the object itself is not a regular file; `.0` says what was found.
    NotRegular(String),
    Io(std::io::Error),
}

impl From<Errno> for PathError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::NOENT => PathError::NotFound,
            Errno::LOOP => PathError::NotRegular("a symbolic link".into()),
            Errno::NOTDIR => PathError::NotRegular("a file where a directory belongs".into()),
            e => PathError::Io(e.into()),
        }
    }
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Directory => "a directory",
        FileType::RegularFile => "a regular file",
        FileType::Unknown => "an object of unknown type",
    }
}

impl LocalStore {
    /// Opens `dir`, creating it unless `read_only` (a reader must not invent an empty store
    /// out of a mistyped path). The root is canonicalised here, once.
    pub fn open(dir: &str, read_only: bool) -> Result<Self, StoreError> {
        let given = PathBuf::from(dir);
        if read_only {
            if !given.is_dir() {
                return Err(StoreError::Backend {
                    op: "open",
                    object: String::new(),
                    store: given.display().to_string(),
                    kind: BackendKind::Misconfigured,
                    source: "no such directory".into(),
                });
            }
        } else {
            std::fs::create_dir_all(&given).map_err(|e| io_err("open", "", &given, e))?;
        }
        let root = given
            .canonicalize()
            .map_err(|e| io_err("open", "", &given, e))?;
        Ok(LocalStore { root })
    }

    pub fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    fn open_root(&self) -> Result<OwnedFd, StoreError> {
        rustix::fs::openat(CWD, &self.root, DIR_FLAGS, Mode::empty())
            .map_err(|e| io_err("open", "", &self.root, e.into()))
    }

    fn path_err(&self, op: &'static str, name: &str, e: PathError) -> StoreError {
        match e {
            PathError::NotFound => StoreError::NotFound {
                object: name.to_string(),
            },
            PathError::NotRegular(found) => StoreError::NotRegular {
                object: name.to_string(),
                found,
            },
            PathError::Io(e) => io_err(op, name, &self.root, e),
        }
    }

    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StoreError> {
        check_name(name)?;
        let root = self.open_root()?;
        let this = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || this.create_blocking(&root, &name, &bytes))
            .await
            .expect("local create task panicked")
    }

    pub async fn get(&self, name: &str) -> Result<Bytes, StoreError> {
        check_name(name)?;
        let root = self.open_root()?;
        let this = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let (dir, file) = split(&name);
            let read = || -> Result<Vec<u8>, PathError> {
                let d = open_dir(&root, &dir, false)?;
                read_regular(&d, file, None)
            };
            read()
                .map(Bytes::from)
                .map_err(|e| this.path_err("read", &name, e))
        })
        .await
        .expect("local read task panicked")
    }

    /// Reads the bytes `range` of `name` (cut at the end of the file).
    pub async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        check_name(name)?;
        let root = self.open_root()?;
        let this = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let (dir, file) = split(&name);
            let read = || -> Result<Vec<u8>, PathError> {
                let d = open_dir(&root, &dir, false)?;
                read_regular(&d, file, Some(range))
            };
            read()
                .map(Bytes::from)
                .map_err(|e| this.path_err("read", &name, e))
        })
        .await
        .expect("local read task panicked")
    }

    /// Every entry whose name starts with `prefix`, sorted by name: regular files, and also
    /// symbolic links, FIFOs, sockets and devices (as such, never followed). Directories are
    /// walked, not listed. The directory part of `prefix` must not pass through a link.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.open_root()?;
        let this = self.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let start: Vec<&str> = match prefix.rfind('/') {
                Some(i) => prefix[..i].split('/').collect(),
                None => Vec::new(),
            };
            let dir = match open_dir(&root, &start, false) {
                Ok(d) => d,
                Err(PathError::NotFound) => return Ok(Vec::new()),
                Err(e) => return Err(this.path_err("list", &prefix, e)),
            };
            let base = start.iter().map(|c| format!("{c}/")).collect::<String>();
            let mut out = Vec::new();
            walk(&dir, &base, &mut out).map_err(|e| io_err("list", &prefix, &this.root, e))?;
            out.retain(|o| o.name.starts_with(&prefix));
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
        .expect("local list task panicked")
    }

    fn create_blocking(
        &self,
        root: &OwnedFd,
        name: &str,
        bytes: &[u8],
    ) -> Result<Created, StoreError> {
        let err = |op, e: std::io::Error| io_err(op, name, &self.root, e);
        let (dir_parts, file) = split(name);
        let dir = open_dir(root, &dir_parts, true).map_err(|e| self.path_err("create", name, e))?;
        if let Some(c) = self.compare_existing(&dir, name, file, bytes)? {
            return c;
        }
        let tmp = format!(
            ".{file}.tmp-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let result = (|| {
            // Created read-only: the open descriptor may still write it.
            let fd = rustix::fs::openat(
                &dir,
                tmp.as_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::RUSR | Mode::RGRP | Mode::ROTH,
            )
            .map_err(|e| err("create temporary file for", e.into()))?;
            let mut f = std::fs::File::from(fd);
            f.write_all(bytes).map_err(|e| err("write", e))?;
            f.sync_all().map_err(|e| err("fsync", e))?;
            match rustix::fs::linkat(&dir, tmp.as_str(), &dir, file, AtFlags::empty()) {
                Ok(()) => Ok(false),
                Err(Errno::EXIST) => Ok(true),
                Err(e) => Err(err("link into place", e.into())),
            }
        })();
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        if result? {
            // Lost a race with another writer of the same name: same rule as above.
            return match self.compare_existing(&dir, name, file, bytes)? {
                Some(c) => c,
                None => Err(StoreError::Conflict {
                    object: name.to_string(),
                }),
            };
        }
        rustix::fs::fsync(&dir).map_err(|e| err("fsync directory of", e.into()))?;
        Ok(Created {
            version_id: None,
            already_existed: false,
        })
    }

    /// `None`: no such file. `Some(Ok)`: identical bytes. `Some(Err(Conflict))`: other bytes.
    fn compare_existing(
        &self,
        dir: &OwnedFd,
        name: &str,
        file: &str,
        bytes: &[u8],
    ) -> Result<Option<Result<Created, StoreError>>, StoreError> {
        match read_regular(dir, file, None) {
            Ok(existing) if existing == bytes => Ok(Some(Ok(Created {
                version_id: None,
                already_existed: true,
            }))),
            Ok(_) => Ok(Some(Err(StoreError::Conflict {
                object: name.to_string(),
            }))),
            Err(PathError::NotFound) => Ok(None),
            Err(e) => Err(self.path_err("read existing", name, e)),
        }
    }
}

/// `a/b/c.x` → (`[a, b]`, `c.x`).
fn split(name: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = name.split('/').collect();
    let file = parts.pop().expect("split yields at least one part");
    (parts, file)
}

/// Opens `root/parts…` one component at a time without following links, creating missing
/// directories when `create`.
fn open_dir(root: &OwnedFd, parts: &[&str], create: bool) -> Result<OwnedFd, PathError> {
    let mut cur = rustix::io::dup(root).map_err(PathError::from)?;
    for p in parts {
        let next = match rustix::fs::openat(&cur, *p, DIR_FLAGS, Mode::empty()) {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&cur, *p, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::fs::openat(&cur, *p, DIR_FLAGS, Mode::empty())?
            }
            r => r?,
        };
        cur = next;
    }
    Ok(cur)
}

/// Reads `file` in `dir` (all of it, or `range`) if it is a regular file; a link is not
/// followed, and a FIFO is not waited on (`O_NONBLOCK`, then checked before reading).
fn read_regular(
    dir: &OwnedFd,
    file: &str,
    range: Option<Range<u64>>,
) -> Result<Vec<u8>, PathError> {
    let fd = rustix::fs::openat(
        dir,
        file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t == FileType::Directory {
        return Err(PathError::NotFound); // directories are not objects
    }
    if t != FileType::RegularFile {
        return Err(PathError::NotRegular(kind_name(t).into()));
    }
    let size = st.st_size as u64;
    let mut f = std::fs::File::from(fd);
    let Some(range) = range else {
        let mut out = Vec::with_capacity(size as usize);
        f.read_to_end(&mut out).map_err(PathError::Io)?;
        return Ok(out);
    };
    let end = range.end.min(size);
    let mut out = vec![0; end.saturating_sub(range.start) as usize];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut out, range.start).map_err(PathError::Io)?;
    Ok(out)
}

/// Lists `dir` recursively into `out`, names prefixed with `base` (which ends in `/` or is
/// empty). Directories are opened relative to their parent with `O_NOFOLLOW`.
fn walk(dir: &OwnedFd, base: &str, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let raw = entry.file_name();
        if raw.to_bytes() == b"." || raw.to_bytes() == b".." {
            continue;
        }
        let fname = String::from_utf8_lossy(raw.to_bytes()).into_owned();
        let name = format!("{base}{fname}");
        let mut t = entry.file_type();
        let mut size = 0;
        if matches!(t, FileType::Unknown | FileType::RegularFile) {
            let st = rustix::fs::statat(dir, raw, AtFlags::SYMLINK_NOFOLLOW)?;
            t = FileType::from_raw_mode(st.st_mode);
            size = st.st_size as u64;
        }
        let kind = match t {
            FileType::Directory => {
                match rustix::fs::openat(dir, raw, DIR_FLAGS, Mode::empty()) {
                    Ok(sub) => walk(&sub, &format!("{name}/"), out)?,
                    // Replaced by a link while we looked: report it as one.
                    Err(Errno::LOOP | Errno::NOTDIR) => out.push(ObjectInfo {
                        name,
                        size: 0,
                        kind: EntryKind::Symlink,
                    }),
                    Err(Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            FileType::RegularFile => EntryKind::Regular,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Special,
        };
        out.push(ObjectInfo { name, size, kind });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
