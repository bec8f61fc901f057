//! What verification reports: findings, their classes and severities, per-stream summaries,
//! and the limits of an intact verdict (docs/FORMAT.md §8.1 and §8.5).

use cairn_format::StreamId;
use serde::Serialize;

/// The class of a problem (docs/FORMAT.md §8.1). Serialised in snake_case, the same name the
/// human report, `--json`, the README and FORMAT.md use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The Parquet file's bytes differ from the hash/size its manifest signs.
    ModifiedFile,
    /// A manifest's own Parquet file is not in the store.
    MissingFile,
    /// A manifest was altered: not two lines, an unparseable body without a valid signature,
    /// or an invalid signature whose body the next segment's link contradicts.
    ModifiedManifest,
    /// The signature is invalid but the body is not shown to be altered.
    BadSignature,
    /// Signed by a key that is not among the trusted public keys.
    UnknownKey,
    /// A signed manifest that is not true: unparseable under a valid signature, breaking a
    /// rule, or not describing its Parquet file. The sealer or its key is not to be trusted.
    ContentMismatch,
    /// A manifest's name does not match its body, or its `seq` does not follow.
    Reordered,
    /// Offsets of a stream that no segment covers, or a first segment that is not the
    /// chain's first.
    Gap,
    /// Two segments cover the same offsets.
    Overlap,
    /// A manifest's `prev_manifest_sha256` does not match the manifest before it.
    BrokenChain,
    /// A later version or delete marker hides a sealed object (S3).
    ShadowedVersion,
    /// A symbolic link, FIFO, socket or device in a local store; never followed or read.
    NonRegularObject,
    /// An object could not be read (I/O); verification is incomplete.
    Unreadable,
    /// Warning (format v2): offsets the source deleted before they were sealed (Kafka
    /// retention), which a manifest records as lost. `--deny lost_offsets` makes it an error.
    LostOffsets,
    /// Warning: a cairn-named Parquet file no manifest claims (a crash between the writes).
    OrphanFile,
    /// Warning: an object whose name is not a cairn name.
    UnexpectedObject,
    /// Format v3: a manifest that names another store's origin (or any v3 manifest in a store
    /// without an origin): copied in from another vault.
    ForeignSegment,
    /// A segment in the log (up to the checkpoint) is gone while its stream still has others:
    /// tail truncation, or a deleted segment inside the stream.
    TruncatedStream,
    /// Every segment of a stream in the log (up to the checkpoint) is gone.
    DeletedStream,
    /// The log does not reproduce the checkpoint: a tile, entry bundle or checkpoint is missing
    /// or altered, the store's log is behind the checkpoint, or a logged manifest was replaced.
    LogMismatch,
    /// The checkpoint is for another store (its origin is not this store's).
    ForeignStore,
    /// Warning: a segment not in the log up to the checkpoint (sealed after it).
    NotCheckpointed,
    /// A manifest validly signed by a key outside that key's validity window (a key set given
    /// to the verifier: not yet valid, expired, or revoked at its `sealed_at`).
    OutsideKeyWindow,
    /// An event of a redacted audit bundle whose proof does not verify, is another tenant's, or
    /// was proved against another checkpoint than the bundle's.
    UnprovenEvent,
}

/// How a finding affects the verdict and the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// An integrity failure: exit 1.
    Error,
    /// Verification could not finish: exit 2 unless there is also an error.
    Incomplete,
    /// Reported; the store is still intact.
    Warning,
}

impl FindingKind {
    pub const ALL: [FindingKind; 24] = [
        FindingKind::ModifiedFile,
        FindingKind::MissingFile,
        FindingKind::ModifiedManifest,
        FindingKind::BadSignature,
        FindingKind::UnknownKey,
        FindingKind::ContentMismatch,
        FindingKind::Reordered,
        FindingKind::Gap,
        FindingKind::Overlap,
        FindingKind::BrokenChain,
        FindingKind::ShadowedVersion,
        FindingKind::NonRegularObject,
        FindingKind::Unreadable,
        FindingKind::LostOffsets,
        FindingKind::OrphanFile,
        FindingKind::UnexpectedObject,
        FindingKind::ForeignSegment,
        FindingKind::TruncatedStream,
        FindingKind::DeletedStream,
        FindingKind::LogMismatch,
        FindingKind::ForeignStore,
        FindingKind::NotCheckpointed,
        FindingKind::OutsideKeyWindow,
        FindingKind::UnprovenEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ModifiedFile => "modified_file",
            FindingKind::MissingFile => "missing_file",
            FindingKind::ModifiedManifest => "modified_manifest",
            FindingKind::BadSignature => "bad_signature",
            FindingKind::UnknownKey => "unknown_key",
            FindingKind::ContentMismatch => "content_mismatch",
            FindingKind::Reordered => "reordered",
            FindingKind::Gap => "gap",
            FindingKind::Overlap => "overlap",
            FindingKind::BrokenChain => "broken_chain",
            FindingKind::ShadowedVersion => "shadowed_version",
            FindingKind::NonRegularObject => "non_regular_object",
            FindingKind::Unreadable => "unreadable",
            FindingKind::LostOffsets => "lost_offsets",
            FindingKind::OrphanFile => "orphan_file",
            FindingKind::UnexpectedObject => "unexpected_object",
            FindingKind::ForeignSegment => "foreign_segment",
            FindingKind::TruncatedStream => "truncated_stream",
            FindingKind::DeletedStream => "deleted_stream",
            FindingKind::LogMismatch => "log_mismatch",
            FindingKind::ForeignStore => "foreign_store",
            FindingKind::NotCheckpointed => "not_checkpointed",
            FindingKind::OutsideKeyWindow => "outside_key_window",
            FindingKind::UnprovenEvent => "unproven_event",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            FindingKind::Unreadable => Severity::Incomplete,
            FindingKind::LostOffsets
            | FindingKind::OrphanFile
            | FindingKind::UnexpectedObject
            | FindingKind::NotCheckpointed => Severity::Warning,
            _ => Severity::Error,
        }
    }

    pub fn is_warning(self) -> bool {
        self.severity() == Severity::Warning
    }

    /// The class named `name` (as in `--json` and FORMAT.md §8.1).
    pub fn parse(name: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Incomplete => "incomplete",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    /// `<stream id>/<partition>`, when the object belongs to a stream.
    pub stream: Option<String>,
    /// The object the class names (docs/FORMAT.md §8.1), relative to the store root.
    pub object: String,
    pub message: String,
}

