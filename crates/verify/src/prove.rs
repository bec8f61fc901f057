//! `cairn prove`: builds the proof of one event (FORMAT.md §12.4) from a store, against its
//! newest checkpoint, without scanning the store: manifests prune by tenant and time bounds,
//! Parquet bloom filters on `event_id` (format v3) skip segments that do not hold the event,
//! and only the segment that does is decoded (its leaves are needed for the audit path).

use std::collections::HashSet;

use cairn_format::event::format_micros;
use cairn_format::log::event_proof::{
    EventProof, PROOF_FORMAT, ProofActor, ProofEvent, ProofResource,
};
use cairn_format::log::proof::MerkleTree;
use cairn_format::merkle::{Hash, leaf_hash};
use cairn_format::names::{ObjectKind, parse_object_name};
use cairn_format::segment::{EventIdFilter, scan_segment};
use cairn_format::{PublicKey, SignedManifest};
use cairn_store::{StoreError, StoreReader};
use futures::StreamExt;

use crate::log::{CheckpointedLog, LogError};

#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the store has no checkpoint yet: run `cairn checkpoint` first")]
    NoCheckpoint,
    #[error(
        "event {event_id} is in {manifest}, which is not in the log yet: run `cairn checkpoint`, then prove it"
    )]
    NotCheckpointed { event_id: String, manifest: String },
    #[error(
        "no event {event_id} in the store's checkpointed segments ({searched} searched{pruned}); check the id, or drop --tenant/--at if they do not match the event"
    )]
    NotFound {
        event_id: String,
        searched: usize,
        pruned: String,
    },
    #[error("segment {object}: {message}")]
    Segment { object: String, message: String },
}

/// Narrows the search (both optional): the event's tenant, and a time the event occurred at
/// (µs since the epoch), compared with the manifests' bounds.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    pub tenant: Option<String>,
    pub occurred_at_us: Option<i64>,
}

/// What proving cost: for the benchmark and the user.
#[derive(Clone, Debug, Default)]
pub struct ProveStats {
    pub manifests_read: usize,
    pub candidates: usize,
    pub segments_decoded: usize,
}

struct Candidate {
    object: String,
    manifest: SignedManifest,
    text: String,
}

/// Proves `event_id` against the store's newest checkpoint, which must verify under `keys`.
pub async fn prove_event(
    store: &StoreReader,
    keys: &[PublicKey],
    event_id: &str,
    hints: &Hints,
) -> Result<(EventProof, ProveStats), ProveError> {
    let ids = [event_id.to_string()];
    let (mut proofs, unproven, stats) = prove_events(store, keys, &ids, hints).await?;
    if let Some(p) = proofs.pop() {
        return Ok((p, stats));
    }
    Err(match unproven.into_iter().next() {
        Some(Unproven::NotCheckpointed { manifest, .. }) => ProveError::NotCheckpointed {
            event_id: event_id.to_string(),
            manifest,
        },
        _ => ProveError::NotFound {
            event_id: event_id.to_string(),
            searched: stats.candidates,
            pruned: if hints.tenant.is_some() || hints.occurred_at_us.is_some() {
                " after pruning by the hints".into()
            } else {
                String::new()
            },
        },
    })
}

/// An event that could not be proved, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unproven {
    /// In a segment sealed after the newest checkpoint.
    NotCheckpointed { event_id: String, manifest: String },
    /// In no segment the search reached.
    NotFound { event_id: String },
}

