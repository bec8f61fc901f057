//! Write-once object storage for sealed segments.
//!
//! This crate is the only one that touches `object_store`, the filesystem of a vault, or S3.
//! Its contract: objects are created, never replaced or deleted. [`Store::create`] is a
//! conditional create (`If-None-Match: *` on S3, an exclusive hard link locally); finding
//! identical bytes already there is success (an idempotent retry), finding other bytes is
//! [`StoreError::Conflict`]. On S3 the bucket must have Object Lock enabled with COMPLIANCE
//! retention (bucket default or per object), checked at open and after every write.
//!
//! It knows nothing about the cairn format (names are opaque strings) and must never depend
//! on the format, sealer, verify or query crates.

mod local;
mod s3;

use bytes::Bytes;

pub use local::LocalStore;
pub use s3::S3Store;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0:?} is not valid: use a directory path or s3://bucket[/prefix]")]
    InvalidUrl(String),
    #[error(
        "bucket {bucket:?} has object lock disabled; create it with object lock enabled (e.g. `aws s3api create-bucket --bucket {bucket} --object-lock-enabled-for-bucket`)"
    )]
    ObjectLockDisabled { bucket: String },
    #[error(
        "bucket {bucket:?} has no default COMPLIANCE retention ({found}); set a COMPLIANCE default retention on the bucket or pass a per-object retention (--retention-days)"
    )]
    NoRetention { bucket: String, found: String },
    #[error(
        "object {object:?} already exists with different bytes; refusing to replace a sealed object (this needs investigation: run `cairn verify`)"
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
    #[error(
        "{0:?} is not a valid object name (relative, '/'-separated, no empty, '.' or '..' parts)"
    )]
    InvalidName(String),
    #[error("object {object:?} is not protected by COMPLIANCE retention after writing: {message}")]
    NotLocked { object: String, message: String },
    #[error("{op} {object:?} in {store}: {message}")]
    Backend {
        op: &'static str,
        object: String,
        store: String,
        message: String,
    },
}

/// Where a store lives, and its write-time options.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// S3 only: apply COMPLIANCE retention of this many days to each object written, instead
    /// of relying on the bucket's default retention.
    pub retention_days: Option<u32>,
    /// Open for reading only (verification): skip the Object Lock checks a writer needs.
    pub read_only: bool,
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
    pub is_latest: bool,
    /// A delete marker rather than data.
    pub delete_marker: bool,
    pub last_modified: String,
    pub size: u64,
}

/// Result of a successful [`Store::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The S3 version id of the object holding these bytes (`None` locally).
    pub version_id: Option<String>,
    /// The object already existed with identical bytes (an idempotent retry).
    pub already_existed: bool,
}

pub enum Store {
    Local(LocalStore),
    S3(S3Store),
}

impl Store {
    /// Opens `url`: `s3://bucket[/prefix]` (endpoint, region and credentials from the AWS_*
    /// environment) or a local directory (created if missing). S3 buckets are checked for
    /// Object Lock and retention here.
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            Ok(Store::S3(S3Store::open(rest, opts).await?))
        } else if url.contains("://") {
            Err(StoreError::InvalidUrl(url.to_string()))
        } else {
            Ok(Store::Local(LocalStore::open(url, opts.read_only)?))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Store::Local(l) => l.describe(),
            Store::S3(s) => s.describe(),
        }
    }

    /// Does this store keep object versions (so shadowing can be checked)?
    pub fn is_versioned(&self) -> bool {
        matches!(self, Store::S3(_))
    }

    /// Creates `name` with `bytes` unless it exists. See the crate docs for the contract.
    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StoreError> {
        match self {
            Store::Local(l) => l.create(name, bytes).await,
            Store::S3(s) => s.create(name, bytes).await,
        }
    }

    /// Reads `name`, at `version` when given (S3).
    pub async fn get(&self, name: &str, version: Option<&str>) -> Result<Bytes, StoreError> {
        match self {
            Store::Local(l) => l.get(name).await,
            Store::S3(s) => s.get(name, version).await,
        }
    }

    /// The bytes of `name` as first written, and their S3 version id: on S3 the oldest
    /// version (a later one can only shadow it), confirmed to be under COMPLIANCE retention.
    pub async fn read_sealed(&self, name: &str) -> Result<(Bytes, Option<String>), StoreError> {
        match self {
            Store::Local(l) => Ok((l.get(name).await?, None)),
            Store::S3(s) => {
                let oldest = s
                    .versions(name)
                    .await?
                    .into_iter()
                    .find(|v| v.name == name && !v.delete_marker)
                    .ok_or_else(|| StoreError::NotFound {
                        object: name.to_string(),
                    })?;
                s.check_locked(name, &oldest.version_id).await?;
                let bytes = s.get(name, Some(&oldest.version_id)).await?;
                Ok((bytes, Some(oldest.version_id)))
            }
        }
    }

    /// Current objects whose names start with `prefix`, sorted by name. A local store also
    /// lists links and special files as such (see [`EntryKind`]), without following them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match self {
            Store::Local(l) => l.list(prefix).await,
            Store::S3(s) => s.list(prefix).await,
        }
    }

    /// Every version and delete marker under `prefix`, oldest first per name; `None` for
    /// stores without versions.
    pub async fn versions(&self, prefix: &str) -> Result<Option<Vec<ObjectVersion>>, StoreError> {
        match self {
            Store::Local(_) => Ok(None),
            Store::S3(s) => s.versions(prefix).await.map(Some),
        }
    }
}