impl Finding {
    pub fn new(
        kind: FindingKind,
        stream: Option<&StreamId>,
        object: &str,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            kind,
            severity: kind.severity(),
            stream: stream.map(|s| s.to_string()),
            object: object.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub segments: u64,
    pub events: u64,
    pub rejected_offsets: u64,
    pub absent_offsets: u64,
    /// Offsets the source deleted before they were sealed (format v2 `lost` ranges).
    pub lost_offsets: u64,
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
}

/// What an intact verdict cannot say without signed checkpoints and a store identity
/// (docs/FORMAT.md §8.5). Printed with every verdict that lacks them.
pub const LIMITATIONS: [&str; 3] = [NO_CHECKPOINT_STREAMS, NO_CHECKPOINT_TAIL, NO_STORE_IDENTITY];
pub const NO_CHECKPOINT_STREAMS: &str =
    "no checkpoint: deletion of a whole stream (all of its objects) cannot be detected";
pub const NO_CHECKPOINT_TAIL: &str =
    "no checkpoint: deletion of a stream's newest segments (tail truncation) cannot be detected";
pub const NO_STORE_IDENTITY: &str = "no store identity: a stream copied in from another vault whose manifests a trusted key signed cannot be detected";
/// Segments sealed before format v3 name no store.
pub const OLD_SEGMENTS: &str = "segments sealed before format v3 name no store: whether they were copied in from another vault signed by a trusted key cannot be detected (the log, when checkpointed, still pins them)";
/// The store has checkpoints, but none verified (signed by a key that was not given).
pub const LOG_KEY_NOT_GIVEN: &str = "the store's checkpoints are not signed by any key given, so its log was not checked: deletion of whole streams or of a stream's newest segments cannot be detected; pass the log's public key with --pubkey";
/// Checked against the store's own newest checkpoint only.
pub const STORE_CHECKPOINT_ONLY: &str = "checked against the store's own newest checkpoint: whoever can delete objects could also delete the newest checkpoints and hide what was sealed after the remaining one; pass --checkpoint with a copy kept outside the store (a witness)";

/// The checkpoint a verdict was checked against.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    /// Hex of the root.
    pub root: String,
    /// `given` (passed with --checkpoint) or `store` (the store's newest).
    pub source: &'static str,
    /// The store's newest checkpoint's size, when the store has one.
    pub store_newest_size: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub store: String,
    /// No error or incomplete findings.
    pub intact: bool,
    /// Some object could not be read: the verdict is incomplete.
    pub incomplete: bool,
    pub segments_checked: u64,
    pub events_checked: u64,
    pub parquet_bytes_checked: u64,
    pub streams: Vec<StreamSummary>,
    pub findings: Vec<Finding>,
    /// What even an intact verdict does not establish (docs/FORMAT.md §8.5).
    pub limitations: Vec<&'static str>,
    /// The store's origin (FORMAT.md §11), when it has one.
    pub origin: Option<String>,
    /// The checkpoint the log was checked against (FORMAT.md §12), if any.
    pub checkpoint: Option<CheckpointSummary>,
}

impl Report {
    /// Process exit code: 0 intact, 1 integrity failure, 2 incomplete (I/O).
    pub fn exit_code(&self) -> i32 {
        if self.findings.iter().any(|f| f.severity == Severity::Error) {
            1
        } else if self.incomplete {
            2
        } else {
            0
        }
    }

    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity != Severity::Warning)
            .count()
    }
}
