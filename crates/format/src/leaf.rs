//! Canonical leaf bytes of an event (docs/FORMAT.md, "Leaf bytes").
//!
//! The Merkle leaf of an event is `SHA-256(0x00 ‖ leaf_bytes)`, where `leaf_bytes` binds the
//! event to its stream position and is recomputable from one sealed Parquet row alone:
//!
//! ```text
//! leaf_bytes = 0x01                                  version
//!            ‖ str(stream_id) ‖ u32(partition) ‖ u64(offset)
//!            ‖ str(event_id) ‖ i64(occurred_at_us) ‖ str(tenant)
//!            ‖ str(actor.id) ‖ str(actor.type) ‖ opt(str(actor.ip))
//!            ‖ str(action) ‖ str(resource.type) ‖ str(resource.id)
//!            ‖ str(outcome) ‖ str(source) ‖ str(sensitivity)
//!            ‖ opt(map(details))
//! str(s)  = u32(len(s)) ‖ UTF-8 bytes;   integers are big-endian, i64 two's complement
//! opt(x)  = 0x00 (absent) | 0x01 ‖ x
//! map(m)  = u32(count) ‖ (str(key) ‖ str(value))*, keys strictly ascending by bytes
//! ```

use crate::event::{AuditEvent, EventView, StreamId};

pub const LEAF_VERSION: u8 = 1;

/// Borrowed view of everything that goes into a leaf, so a verifier can build it straight
/// from Arrow arrays without allocating.
#[derive(Clone, Debug)]
pub struct LeafFields<'a> {
    pub stream_id: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub event_id: &'a str,
    pub occurred_at_us: i64,
    pub tenant: &'a str,
    pub actor_id: &'a str,
    pub actor_type: &'a str,
    pub actor_ip: Option<&'a str>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub outcome: &'a str,
    pub source: &'a str,
    pub sensitivity: &'a str,
    /// Must be sorted by key bytes with unique keys.
    pub details: Option<&'a [(&'a str, &'a str)]>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafError {
    #[error("details keys are not unique and ascending at key {0:?}")]
    DetailsOrder(String),
    #[error("negative partition {0} or offset {1}")]
    Negative(i32, i64),
    #[error("a string of {0} bytes exceeds the 4 GiB limit")]
    TooLong(usize),
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), LeafError> {
    let len = u32::try_from(s.len()).map_err(|_| LeafError::TooLong(s.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Appends the canonical leaf bytes of `f` to `out`.
pub fn encode_leaf(f: &LeafFields<'_>, out: &mut Vec<u8>) -> Result<(), LeafError> {
    if f.partition < 0 || f.offset < 0 {
        return Err(LeafError::Negative(f.partition, f.offset));
    }
    out.push(LEAF_VERSION);
    put_str(out, f.stream_id)?;
    out.extend_from_slice(&(f.partition as u32).to_be_bytes());
    out.extend_from_slice(&(f.offset as u64).to_be_bytes());
    put_str(out, f.event_id)?;
    out.extend_from_slice(&f.occurred_at_us.to_be_bytes());
    put_str(out, f.tenant)?;
    put_str(out, f.actor_id)?;
    put_str(out, f.actor_type)?;
    match f.actor_ip {
        None => out.push(0),
        Some(ip) => {
            out.push(1);
            put_str(out, ip)?;
        }
    }
    put_str(out, f.action)?;
    put_str(out, f.resource_type)?;
    put_str(out, f.resource_id)?;
    put_str(out, f.outcome)?;
    put_str(out, f.source)?;
    put_str(out, f.sensitivity)?;
    match f.details {
        None => out.push(0),
        Some(entries) => {
            out.push(1);
            let count =
                u32::try_from(entries.len()).map_err(|_| LeafError::TooLong(entries.len()))?;
            out.extend_from_slice(&count.to_be_bytes());
            let mut prev: Option<&str> = None;
            for (k, v) in entries {
                if let Some(p) = prev
                    && p.as_bytes() >= k.as_bytes()
                {
                    return Err(LeafError::DetailsOrder(k.to_string()));
                }
                prev = Some(k);
                put_str(out, k)?;
                put_str(out, v)?;
            }
        }
    }
    Ok(())
}

/// Leaf bytes of a validated event at `offset` of `stream`.
pub fn event_leaf(
    stream: &StreamId,
    offset: i64,
    e: &AuditEvent,
    out: &mut Vec<u8>,
) -> Result<(), LeafError> {
    view_leaf(stream, offset, &e.view(), out)
}

/// Leaf bytes of a validated event, borrowed, at `offset` of `stream`.
pub fn view_leaf(
    stream: &StreamId,
    offset: i64,
    e: &EventView<'_>,
    out: &mut Vec<u8>,
) -> Result<(), LeafError> {
    encode_leaf(
        &LeafFields {
            stream_id: &stream.source,
            partition: stream.partition,
            offset,
            event_id: e.event_id,
            occurred_at_us: e.occurred_at_us,
            tenant: e.tenant,
            actor_id: e.actor_id,
            actor_type: e.actor_type,
            actor_ip: e.actor_ip,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            outcome: e.outcome.as_str(),
            source: e.source,
            sensitivity: e.sensitivity.as_str(),
            details: e.details.as_deref(),
        },
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(details: Option<&'a [(&'a str, &'a str)]>) -> LeafFields<'a> {
        LeafFields {
            stream_id: "s",
            partition: 1,
            offset: 2,
            event_id: "e",
            occurred_at_us: -1,
            tenant: "t",
            actor_id: "a",
            actor_type: "u",
            actor_ip: None,
            action: "x",
            resource_type: "r",
            resource_id: "i",
            outcome: "success",
            source: "src",
            sensitivity: "pii",
            details,
        }
    }

    #[test]
    fn encoding_is_exactly_as_documented() {
        let mut out = Vec::new();
        encode_leaf(&fields(Some(&[("k", "v")])), &mut out).unwrap();
        let mut want = vec![1u8];
        want.extend([0, 0, 0, 1, b's']);
        want.extend([0, 0, 0, 1]);
        want.extend([0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend([0, 0, 0, 1, b'e']);
        want.extend([0xff; 8]);
        for s in ["t", "a", "u"] {
            want.extend([0, 0, 0, 1, s.as_bytes()[0]]);
        }
        want.push(0);
        for s in ["x", "r", "i"] {
            want.extend([0, 0, 0, 1, s.as_bytes()[0]]);
        }
        want.extend([0, 0, 0, 7]);
        want.extend(b"success");
        want.extend([0, 0, 0, 3]);
        want.extend(b"src");
        want.extend([0, 0, 0, 3]);
        want.extend(b"pii");
        want.extend([1, 0, 0, 0, 1, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v']);
        assert_eq!(out, want);
    }

    #[test]
    fn absent_and_empty_details_differ() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_leaf(&fields(None), &mut a).unwrap();
        encode_leaf(&fields(Some(&[])), &mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn unsorted_or_duplicate_details_are_refused() {
        let mut out = Vec::new();
        assert!(encode_leaf(&fields(Some(&[("b", "1"), ("a", "2")])), &mut out).is_err());
        assert!(encode_leaf(&fields(Some(&[("a", "1"), ("a", "2")])), &mut out).is_err());
    }
}
