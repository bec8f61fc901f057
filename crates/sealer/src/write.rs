//! Writing a cut segment: the claim on its first offset, the Parquet file, the signed manifest
//! (FORMAT.md §7), adopting what an earlier attempt or a concurrent writer of the same range
//! already stored.

use bytes::Bytes;
use cairn_format::event::format_micros;
use cairn_format::manifest::{ParquetRef, StreamRef};
use cairn_format::names::{ObjectKind, claim_name, object_name};
use cairn_format::segment::{SegmentStats, scan_segment};
use cairn_format::{Claim, Digest, Manifest, OffsetRange, SignedManifest};
use cairn_store::{Created, StoreError};

use crate::{Encoded, SealError, SealedSegment, StreamSealer};

impl StreamSealer {
    /// Writes the Parquet file, then the signed manifest chained to the previous one.
    pub(crate) async fn write(&mut self, enc: Encoded) -> Result<SealedSegment, SealError> {
        let range = OffsetRange::new(enc.first, enc.last);
        let parquet_object = object_name(&self.stream, enc.first, enc.last, ObjectKind::Parquet);
        let manifest_object = object_name(&self.stream, enc.first, enc.last, ObjectKind::Manifest);
        self.claim(range).await?;
        let parquet = Bytes::from(enc.parquet);
        let (file, created) = self
            .store_parquet(&parquet_object, parquet, &enc.stats)
            .await?;
        let bound = |us: Option<i64>| -> Result<Option<String>, SealError> {
            // Validated events lie in the years 0001–9999, which the canonical form can state.
            us.map(|us| {
                format_micros(us).ok_or_else(|| SealError::Event {
                    offset: range.first,
                    message: format!("occurred_at {us} µs is outside the years 0001 to 9999"),
                })
            })
            .transpose()
        };
        let manifest = Manifest {
            format: cairn_format::FORMAT_VERSION.to_string(),
            store: Some(self.origin.to_string()),
            stream: StreamRef {
                id: self.stream.source.clone(),
                partition: self.stream.partition,
            },
            seq: self.next_seq,
            first_offset: range.first,
            last_offset: range.last,
            event_count: enc.stats.event_count,
            rejected: enc.rejected,
            absent: enc.absent,
            lost: Some(enc.lost),
            min_occurred_at: bound(enc.stats.min_occurred_at_us)?,
            max_occurred_at: bound(enc.stats.max_occurred_at_us)?,
            tenants: enc.stats.tenants,
            merkle_root: Digest::from_bytes(&enc.stats.merkle_root),
            parquet: ParquetRef {
                object: parquet_object.clone(),
                sha256: file.0,
                size: file.1,
                version_id: created.version_id.clone(),
            },
            prev_manifest_sha256: self.prev_hash.clone(),
            schema_sha256: cairn_format::schema_fingerprint(),
            key_id: String::new(),
            sealed_at: format_micros(chrono::Utc::now().timestamp_micros())
                .expect("the clock reads a time between the years 0001 and 9999"),
        };
        let mut signed = SignedManifest::sign(manifest, &self.key);
        match self
            .store
            .create(&manifest_object, Bytes::from(signed.to_bytes()))
            .await
        {
            Ok(_) => {}
            // Another writer sealed the same claimed range first (only `sealed_at` and so the
            // signature can differ): its manifest is this stream's segment.
            Err(StoreError::Conflict { object }) => signed = self.adopt(object, signed).await?,
            Err(e) => return Err(e.into()),
        }
        self.next_seq += 1;
        self.prev_hash = signed.chain_hash();
        Ok(SealedSegment {
            manifest: signed,
            parquet_object,
            manifest_object,
            parquet_reused: created.already_existed,
            latency: enc.opened.elapsed(),
        })
    }

    /// Creates this writer's claim on `range` (or finds its own from a retried write, or
    /// another writer's on the same range). Another writer's claim on a different range
    /// starting at the same offset is [`SealError::Superseded`].
    async fn claim(&self, range: OffsetRange) -> Result<(), SealError> {
        let object = claim_name(&self.stream, range.first);
        let ours = Claim::new(&self.stream, range.first, range.last, &self.writer);
        match self
            .store
            .create(&object, Bytes::from(ours.to_bytes()))
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { object }) => {
                let bytes = self.store.get(&object, None).await?;
                let theirs = Claim::parse(&bytes, &self.stream, range.first).map_err(|e| {
                    SealError::BadClaim {
                        stream: self.stream.to_string(),
                        object: object.clone(),
                        message: e.to_string(),
                    }
                })?;
                if theirs.last_offset == range.last {
                    Ok(())
                } else {
                    Err(SealError::Superseded {
                        stream: self.stream.to_string(),
                        first: range.first,
                        claimed_last: theirs.last_offset,
                        last: range.last,
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The manifest at `object` when it is `ours` but for `sealed_at` (and so its signature):
    /// another writer sealed the same claimed range from the same input first. Anything else
    /// there is a conflict.
    async fn adopt(
        &self,
        object: String,
        ours: SignedManifest,
    ) -> Result<SignedManifest, SealError> {
        let (bytes, _) = self.store.read_sealed(&object).await?;
        let same = SignedManifest::parse(&bytes).ok().filter(|theirs| {
            let mut body = theirs.manifest.clone();
            body.sealed_at.clone_from(&ours.manifest.sealed_at);
            theirs.verify_signature(&[self.key.public()]).is_ok() && body == ours.manifest
        });
        same.ok_or_else(|| StoreError::Conflict { object }.into())
    }

    /// Stores the Parquet file, or adopts the one a crash left under its name if it holds
    /// exactly these events (even when another writer encoded it). Returns the stored file's
    /// hash and size, which the manifest signs.
    async fn store_parquet(
        &self,
        object: &str,
        parquet: Bytes,
        stats: &SegmentStats,
    ) -> Result<((Digest, u64), Created), SealError> {
        let ours = (Digest::of(&parquet), parquet.len() as u64);
        match self.store.create(object, parquet).await {
            Ok(created) => Ok((ours, created)),
            Err(StoreError::Conflict { object }) => {
                let (existing, version_id) = self.store.read_sealed(&object).await?;
                if !same_events(existing.clone(), stats) {
                    return Err(StoreError::Conflict { object }.into());
                }
                let created = Created {
                    version_id,
                    already_existed: true,
                };
                Ok(((Digest::of(&existing), existing.len() as u64), created))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Does the Parquet file `file` hold exactly the events `stats` describes? The Merkle root
/// covers every leaf byte (stream, partition, offset and every field), so equal roots and counts
/// mean equal contents, whatever the encoding.
fn same_events(file: Bytes, stats: &SegmentStats) -> bool {
    let mut merkle = cairn_format::merkle::MerkleBuilder::new();
    let scanned = scan_segment(file, |_, leaf| {
        merkle.push_leaf_data(leaf);
        Ok::<(), ()>(())
    });
    matches!(scanned, Ok(Ok(n)) if n == stats.event_count) && merkle.root() == stats.merkle_root
}
