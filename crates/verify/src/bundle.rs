//! Audit bundles (docs/FORMAT.md §13): one tenant's segments for a time range, with their
//! manifests, the checkpoint, each manifest's inclusion proof in the log, the store's origin,
//! the public keys and (S3) the Object Lock evidence, so that an auditor verifies them with no
//! store access. This module collects a bundle's objects and checks an unpacked one; packing
//! (tar) is the caller's.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_format::event::format_micros;
use cairn_format::log::proof::verify_inclusion;
use cairn_format::log::{
    Checkpoint, EventProof, ORIGIN_OBJECT, Origin, ProofVerifier, entry, parse_entry,
};
use cairn_format::merkle::leaf_hash;
use cairn_format::names::{ObjectKind, parse_object_name};
use cairn_format::{PublicKey, SignedManifest};
use cairn_store::{StoreError, StoreReader};
use serde::{Deserialize, Serialize};

use crate::log::{CheckpointedLog, LogError, read_origin};
use crate::report::{Finding, FindingKind, Severity};

pub const BUNDLE_FORMAT: &str = "cairn.bundle.v1";
/// The bundle's index, at the root of the archive.
pub const BUNDLE_INDEX: &str = "bundle.json";
pub const BUNDLE_CHECKPOINT: &str = "checkpoint.txt";
/// A redacted bundle's event proofs (JSON lines of `cairn.proof.v1`).
pub const BUNDLE_PROOFS: &str = "proofs.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the store has no checkpoint: run `cairn checkpoint` first (a bundle carries one)")]
    NoCheckpoint,
    #[error(
        "the store has no origin object (v1/origin): it predates format v3; seal or checkpoint it first"
    )]
    NoOrigin,
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] cairn_format::log::CheckpointError),
    #[error("no checkpointed segment holds tenant {tenant:?} between {from} and {to}")]
    Nothing {
        tenant: String,
        from: String,
        to: String,
    },
    #[error("not an audit bundle: {0}")]
    Malformed(String),
}