/// Proves every event of `event_ids` in one pass over the store (each candidate segment is read
/// at most once), against the store's newest checkpoint. Proofs come in segment order.
pub async fn prove_events(
    store: &StoreReader,
    keys: &[PublicKey],
    event_ids: &[String],
    hints: &Hints,
) -> Result<(Vec<EventProof>, Vec<Unproven>, ProveStats), ProveError> {
    let CheckpointedLog {
        note,
        tree: log_tree,
        index: logged,
        ..
    } = CheckpointedLog::newest(store, keys)
        .await?
        .ok_or(ProveError::NoCheckpoint)?;
    let mut stats = ProveStats::default();
    let mut candidates = candidates(store, hints, &mut stats).await?;
    // Logged segments first: an event in an unlogged one can only be reported.
    candidates.sort_by_key(|c| (!logged.contains_key(&c.object), c.object.clone()));
    let mut wanted: HashSet<&str> = event_ids.iter().map(String::as_str).collect();
    let mut proofs = Vec::new();
    let mut unproven = Vec::new();
    let hexes = |p: Vec<Hash>| p.iter().map(hex::encode).collect::<Vec<_>>();
    for c in candidates {
        if wanted.is_empty() {
            break;
        }
        let Some(parquet) = c.manifest.manifest.own_parquet_object() else {
            continue;
        };
        let file = store.get(&parquet, None).await?;
        let bad = |message: String| ProveError::Segment {
            object: parquet.clone(),
            message,
        };
        let filter = EventIdFilter::read(&file).map_err(|e| bad(e.to_string()))?;
        let maybe: HashSet<&str> = wanted
            .iter()
            .copied()
            .filter(|id| filter.may_hold(id))
            .collect();
        if maybe.is_empty() {
            continue;
        }
        stats.segments_decoded += 1;
        let mut leaves: Vec<Hash> = Vec::with_capacity(c.manifest.manifest.event_count as usize);
        let mut found: Vec<(usize, i64, ProofEvent)> = Vec::new();
        scan_segment::<()>(file, |f, leaf| {
            if maybe.contains(&f.event_id) && !found.iter().any(|x| x.2.event_id == f.event_id) {
                found.push((leaves.len(), f.offset, proof_event(f)));
            }
            leaves.push(leaf_hash(leaf));
            Ok(())
        })
        .map_err(|e| bad(e.to_string()))?
        .expect("the visitor never fails");
        let tree = MerkleTree::new(&leaves);
        for (index, offset, event) in found {
            wanted.remove(event.event_id.as_str());
            let Some(&log_index) = logged.get(&c.object) else {
                unproven.push(Unproven::NotCheckpointed {
                    event_id: event.event_id,
                    manifest: c.object.clone(),
                });
                continue;
            };
            proofs.push(EventProof {
                format: PROOF_FORMAT.to_string(),
                event,
                stream: c.manifest.manifest.stream.clone(),
                offset,
                leaf_index: index as u64,
                segment_path: hexes(tree.inclusion_path(index).expect("index < leaves")),
                manifest_name: c.object.clone(),
                manifest: c.text.clone(),
                log_index: log_index as u64,
                log_path: hexes(log_tree.inclusion_path(log_index).expect("index < size")),
                checkpoint: note.clone(),
            });
        }
    }
    let mut missing: Vec<&str> = wanted.into_iter().collect();
    missing.sort_unstable();
    unproven.extend(missing.into_iter().map(|id| Unproven::NotFound {
        event_id: id.to_string(),
    }));
    Ok((proofs, unproven, stats))
}

