//! The log over segments (docs/FORMAT.md §11–§12): reading the origin, checkpoints and entries
//! from a store, and judging a store against a checkpoint (FORMAT.md §8.6). The checkpointer
//! (a writer) reads its predecessor's log through the same functions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_format::log::proof::MerkleTree;
use cairn_format::log::tiles::{bundles_for, new_objects, parse_bundle};
use cairn_format::log::{
    CHECKPOINT_PREFIX, Checkpoint, CheckpointError, LogObject, ORIGIN_OBJECT, Origin,
    checkpoint_object, parse_entry,
};
use cairn_format::merkle::{Hash, leaf_hash, root_recursive};
use cairn_format::names::{ObjectKind, parse_object_name};
use cairn_format::{PublicKey, StreamId};
use cairn_store::{StoreError, StoreReader};

use crate::inventory::Inventory;
use crate::report::{CheckpointSummary, Finding, FindingKind};
use crate::segment::ManifestCheck;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store's {ORIGIN_OBJECT} is malformed: {0}")]
    BadOrigin(String),
    #[error("the log is broken: {0}")]
    Broken(String),
    #[error("the store's newest checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

impl LogError {
    pub fn is_transient(&self) -> bool {
        matches!(self, LogError::Store(e) if e.is_transient())
    }
}

/// The store's origin, or `None` when it has no origin object.
pub async fn read_origin(store: &StoreReader) -> Result<Option<Origin>, LogError> {
    read_origin_at(store, None).await
}