/// Which segments: those whose manifest lists the tenant and whose time bounds meet the range.
#[derive(Clone, Debug)]
pub struct Selection {
    pub tenant: String,
    /// Inclusive bounds, µs since the epoch.
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Only the tenant's events, each with its proof (no segment files, no other tenant's rows).
    pub redacted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRecord {
    pub version_id: String,
    pub mode: String,
    pub retain_until: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSegment {
    pub manifest: String,
    pub parquet: String,
    pub log_index: u64,
    pub log_path: Vec<String>,
    /// S3 Object Lock evidence of the sealed versions (manifest, Parquet); null on local stores.
    pub manifest_lock: Option<LockRecord>,
    pub parquet_lock: Option<LockRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleIndex {
    pub format: String,
    pub origin: String,
    pub tenant: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub store: String,
    pub checkpoint_size: u64,
    /// Whole segments (empty in a redacted bundle).
    pub segments: Vec<BundleSegment>,
    /// A redacted bundle: the archive path of its event proofs, and how many.
    pub proofs: Option<String>,
    pub events: u64,
    /// Key files in the bundle (`keys/<key id>.pub`): for reference only; a verifier trusts the
    /// keys it is given, never keys shipped with the evidence.
    pub keys: Vec<String>,
}

/// The objects of a bundle: (archive path, bytes), the index first.
pub async fn collect(
    store: &StoreReader,
    keys: &[PublicKey],
    sel: &Selection,
) -> Result<Vec<(String, Bytes)>, BundleError> {
    let origin = read_origin(store).await?.ok_or(BundleError::NoOrigin)?;
    let CheckpointedLog {
        note,
        checkpoint: cp,
        entries,
        tree,
        ..
    } = CheckpointedLog::newest(store, keys)
        .await?
        .ok_or(BundleError::NoCheckpoint)?;
    let range_text = |us: Option<i64>| us.and_then(format_micros);
    let (from, to) = (range_text(sel.from_us), range_text(sel.to_us));
    let mut segments = Vec::new();
    let mut files: Vec<(String, Bytes)> = Vec::new();
    let mut events = 0u64;
    if sel.redacted {
        let (proofs, _) =
            crate::prove::prove_tenant(store, keys, &sel.tenant, sel.from_us, sel.to_us)
                .await
                .map_err(|e| BundleError::Malformed(e.to_string()))?;
        let mut lines = Vec::new();
        for p in &proofs {
            serde_json::to_writer(&mut lines, p).expect("serialisable");
            lines.push(b'\n');
        }
        events = proofs.len() as u64;
        files.push((BUNDLE_PROOFS.to_string(), Bytes::from(lines)));
    }
    for (i, e) in entries.iter().enumerate().filter(|_| !sel.redacted) {
        let Some((_, name)) = parse_entry(e) else {
            continue;
        };
        let bytes = store.get(&name, None).await?;
        let Ok(sm) = SignedManifest::parse(&bytes) else {
            continue;
        };
        let m = &sm.manifest;
        let meets = crate::prove::overlaps(m, from.as_deref(), to.as_deref());
        if !m.tenants.contains(&sel.tenant) || !meets {
            continue;
        }
        let Some(parquet) = m.own_parquet_object() else {
            continue;
        };
        let file = store.get(&parquet, m.parquet.version_id.as_deref()).await?;
        let lock = |l: Option<cairn_store::LockEvidence>| {
            l.map(|l| LockRecord {
                version_id: l.version_id,
                mode: l.mode,
                retain_until: l.retain_until,
            })
        };
        events += m.event_count;
        segments.push(BundleSegment {
            manifest: name.clone(),
            parquet: parquet.clone(),
            log_index: i as u64,
            log_path: tree
                .inclusion_path(i)
                .expect("i < size")
                .iter()
                .map(hex::encode)
                .collect(),
            manifest_lock: lock(store.lock_evidence(&name).await?),
            parquet_lock: lock(store.lock_evidence(&parquet).await?),
        });
        files.push((name, bytes));
        files.push((parquet, file));
    }
    if segments.is_empty() && events == 0 {
        return Err(BundleError::Nothing {
            tenant: sel.tenant.clone(),
            from: from.unwrap_or_else(|| "the beginning".into()),
            to: to.unwrap_or_else(|| "now".into()),
        });
    }
    let key_files: Vec<(String, Bytes)> = keys
        .iter()
        .map(|k| {
            (
                format!("keys/{}.pub", k.key_id()),
                Bytes::from(k.to_file_string()),
            )
        })
        .collect();
    let index = BundleIndex {
        format: BUNDLE_FORMAT.into(),
        origin: origin.to_string(),
        tenant: sel.tenant.clone(),
        from,
        to,
        store: store.describe(),
        checkpoint_size: cp.size,
        segments,
        proofs: sel.redacted.then(|| BUNDLE_PROOFS.to_string()),
        events,
        keys: key_files.iter().map(|(n, _)| n.clone()).collect(),
    };
    let mut out = vec![
        (
            BUNDLE_INDEX.to_string(),
            Bytes::from(serde_json::to_vec_pretty(&index).expect("serialisable")),
        ),
        ("README.txt".to_string(), Bytes::from(readme(&index))),
        (BUNDLE_CHECKPOINT.to_string(), Bytes::from(note)),
        (ORIGIN_OBJECT.to_string(), Bytes::from(origin.to_object())),
    ];
    out.extend(key_files);
    out.extend(files);
    Ok(out)
}

fn readme(index: &BundleIndex) -> String {
    format!(
        "cairn audit bundle ({BUNDLE_FORMAT})\n\n\
         Store {origin}, tenant {tenant}, {n} segment(s){redacted}, checkpoint of size {size}.\n\n\
         Verify it with the public keys you trust (obtained from the operator, not from this\n\
         archive; keys/ holds copies for reference):\n\n\
         \x20   cairn verify --bundle THIS.tar --pubkey SEALING.pub --pubkey LOG.pub\n\n\
         That checks every segment (signature, file hash, every row rebuilt into its Merkle\n\
         root), that each manifest is in the log at the checkpoint (bundle.json: log_index,\n\
         log_path), and the checkpoint's signature and origin. Compare checkpoint.txt with a\n\
         checkpoint you hold (cairn consistency). The format is docs/FORMAT.md section 13;\n\
         the auditor's guide is docs/AUDITING.md.\n",
        origin = index.origin,
        tenant = index.tenant,
        n = index.segments.len(),
        redacted = if index.proofs.is_some() {
            format!(
                " (redacted: {} event(s) of this tenant only, each with its proof in {BUNDLE_PROOFS})",
                index.events
            )
        } else {
            String::new()
        },
        size = index.checkpoint_size,
    )
}

/// What checking an unpacked bundle found.
#[derive(Clone, Debug, Serialize)]
pub struct BundleReport {
    pub origin: String,
    pub tenant: String,
    pub checkpoint_size: u64,
    pub segments_checked: u64,
    pub events_checked: u64,
    pub findings: Vec<Finding>,
    pub intact: bool,
}

impl BundleReport {
    pub fn exit_code(&self) -> i32 {
        if self.findings.iter().any(|f| f.severity == Severity::Error) {
            1
        } else if self.intact {
            0
        } else {
            2
        }
    }
}

/// Checks a bundle unpacked into `dir` (opened as a local store) against the trusted `keys`.
pub async fn verify_unpacked(
    dir: &StoreReader,
    keys: &[PublicKey],
) -> Result<BundleReport, BundleError> {
    let bad = |m: String| BundleError::Malformed(m);
    let index: BundleIndex = serde_json::from_slice(
        &dir.get(BUNDLE_INDEX, None)
            .await
            .map_err(|e| bad(format!("{BUNDLE_INDEX}: {e}")))?,
    )
    .map_err(|e| bad(format!("{BUNDLE_INDEX}: {e}")))?;
    if index.format != BUNDLE_FORMAT {
        return Err(bad(format!("format {:?}", index.format)));
    }
    let note = dir
        .get(BUNDLE_CHECKPOINT, None)
        .await
        .map_err(|e| bad(format!("{BUNDLE_CHECKPOINT}: {e}")))?;
    let cp = Checkpoint::open(&String::from_utf8_lossy(&note), keys)?;
    let origin = read_origin(dir).await?.ok_or(BundleError::NoOrigin)?;
    let mut findings = Vec::new();
    if cp.origin != origin || Origin::parse(&index.origin).ok().as_ref() != Some(&origin) {
        findings.push(Finding::new(
            FindingKind::ForeignStore,
            None,
            BUNDLE_CHECKPOINT,
            format!(
                "the checkpoint is for {}, the bundle's origin is {origin} and its index says {}",
                cp.origin, index.origin
            ),
        ));
    }
    let mut events = 0;
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    for s in &index.segments {
        if seen.insert(&s.manifest, ()).is_some()
            || !parse_object_name(&s.manifest).is_some_and(|n| n.kind == ObjectKind::Manifest)
        {
            return Err(bad(format!(
                "segment {:?} is listed twice or misnamed",
                s.manifest
            )));
        }
        let verdict = crate::check_segment(dir, keys, &s.manifest)
            .await
            .map_err(|e| bad(e.to_string()))?;
        events += verdict.events;
        findings.extend(verdict.findings.iter().cloned());
        let Some(sm) = &verdict.manifest else {
            continue;
        };
        let stream = parse_object_name(&s.manifest).map(|n| n.stream);
        if let Some(store) = &sm.manifest.store
            && store != origin.as_str()
        {
            findings.push(Finding::new(
                FindingKind::ForeignSegment,
                stream.as_ref(),
                &s.manifest,
                format!("sealed into {store:?}, not this bundle's store {origin}"),
            ));
        }
        let path: Option<Vec<[u8; 32]>> = s
            .log_path
            .iter()
            .map(|h| {
                let mut b = [0u8; 32];
                hex::decode_to_slice(h, &mut b).ok().map(|_| b)
            })
            .collect();
        let leaf = leaf_hash(&entry(&sm.chain_hash(), &s.manifest));
        let logged =
            path.is_some_and(|p| verify_inclusion(&leaf, s.log_index, cp.size, &p, &cp.root));
        if !logged {
            findings.push(Finding::new(
                FindingKind::LogMismatch,
                stream.as_ref(),
                &s.manifest,
                format!(
                    "not entry {} of the log at the checkpoint (size {}): the manifest or its log path was altered, or it was never logged",
                    s.log_index, cp.size
                ),
            ));
        }
    }
    if let Some(path) = &index.proofs {
        let bytes = dir
            .get(path, None)
            .await
            .map_err(|e| bad(format!("{path}: {e}")))?;
        let note = String::from_utf8_lossy(&note);
        let mut verifier = ProofVerifier::new(keys);
        for (i, line) in bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let object = format!("{path}#{}", i + 1);
            let unproven = |m: String| Finding::new(FindingKind::UnprovenEvent, None, &object, m);
            let proof = match EventProof::parse(line) {
                Ok(p) => p,
                Err(e) => {
                    findings.push(unproven(e.to_string()));
                    continue;
                }
            };
            events += 1;
            let id = &proof.event.event_id;
            if proof.event.tenant != index.tenant {
                findings.push(unproven(format!(
                    "event {id} is tenant {:?}'s, not the bundle's {:?}",
                    proof.event.tenant, index.tenant
                )));
            } else if proof.checkpoint != note {
                findings.push(unproven(format!(
                    "event {id} is proved against another checkpoint than the bundle's"
                )));
            } else if let Err(e) = verifier.verify(&proof) {
                findings.push(unproven(format!("event {id}: {e}")));
            }
        }
    }
    let intact = findings.iter().all(|f| f.severity == Severity::Warning);
    Ok(BundleReport {
        origin: origin.to_string(),
        tenant: index.tenant,
        checkpoint_size: cp.size,
        segments_checked: index.segments.len() as u64,
        events_checked: events,
        findings,
        intact,
    })
}