/// Proofs of every event of `tenant` that occurred in `[from_us, to_us]` (inclusive, either
/// open), in the segments the store's newest checkpoint covers: a redacted disclosure (an audit
/// bundle without other tenants' rows). Each segment holding the tenant is decoded once.
pub async fn prove_tenant(
    store: &StoreReader,
    keys: &[PublicKey],
    tenant: &str,
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> Result<(Vec<EventProof>, ProveStats), ProveError> {
    let CheckpointedLog {
        note,
        tree: log_tree,
        index: logged,
        ..
    } = CheckpointedLog::newest(store, keys)
        .await?
        .ok_or(ProveError::NoCheckpoint)?;
    let mut stats = ProveStats::default();
    let hints = Hints {
        tenant: Some(tenant.to_string()),
        occurred_at_us: None,
    };
    let bound = |us: Option<i64>| us.and_then(format_micros);
    let (from, to) = (bound(from_us), bound(to_us));
    let hexes = |p: Vec<Hash>| p.iter().map(hex::encode).collect::<Vec<_>>();
    let mut proofs = Vec::new();
    for c in candidates(store, &hints, &mut stats).await? {
        let Some(&log_index) = logged.get(&c.object) else {
            continue;
        };
        let m = &c.manifest.manifest;
        let meets = overlaps(m, from.as_deref(), to.as_deref());
        let Some(parquet) = m.own_parquet_object().filter(|_| meets) else {
            continue;
        };
        let file = store.get(&parquet, None).await?;
        stats.segments_decoded += 1;
        let mut leaves: Vec<Hash> = Vec::with_capacity(m.event_count as usize);
        let mut found: Vec<(usize, i64, ProofEvent)> = Vec::new();
        scan_segment::<()>(file, |f, leaf| {
            let inside = from_us.is_none_or(|a| f.occurred_at_us >= a)
                && to_us.is_none_or(|b| f.occurred_at_us <= b);
            if f.tenant == tenant && inside {
                found.push((leaves.len(), f.offset, proof_event(f)));
            }
            leaves.push(leaf_hash(leaf));
            Ok(())
        })
        .map_err(|e| ProveError::Segment {
            object: parquet.clone(),
            message: e.to_string(),
        })?
        .expect("the visitor never fails");
        let tree = MerkleTree::new(&leaves);
        let log_path = hexes(log_tree.inclusion_path(log_index).expect("index < size"));
        for (index, offset, event) in found {
            proofs.push(EventProof {
                format: PROOF_FORMAT.to_string(),
                event,
                stream: m.stream.clone(),
                offset,
                leaf_index: index as u64,
                segment_path: hexes(tree.inclusion_path(index).expect("index < leaves")),
                manifest_name: c.object.clone(),
                manifest: c.text.clone(),
                log_index: log_index as u64,
                log_path: log_path.clone(),
                checkpoint: note.clone(),
            });
        }
    }
    Ok((proofs, stats))
}

/// Do the manifest's time bounds meet `[from, to]` (canonical timestamps, either open)? A
/// segment without events meets no range.
pub(crate) fn overlaps(m: &cairn_format::Manifest, from: Option<&str>, to: Option<&str>) -> bool {
    match (&m.min_occurred_at, &m.max_occurred_at) {
        (Some(lo), Some(hi)) => {
            from.is_none_or(|f| hi.as_str() >= f) && to.is_none_or(|t| lo.as_str() <= t)
        }
        _ => false,
    }
}

/// The manifests the hints allow, each with its text.
async fn candidates(
    store: &StoreReader,
    hints: &Hints,
    stats: &mut ProveStats,
) -> Result<Vec<Candidate>, ProveError> {
    let names: Vec<String> = store
        .list("v1/streams/")
        .await?
        .into_iter()
        .filter(|o| parse_object_name(&o.name).is_some_and(|n| n.kind == ObjectKind::Manifest))
        .map(|o| o.name)
        .collect();
    stats.manifests_read = names.len();
    let read: Vec<Result<Candidate, ProveError>> = futures::stream::iter(names)
        .map(|object| async move {
            let bytes = store.get(&object, None).await?;
            let manifest = SignedManifest::parse(&bytes).map_err(|e| ProveError::Segment {
                object: object.clone(),
                message: e.to_string(),
            })?;
            Ok(Candidate {
                object,
                manifest,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
        })
        .buffered(16)
        .collect()
        .await;
    let mut out: Vec<Candidate> = Vec::new();
    for c in read {
        // A manifest that does not parse cannot hold a provable event; verify reports it.
        let Ok(c) = c else { continue };
        let m = &c.manifest.manifest;
        if hints
            .tenant
            .as_ref()
            .is_some_and(|t| !m.tenants.contains(t))
        {
            continue;
        }
        if let Some(at) = hints.occurred_at_us.and_then(format_micros) {
            let inside = match (&m.min_occurred_at, &m.max_occurred_at) {
                (Some(lo), Some(hi)) => *lo <= at && at <= *hi,
                _ => false,
            };
            if !inside {
                continue;
            }
        }
        if m.event_count > 0 {
            out.push(c);
        }
    }
    stats.candidates = out.len();
    Ok(out)
}

fn proof_event(f: &cairn_format::leaf::LeafFields<'_>) -> ProofEvent {
    ProofEvent {
        event_id: f.event_id.to_string(),
        occurred_at: format_micros(f.occurred_at_us).unwrap_or_default(),
        tenant: f.tenant.to_string(),
        actor: ProofActor {
            id: f.actor_id.to_string(),
            kind: f.actor_type.to_string(),
            ip: f.actor_ip.map(str::to_string),
        },
        action: f.action.to_string(),
        resource: ProofResource {
            kind: f.resource_type.to_string(),
            id: f.resource_id.to_string(),
        },
        outcome: f.outcome.to_string(),
        source: f.source.to_string(),
        sensitivity: f.sensitivity.to_string(),
        details: f.details.map(|d| {
            d.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
    }
}
