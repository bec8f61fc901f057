//! Event proofs (`cairn.proof.v1`, FORMAT.md §12.4): one event → its segment's Merkle root →
//! the signed manifest → the log → a signed checkpoint. Verification needs only the proof and
//! the trusted public keys.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::proof::verify_inclusion;
use super::{Checkpoint, CheckpointError, entry};
use crate::event::parse_canonical_timestamp;
use crate::keys::PublicKey;
use crate::leaf::{LeafFields, encode_leaf};
use crate::manifest::{SignedManifest, StreamRef};
use crate::merkle::{Hash, leaf_hash};
use crate::names::{ObjectKind, parse_object_name};

pub const PROOF_FORMAT: &str = "cairn.proof.v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofActor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofResource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// The event as its row holds it (the JSONL fields; `occurred_at` canonical, FORMAT.md §0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofEvent {
    pub event_id: String,
    pub occurred_at: String,
    pub tenant: String,
    pub actor: ProofActor,
    pub action: String,
    pub resource: ProofResource,
    pub outcome: String,
    pub source: String,
    pub sensitivity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventProof {
    pub format: String,
    pub event: ProofEvent,
    pub stream: StreamRef,
    pub offset: i64,
    pub leaf_index: u64,
    pub segment_path: Vec<String>,
    pub manifest_name: String,
    /// The manifest object's text: both lines.
    pub manifest: String,
    pub log_index: u64,
    pub log_path: Vec<String>,
    /// The checkpoint's signed note.
    pub checkpoint: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("not a cairn.proof.v1 proof: {0}")]
    Malformed(String),
    #[error("the manifest in the proof: {0}")]
    Manifest(String),
    #[error("the checkpoint in the proof: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "the event is not leaf {index} of the segment's Merkle tree (root {root}, {size} leaves): the event or its path was altered"
    )]
    NotInSegment { index: u64, size: u64, root: String },
    #[error(
        "the manifest is not entry {index} of the log at the checkpoint (size {size}): the manifest, its name or the log path was altered"
    )]
    NotInLog { index: u64, size: u64 },
    #[error(
        "the manifest was sealed into store {manifest:?}, but the checkpoint is {checkpoint:?}'s"
    )]
    ForeignCheckpoint {
        manifest: String,
        checkpoint: String,
    },
}

/// What a valid proof establishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvenEvent {
    pub event_id: String,
    pub stream: String,
    pub offset: i64,
    pub manifest_name: String,
    pub key_id: String,
    pub origin: String,
    pub checkpoint_size: u64,
    pub log_index: u64,
}

impl ProofEvent {
    /// The event's leaf bytes at `offset` of `stream` (FORMAT.md §3).
    pub fn leaf_bytes(&self, stream: &StreamRef, offset: i64) -> Result<Vec<u8>, String> {
        let occurred_at_us = parse_canonical_timestamp(&self.occurred_at).ok_or_else(|| {
            format!(
                "occurred_at {:?} is not a canonical timestamp",
                self.occurred_at
            )
        })?;
        let details: Option<Vec<(&str, &str)>> = self
            .details
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect());
        let mut out = Vec::with_capacity(512);
        encode_leaf(
            &LeafFields {
                stream_id: &stream.id,
                partition: stream.partition,
                offset,
                event_id: &self.event_id,
                occurred_at_us,
                tenant: &self.tenant,
                actor_id: &self.actor.id,
                actor_type: &self.actor.kind,
                actor_ip: self.actor.ip.as_deref(),
                action: &self.action,
                resource_type: &self.resource.kind,
                resource_id: &self.resource.id,
                outcome: &self.outcome,
                source: &self.source,
                sensitivity: &self.sensitivity,
                details: details.as_deref(),
            },
            &mut out,
        )
        .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

fn hashes(path: &[String], what: &str) -> Result<Vec<Hash>, ProofError> {
    path.iter()
        .map(|h| {
            let mut out = [0u8; 32];
            (h.len() == 64
                && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && hex::decode_to_slice(h, &mut out).is_ok())
            .then_some(out)
            .ok_or_else(|| {
                ProofError::Malformed(format!("{what} holds {h:?}, not 64 lowercase hex digits"))
            })
        })
        .collect()
}

impl EventProof {
    pub fn parse(bytes: &[u8]) -> Result<EventProof, ProofError> {
        let p: EventProof =
            serde_json::from_slice(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?;
        if p.format != PROOF_FORMAT {
            return Err(ProofError::Malformed(format!(
                "format is {:?}, expected {PROOF_FORMAT:?}",
                p.format
            )));
        }
        Ok(p)
    }

    /// Checks every link of the proof against the trusted keys (FORMAT.md §12.4).
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<ProvenEvent, ProofError> {
        ProofVerifier::new(trusted).verify(self)
    }
}

/// Verifies many proofs against the same keys, checking each distinct checkpoint and manifest
/// signature once (an auditor checking a tenant's events against one checkpoint: thousands of
/// proofs, a few manifests, one checkpoint). Every other step runs for every proof.
pub struct ProofVerifier<'a> {
    trusted: &'a [PublicKey],
    checkpoints: HashMap<String, Result<Checkpoint, CheckpointError>>,
    /// Manifest text → the parsed manifest and its chain hash, once its signature verified.
    manifests: HashMap<String, Result<(SignedManifest, crate::Digest), String>>,
}

impl<'a> ProofVerifier<'a> {
    pub fn new(trusted: &'a [PublicKey]) -> Self {
        ProofVerifier {
            trusted,
            checkpoints: HashMap::new(),
            manifests: HashMap::new(),
        }
    }