/// [`read_origin`] at a given version (S3: the sealed one, from the verifier's inventory).
pub(crate) async fn read_origin_at(
    store: &StoreReader,
    version: Option<&str>,
) -> Result<Option<Origin>, LogError> {
    match store.get(ORIGIN_OBJECT, version).await {
        Ok(bytes) => Origin::from_object(&bytes)
            .map(Some)
            .map_err(|e| LogError::BadOrigin(e.to_string())),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The store's newest checkpoint, as (size, note text), if it has any.
pub async fn newest_checkpoint(store: &StoreReader) -> Result<Option<(u64, String)>, LogError> {
    let newest = store
        .list(CHECKPOINT_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| match LogObject::parse(&o.name) {
            Some(LogObject::Checkpoint { size }) => Some(size),
            _ => None,
        })
        .max();
    let Some(size) = newest else {
        return Ok(None);
    };
    let bytes = store.get(&checkpoint_object(size), None).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| LogError::Broken(format!("{} is not UTF-8", checkpoint_object(size))))?;
    Ok(Some((size, text)))
}

/// The log's first `size` entries, from the entry bundles.
pub async fn read_entries(store: &StoreReader, size: u64) -> Result<Vec<Vec<u8>>, LogError> {
    read_entries_at(store, size, &|_| None).await
}

/// [`read_entries`] reading each bundle at the version `version_of` names (S3: the sealed one).
async fn read_entries_at(
    store: &StoreReader,
    size: u64,
    version_of: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<Vec<u8>>, LogError> {
    let mut out = Vec::with_capacity(size as usize);
    for (name, width) in bundles_for(size) {
        let version = version_of(&name);
        let bytes = match store.get(&name, version.as_deref()).await {
            Err(StoreError::NotFound { .. }) => {
                return Err(LogError::Broken(format!(
                    "the entry bundle {name} is missing"
                )));
            }
            r => r?,
        };
        let entries = parse_bundle(&bytes)
            .filter(|e| e.len() == width)
            .ok_or_else(|| {
                LogError::Broken(format!(
                    "the entry bundle {name} does not hold {width} length-prefixed entries"
                ))
            })?;
        out.extend(entries);
    }
    Ok(out)
}

pub fn leaf_hashes(entries: &[Vec<u8>]) -> Vec<Hash> {
    entries.iter().map(|e| leaf_hash(e)).collect()
}

/// The log as the store's newest checkpoint covers it, opened under trusted keys: what proofs
/// and bundles are cut against.
pub struct CheckpointedLog {
    /// The checkpoint's signed note, as stored.
    pub note: String,
    pub checkpoint: Checkpoint,
    pub entries: Vec<Vec<u8>>,
    /// The tree over the entries, for their inclusion proofs.
    pub tree: MerkleTree,
    /// Manifest name → its entry's index.
    pub index: HashMap<String, usize>,
}

impl CheckpointedLog {
    /// `Ok(None)` when the store has no checkpoint.
    pub async fn newest(
        store: &StoreReader,
        keys: &[PublicKey],
    ) -> Result<Option<CheckpointedLog>, LogError> {
        let Some((_, note)) = newest_checkpoint(store).await? else {
            return Ok(None);
        };
        let checkpoint = Checkpoint::open(&note, keys)?;
        let entries = read_entries(store, checkpoint.size).await?;
        let tree = MerkleTree::new(&leaf_hashes(&entries));
        let index = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| parse_entry(e).map(|(_, name)| (name, i)))
            .collect();
        Ok(Some(CheckpointedLog {
            note,
            checkpoint,
            entries,
            tree,
            index,
        }))
    }
}

/// FORMAT.md §8.6: the store against a checkpoint (`given`, already opened under trusted keys,
/// else the store's newest). Returns the findings and what was checked.
pub(crate) async fn check(
    store: &StoreReader,
    inv: &Inventory,
    keys: &[PublicKey],
    checks: &[ManifestCheck],
    origin: Option<&Origin>,
    given: Option<&Checkpoint>,
) -> (Vec<Finding>, Option<CheckpointSummary>) {
    let mut out = Vec::new();
    // S3: read every log object at its sealed version (the inventory's); a later version is
    // reported as shadowing and never judged.
    let version_of = |name: &str| inv.objects.get(name).cloned().flatten();
    let mismatch = |object: &str, message: String| {
        Finding::new(FindingKind::LogMismatch, None, object, message)
    };
    // The store's newest checkpoint, verified.
    let newest_size = inv
        .log
        .values()
        .filter_map(|o| match o {
            LogObject::Checkpoint { size } => Some(*size),
            _ => None,
        })
        .max();
    let mut newest: Option<Checkpoint> = None;
    if let Some(size) = newest_size {
        let object = checkpoint_object(size);
        match store.get(&object, version_of(&object).as_deref()).await {
            Err(e) => out.push(Finding::new(
                FindingKind::Unreadable,
                None,
                &object,
                e.to_string(),
            )),
            Ok(bytes) => match Checkpoint::open(&String::from_utf8_lossy(&bytes), keys) {
                // Signed by no key given (the log key was not passed): the log is not checked,
                // and the report's limitations say so.
                Err(CheckpointError::NoTrustedSignature { .. }) => {}
                Err(e) => out.push(mismatch(
                    &object,
                    format!("the store's newest checkpoint: {e}"),
                )),
                Ok(cp) if cp.size != size => out.push(mismatch(
                    &object,
                    format!("its name says size {size} but it says {}", cp.size),
                )),
                Ok(cp) => newest = Some(cp),
            },
        }
    }
    let (target, source) = match (given, &newest) {
        (Some(g), _) => (g.clone(), "given"),
        (None, Some(n)) => (n.clone(), "store"),
        (None, None) => return (out, None),
    };
    let summary = CheckpointSummary {
        origin: target.origin.to_string(),
        size: target.size,
        root: hex::encode(target.root),
        source,
        store_newest_size: newest_size,
    };
    if origin != Some(&target.origin) {
        out.push(Finding::new(
            FindingKind::ForeignStore,
            None,
            ORIGIN_OBJECT,
            match origin {
                Some(o) => format!(
                    "the checkpoint is for {}, but this store's origin is {o}: it is another store's checkpoint, or this is not the store it was made for",
                    target.origin
                ),
                None => format!(
                    "the checkpoint is for {}, but this store has no origin object",
                    target.origin
                ),
            },
        ));
        return (out, Some(summary));
    }
    if let (Some(n), Some(_)) = (&newest, given)
        && n.size < target.size
    {
        out.push(mismatch(
            &checkpoint_object(n.size),
            format!(
                "the store's newest checkpoint has size {}, behind the given checkpoint's {}: checkpoints (and what they covered) were removed from the store",
                n.size, target.size
            ),
        ));
    }
    let size = target.size.max(newest.as_ref().map_or(0, |n| n.size));
    let entries = match read_entries_at(store, size, &version_of).await {
        Ok(e) => e,
        Err(e) => {
            out.push(mismatch("v1/log/tile/entries/", e.to_string()));
            return (out, Some(summary));
        }
    };
    let leaves = leaf_hashes(&entries);
    for cp in [Some(&target), newest.as_ref()].into_iter().flatten() {
        let n = cp.size as usize;
        if root_recursive(&leaves[..n]) != cp.root {
            out.push(mismatch(
                &checkpoint_object(cp.size),
                format!(
                    "the log's first {n} entries do not hash to the root of the checkpoint of size {n}: the log was altered, or the checkpoint belongs to another log"
                ),
            ));
            return (out, Some(summary));
        }
    }
    // The hash tiles a reader of the standard would use must agree with the entries.
    let t = target.size as usize;
    for (name, want) in new_objects(&leaves[..t], &entries[..t], 0) {
        if name.contains("/entries/") {
            continue;
        }
        match store.get(&name, version_of(&name).as_deref()).await {
            Ok(got) if got[..] == want[..] => {}
            Ok(_) => out.push(mismatch(
                &name,
                "the tile's hashes are not the log's".into(),
            )),
            Err(StoreError::NotFound { .. }) => {
                out.push(mismatch(&name, "the tile is missing".into()))
            }
            Err(e) => out.push(Finding::new(
                FindingKind::Unreadable,
                None,
                &name,
                e.to_string(),
            )),
        }
    }
    judge_segments(&entries[..t], checks, &mut out);
    // Segments in the store but not in the log up to the checkpoint.
    let logged: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| parse_entry(e).map(|(_, n)| (n, i)))
        .collect();
    for c in checks.iter().filter(|c| c.parsed.is_some()) {
        match logged.get(&c.object) {
            Some(&i) if i < t => {}
            Some(&i) => out.push(Finding::new(
                FindingKind::NotCheckpointed,
                Some(&c.name.stream),
                &c.object,
                format!(
                    "in the log at index {i}, after the checkpoint of size {t}: the checkpoint says nothing about it yet"
                ),
            )),
            None => out.push(Finding::new(
                FindingKind::NotCheckpointed,
                Some(&c.name.stream),
                &c.object,
                format!("not in the log: sealed after the checkpoint of size {t} (run cairn checkpoint)"),
            )),
        }
    }
    (out, Some(summary))
}

