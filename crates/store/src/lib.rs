//! Write-once object storage for sealed segments.
//!
//! This crate is the only one that touches `object_store`, the filesystem of a vault, or S3.
//! Readers and writers are different types: a [`StoreReader`] (the verifier, and later the
//! query service and the auditor toolkit) has no way to write at all; a [`StoreWriter`] (the
//! sealer only) adds [`StoreWriter::create`], a conditional create (`If-None-Match: *` on S3,
//! an exclusive hard link locally). Finding identical bytes already there is success (an
//! idempotent retry), finding other bytes is [`StoreError::Conflict`]; nothing is ever replaced
//! or deleted. On S3 a writer requires Object Lock with COMPLIANCE retention (bucket default or
//! per object), checked at open and after every write.
//!
//! Errors say whether retrying can help ([`StoreError::is_transient`]): an unreachable or slow
//! backend is transient, a conflict, a missing bucket, a lock misconfiguration or a permission
//! problem is not. Messages name the object and the store, never a command-line flag.
//!
//! It knows nothing about the cairn format (names are opaque strings) and must never depend
//! on the format, sealer, verify or query crates.

mod local;
mod s3;

use std::ops::Range;

use bytes::Bytes;

pub use local::LocalStore;
pub use s3::S3Store;

/// Any underlying error, kept as the source of a [`StoreError::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong in a backend, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The service could not be reached or answered with a server error: retry later.
    Unavailable,
    /// The request took too long: retry later.
    Timeout,
    /// Credentials or permissions refuse the operation: retrying will not help.
    Unauthorized,
    /// The store does not exist or is set up wrongly (a missing bucket or directory, an
    /// invalid configuration): retrying will not help.
    Misconfigured,
    /// A local I/O error (a full or failing disk): retry later.
    Io,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Unavailable => "unavailable",
            BackendKind::Timeout => "timed out",
            BackendKind::Unauthorized => "not authorized",
            BackendKind::Misconfigured => "misconfigured",
            BackendKind::Io => "I/O error",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0:?} is not valid: use a directory path or s3://bucket[/prefix]")]
    InvalidUrl(String),
    #[error(
        "{0:?} is not a valid object name (relative, '/'-separated, no empty, '.' or '..' parts)"
    )]
    InvalidName(String),
    #[error(
        "bucket {bucket:?} has object lock disabled; a cairn store needs a bucket created with object lock enabled (e.g. `aws s3api create-bucket --bucket {bucket} --object-lock-enabled-for-bucket`)"
    )]
    ObjectLockDisabled { bucket: String },
    #[error(
        "bucket {bucket:?} has no default COMPLIANCE retention ({found}); set a COMPLIANCE default retention on the bucket, or configure a per-object retention"
    )]
    NoRetention { bucket: String, found: String },
    #[error(
        "object {object:?} already exists with different bytes; refusing to replace a sealed object (this needs investigation)"
    )]
    Conflict { object: String },
    #[error("object {object:?} not found")]
    NotFound { object: String },
    /// A local store holds regular files and directories only: the object is, or is reached
    /// through, a symbolic link or another special file, which is never followed.
    #[error(
        "object {object:?} is not a regular file in the vault: {found} is in its place (a write-once vault never holds links or special files; nothing was followed)"
    )]
    NotRegular { object: String, found: String },
    #[error("object {object:?} is not protected by COMPLIANCE retention after writing: {message}")]
    NotLocked { object: String, message: String },
    #[error("{op} {object:?} in {store} failed ({kind}): {source}")]
    Backend {
        op: &'static str,
        object: String,
        store: String,
        kind: BackendKind,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Can the same operation succeed if retried later? Only an unavailable, slow or locally
    /// failing backend; never a conflict, a missing object, a lock or permission problem.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                kind: BackendKind::Unavailable | BackendKind::Timeout | BackendKind::Io,
                ..
            }
        )
    }
}

/// How a writer creates objects.
#[derive(Clone, Debug, Default)]
pub struct WriterOptions {
    /// S3 only: apply COMPLIANCE retention of this many days to each object written, instead
    /// of relying on the bucket's default retention.
    pub retention_days: Option<u32>,
}