    pub fn verify(&mut self, p: &EventProof) -> Result<ProvenEvent, ProofError> {
        let trusted = self.trusted;
        if !self.manifests.contains_key(&p.manifest) {
            let checked = SignedManifest::parse(p.manifest.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|sm| {
                    sm.verify_signature(trusted).map_err(|e| e.to_string())?;
                    let h = sm.chain_hash();
                    Ok((sm, h))
                });
            self.manifests.insert(p.manifest.clone(), checked);
        }
        if !self.checkpoints.contains_key(&p.checkpoint) {
            let cp = Checkpoint::open(&p.checkpoint, trusted);
            self.checkpoints.insert(p.checkpoint.clone(), cp);
        }
        let (sm, chain_hash) = match &self.manifests[&p.manifest] {
            Ok((sm, h)) => (sm, h),
            Err(e) => return Err(ProofError::Manifest(e.clone())),
        };
        let cp = match &self.checkpoints[&p.checkpoint] {
            Ok(cp) => cp,
            Err(e) => return Err(ProofError::Checkpoint(e.clone())),
        };
        p.check_links(sm, chain_hash, cp)
    }
}

impl EventProof {
    /// Everything but the signatures (checked by the caller): names, ranges, both audit paths.
    fn check_links(
        &self,
        sm: &SignedManifest,
        chain_hash: &crate::Digest,
        cp: &Checkpoint,
    ) -> Result<ProvenEvent, ProofError> {
        let bad_manifest = |m: String| ProofError::Manifest(m);
        let m = &sm.manifest;
        let name = parse_object_name(&self.manifest_name)
            .filter(|n| n.kind == ObjectKind::Manifest && m.matches(n))
            .ok_or_else(|| {
                bad_manifest(format!(
                    "{:?} is not the manifest name of its body's stream and range",
                    self.manifest_name
                ))
            })?;
        if self.stream != m.stream || !m.range().contains(self.offset) {
            return Err(bad_manifest(format!(
                "the event's stream and offset ({}/{} at {}) are not in the manifest's range {}",
                self.stream.id,
                self.stream.partition,
                self.offset,
                m.range()
            )));
        }
        let leaf = self
            .event
            .leaf_bytes(&self.stream, self.offset)
            .map_err(ProofError::Malformed)?;
        let root = m.merkle_root.to_bytes().ok_or_else(|| {
            bad_manifest("merkle_root is not 64 lowercase hex digits".to_string())
        })?;
        let path = hashes(&self.segment_path, "segment_path")?;
        if !verify_inclusion(
            &leaf_hash(&leaf),
            self.leaf_index,
            m.event_count,
            &path,
            &root,
        ) {
            return Err(ProofError::NotInSegment {
                index: self.leaf_index,
                size: m.event_count,
                root: m.merkle_root.to_string(),
            });
        }
        let log_path = hashes(&self.log_path, "log_path")?;
        let e = entry(chain_hash, &self.manifest_name);
        if !verify_inclusion(&leaf_hash(&e), self.log_index, cp.size, &log_path, &cp.root) {
            return Err(ProofError::NotInLog {
                index: self.log_index,
                size: cp.size,
            });
        }
        if let Some(store) = &m.store
            && store != cp.origin.as_str()
        {
            return Err(ProofError::ForeignCheckpoint {
                manifest: store.clone(),
                checkpoint: cp.origin.to_string(),
            });
        }
        Ok(ProvenEvent {
            event_id: self.event.event_id.clone(),
            stream: name.stream.to_string(),
            offset: self.offset,
            manifest_name: self.manifest_name.clone(),
            key_id: m.key_id.clone(),
            origin: cp.origin.to_string(),
            checkpoint_size: cp.size,
            log_index: self.log_index,
        })
    }
}
