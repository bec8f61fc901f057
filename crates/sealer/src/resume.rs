//! Opening a stream: where it resumes (after the newest manifest, or into a range a crash or
//! another writer's claim left pending) and with which chain head.

use std::collections::VecDeque;
use std::sync::Arc;

use cairn_format::names::{
    ObjectKind, ObjectName, parse_claim_name, parse_object_name, stream_dir,
};
use cairn_format::{Claim, Digest, SignedManifest, SigningKey, StreamId};
use cairn_store::StoreWriter;

use crate::{SealError, SegmentLimits, StreamSealer};

impl StreamSealer {
    /// Opens `stream` in `store`, resuming after its newest manifest.
    pub async fn open(
        store: Arc<StoreWriter>,
        key: SigningKey,
        stream: StreamId,
        limits: SegmentLimits,
    ) -> Result<Self, SealError> {
        let listing = store.list(&format!("{}/", stream_dir(&stream))).await?;
        let names: Vec<_> = listing
            .iter()
            .filter_map(|o| parse_object_name(&o.name).map(|n| (o.name.clone(), n)))
            .filter(|(_, n)| n.stream == stream)
            .collect();
        let newest = names
            .iter()
            .filter(|(_, n)| n.kind == ObjectKind::Manifest)
            .max_by_key(|(_, n)| (n.last, n.first));
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| SealError::Random(e.to_string()))?;
        let origin = crate::ensure_origin(&store, None).await?;
        let mut sealer = StreamSealer {
            origin,
            store,
            key,
            stream: stream.clone(),
            limits,
            next_seq: 0,
            prev_hash: Digest::genesis(),
            next_offset: None,
            forced_last: None,
            writer: id.iter().map(|b| format!("{b:02x}")).collect(),
            pending: None,
            in_flight: VecDeque::new(),
        };
        if let Some((object, n)) = newest {
            sealer.resume_after(object, n).await?;
        }
        sealer.resume_into_pending(&listing, &names).await?;
        Ok(sealer)
    }

    /// Takes the chain head from the stream's newest manifest, which this key must have signed.
    async fn resume_after(&mut self, object: &str, n: &ObjectName) -> Result<(), SealError> {
        let head_err = |message: String| SealError::ChainHead {
            stream: self.stream.to_string(),
            object: object.to_string(),
            message,
        };
        let bytes = self.store.get(object, None).await?;
        let sm = SignedManifest::parse(&bytes).map_err(|e| head_err(e.to_string()))?;
        if let Err(e) = sm.verify_signature(&[self.key.public()]) {
            return Err(head_err(format!(
                "is not validly signed by this signing key ({e})"
            )));
        }
        let m = &sm.manifest;
        if !m.matches(n) {
            return Err(head_err("does not describe the range its name says".into()));
        }
        self.next_seq = m.seq + 1;
        self.prev_hash = sm.chain_hash();
        self.next_offset = Some(m.last_offset + 1);
        Ok(())
    }

    /// A range the next segment must be exactly: a Parquet object without a manifest at the
    /// resume point (a crash between the two writes: sealed again so the names and bytes
    /// match), else another writer's claim there (its write may still be under way, or it
    /// stopped after claiming).
    async fn resume_into_pending(
        &mut self,
        listing: &[cairn_store::ObjectInfo],
        names: &[(String, ObjectName)],
    ) -> Result<(), SealError> {
        let sealed: std::collections::HashSet<(i64, i64)> = names
            .iter()
            .filter(|(_, n)| n.kind == ObjectKind::Manifest)
            .map(|(_, n)| (n.first, n.last))
            .collect();
        let next = self.next_offset;
        let orphan = names
            .iter()
            .filter(|(_, n)| n.kind == ObjectKind::Parquet && !sealed.contains(&(n.first, n.last)))
            .filter(|(_, n)| next.is_none_or(|next| n.first == next))
            .min_by_key(|(_, n)| (n.first, n.last));
        if let Some((_, n)) = orphan {
            self.next_offset = Some(n.first);
            self.forced_last = Some(n.last);
            return Ok(());
        }
        let claim = listing
            .iter()
            .filter_map(|o| parse_claim_name(&o.name).map(|(s, first)| (o.name.clone(), s, first)))
            .filter(|(_, s, first)| *s == self.stream && next.is_none_or(|next| *first == next))
            .min_by_key(|(_, _, first)| *first);
        if let Some((object, _, first)) = claim {
            let bytes = self.store.get(&object, None).await?;
            let c = Claim::parse(&bytes, &self.stream, first).map_err(|e| SealError::BadClaim {
                stream: self.stream.to_string(),
                object: object.clone(),
                message: e.to_string(),
            })?;
            self.next_offset = Some(first);
            self.forced_last = Some(c.last_offset);
        }
        Ok(())
    }
}