/// What a listed entry is. S3 objects are always [`EntryKind::Regular`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (local) or an object (S3).
    Regular,
    /// A symbolic link in a local store (to a file or a directory); never followed.
    Symlink,
    /// A FIFO, socket or device in a local store; never opened.
    Special,
}

/// An object as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name relative to the store root.
    pub name: String,
    pub size: u64,
    pub kind: EntryKind,
}

/// One version of an object (S3 stores only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub name: String,
    pub version_id: String,
    /// A delete marker rather than data.
    pub delete_marker: bool,
    pub last_modified: String,
    pub size: u64,
}

/// The Object Lock evidence of an object's sealed version (S3 stores only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockEvidence {
    pub version_id: String,
    /// `COMPLIANCE`, `GOVERNANCE` or `none`.
    pub mode: String,
    /// RFC 3339, as S3 reports it (empty when there is none).
    pub retain_until: String,
}

/// Result of a successful [`StoreWriter::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The S3 version id of the object holding these bytes (`None` locally).
    pub version_id: Option<String>,
    /// The object already existed with identical bytes (an idempotent retry).
    pub already_existed: bool,
}

enum Backend {
    Local(LocalStore),
    S3(S3Store),
}

/// Read access to a store: everything but writing.
pub struct StoreReader {
    backend: Backend,
}

/// Read and conditional-create access to a store. Only the sealer holds one.
pub struct StoreWriter {
    reader: StoreReader,
}

enum Url<'a> {
    Local(&'a str),
    S3(&'a str),
}

fn parse_url(url: &str) -> Result<Url<'_>, StoreError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        Ok(Url::S3(rest))
    } else if url.contains("://") {
        Err(StoreError::InvalidUrl(url.to_string()))
    } else {
        Ok(Url::Local(url))
    }
}

impl StoreReader {
    /// Opens `url` for reading: `s3://bucket[/prefix]` (endpoint, region and credentials from
    /// the AWS_* environment) or an existing local directory (never created: a reader must not
    /// invent an empty store out of a mistyped path).
    pub async fn open(url: &str) -> Result<StoreReader, StoreError> {
        let backend = match parse_url(url)? {
            Url::S3(rest) => Backend::S3(S3Store::open(rest, None, false).await?),
            Url::Local(dir) => Backend::Local(LocalStore::open(dir, true)?),
        };
        Ok(StoreReader { backend })
    }

    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(l) => l.describe(),
            Backend::S3(s) => s.describe(),
        }
    }

    /// Does this store keep object versions (so shadowing can be checked, and a manifest's
    /// `version_id` means something)?
    pub fn is_versioned(&self) -> bool {
        matches!(self.backend, Backend::S3(_))
    }

    /// Reads `name`, at `version` when given (S3; ignored locally).
    pub async fn get(&self, name: &str, version: Option<&str>) -> Result<Bytes, StoreError> {
        match &self.backend {
            Backend::Local(l) => l.get(name).await,
            Backend::S3(s) => s.get(name, version, None).await,
        }
    }

    /// Reads the bytes `range` of `name` (a Parquet footer, a column chunk), at `version` when
    /// given. A range past the end is cut at the end.
    pub async fn get_range(
        &self,
        name: &str,
        version: Option<&str>,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        match &self.backend {
            Backend::Local(l) => l.get_range(name, range).await,
            Backend::S3(s) => s.get(name, version, Some(range)).await,
        }
    }

    /// The bytes of `name` as first written, and their S3 version id: on S3 the oldest
    /// version (a later one can only shadow it), confirmed to be under COMPLIANCE retention.
    pub async fn read_sealed(&self, name: &str) -> Result<(Bytes, Option<String>), StoreError> {
        match &self.backend {
            Backend::Local(l) => Ok((l.get(name).await?, None)),
            Backend::S3(s) => {
                let oldest = sealed_version(s, name).await?;
                s.check_locked(name, &oldest.version_id).await?;
                let bytes = s.get(name, Some(&oldest.version_id), None).await?;
                Ok((bytes, Some(oldest.version_id)))
            }
        }
    }

    /// The sealed (oldest) version of `name` and its Object Lock state, for audit bundles;
    /// `None` on stores without versions.
    pub async fn lock_evidence(&self, name: &str) -> Result<Option<LockEvidence>, StoreError> {
        match &self.backend {
            Backend::Local(_) => Ok(None),
            Backend::S3(s) => {
                let oldest = sealed_version(s, name).await?;
                let (mode, retain_until) = s.lock_state(name, &oldest.version_id).await?;
                Ok(Some(LockEvidence {
                    version_id: oldest.version_id,
                    mode,
                    retain_until,
                }))
            }
        }
    }

    /// Current objects whose names start with `prefix`, sorted by name. A local store also
    /// lists links and special files as such (see [`EntryKind`]), without following them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match &self.backend {
            Backend::Local(l) => l.list(prefix).await,
            Backend::S3(s) => s.list(prefix).await,
        }
    }

    /// Every version and delete marker under `prefix`, oldest first per name; `None` for
    /// stores without versions.
    pub async fn versions(&self, prefix: &str) -> Result<Option<Vec<ObjectVersion>>, StoreError> {
        match &self.backend {
            Backend::Local(_) => Ok(None),
            Backend::S3(s) => s.versions(prefix).await.map(Some),
        }
    }
}