/// Every logged manifest must be in the store with the logged chain hash.
fn judge_segments(entries: &[Vec<u8>], checks: &[ManifestCheck], out: &mut Vec<Finding>) {
    let present: HashMap<&str, &ManifestCheck> =
        checks.iter().map(|c| (c.object.as_str(), c)).collect();
    let streams_present: BTreeSet<&StreamId> = checks.iter().map(|c| &c.name.stream).collect();
    let mut missing: BTreeMap<StreamId, Vec<String>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let Some((hash, name)) = parse_entry(e) else {
            out.push(Finding::new(
                FindingKind::LogMismatch,
                None,
                "v1/log/tile/entries/",
                format!("entry {i} is not `<chain hash> <manifest name>`"),
            ));
            continue;
        };
        let Some(parsed) = parse_object_name(&name).filter(|n| n.kind == ObjectKind::Manifest)
        else {
            out.push(Finding::new(
                FindingKind::LogMismatch,
                None,
                "v1/log/tile/entries/",
                format!("entry {i} names {name:?}, which is not a manifest name"),
            ));
            continue;
        };
        match present.get(name.as_str()) {
            None => missing.entry(parsed.stream).or_default().push(name),
            Some(c) => {
                if let Some(p) = &c.parsed
                    && p.manifest.chain_hash() != hash
                {
                    out.push(Finding::new(
                        FindingKind::LogMismatch,
                        Some(&c.name.stream),
                        &c.object,
                        format!(
                            "the manifest's chain hash is {}, the log (entry {i}) has {hash}: it was replaced after it was logged",
                            p.manifest.chain_hash()
                        ),
                    ));
                }
            }
        }
    }
    for (stream, names) in missing {
        let deleted = !streams_present.contains(&stream);
        for name in names {
            out.push(if deleted {
                Finding::new(
                    FindingKind::DeletedStream,
                    Some(&stream),
                    &name,
                    "the checkpoint's log holds this segment, and the store holds no segment of its stream: the whole stream was deleted",
                )
            } else {
                Finding::new(
                    FindingKind::TruncatedStream,
                    Some(&stream),
                    &name,
                    "the checkpoint's log holds this segment and the store does not: it was deleted (tail truncation, or a segment removed from inside the stream)",
                )
            });
        }
    }
}