/// The sealed version of `name` on S3: its oldest version that is not a delete marker.
async fn sealed_version(s: &S3Store, name: &str) -> Result<ObjectVersion, StoreError> {
    s.versions(name)
        .await?
        .into_iter()
        .find(|v| v.name == name && !v.delete_marker)
        .ok_or_else(|| StoreError::NotFound {
            object: name.to_string(),
        })
}

impl StoreWriter {
    /// Opens `url` for sealing: a local directory (created if missing) or an S3 bucket, which
    /// must have Object Lock enabled and a default COMPLIANCE retention unless
    /// `opts.retention_days` sets one per object.
    pub async fn open(url: &str, opts: &WriterOptions) -> Result<StoreWriter, StoreError> {
        let backend = match parse_url(url)? {
            Url::S3(rest) => Backend::S3(S3Store::open(rest, opts.retention_days, true).await?),
            Url::Local(dir) => Backend::Local(LocalStore::open(dir, false)?),
        };
        Ok(StoreWriter {
            reader: StoreReader { backend },
        })
    }

    /// Creates `name` with `bytes` unless it exists. See the crate docs for the contract.
    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StoreError> {
        match &self.reader.backend {
            Backend::Local(l) => l.create(name, bytes).await,
            Backend::S3(s) => s.create(name, bytes).await,
        }
    }

    /// This store, for reading only.
    pub fn reader(&self) -> &StoreReader {
        &self.reader
    }
}

impl std::ops::Deref for StoreWriter {
    type Target = StoreReader;
    fn deref(&self) -> &StoreReader {
        &self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unavailable_slow_or_failing_backend_is_worth_retrying() {
        let backend = |kind| StoreError::Backend {
            op: "read",
            object: "x".into(),
            store: "s".into(),
            kind,
            source: "boom".into(),
        };
        assert!(backend(BackendKind::Unavailable).is_transient());
        assert!(backend(BackendKind::Timeout).is_transient());
        assert!(backend(BackendKind::Io).is_transient());
        assert!(!backend(BackendKind::Unauthorized).is_transient());
        assert!(!backend(BackendKind::Misconfigured).is_transient());
        for permanent in [
            StoreError::Conflict { object: "x".into() },
            StoreError::NotFound { object: "x".into() },
            StoreError::ObjectLockDisabled { bucket: "b".into() },
            StoreError::InvalidUrl("u".into()),
        ] {
            assert!(!permanent.is_transient(), "{permanent}");
        }
        let e = backend(BackendKind::Timeout);
        assert_eq!(e.to_string(), "read \"x\" in s failed (timed out): boom");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[tokio::test]
    async fn a_reader_does_not_create_a_store_and_reads_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(StoreReader::open(missing.to_str().unwrap()).await.is_err());
        assert!(!missing.exists());
        let w = StoreWriter::open(dir.path().to_str().unwrap(), &WriterOptions::default())
            .await
            .unwrap();
        w.create("a/b.bin", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let r = StoreReader::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            &r.get_range("a/b.bin", None, 2..5).await.unwrap()[..],
            b"234"
        );
        assert_eq!(
            &r.get_range("a/b.bin", None, 8..20).await.unwrap()[..],
            b"89"
        );
        assert!(matches!(
            r.get_range("a/none", None, 0..1).await.unwrap_err(),
            StoreError::NotFound { .. }
        ));
    }
}
