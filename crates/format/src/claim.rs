//! Claims: a writer's reservation of the segment that starts at an offset (docs/FORMAT.md §7).
//!
//! Before it writes a segment's Parquet file, a sealer creates
//! `v1/streams/<id>/<partition>/<first:020>.claim` with a conditional create. Every writer that
//! seals the offset `first` of a stream must create (or find) that one object, so two writers
//! that both believe they own the stream (a member the consumer group already replaced, whose
//! write outlasted the rebalance) cannot seal different ranges from the same offset: the
//! second one finds the first one's claim and either seals exactly that range (identical
//! content; the objects already there are adopted) or gives up the segment. Claims are not
//! signed and carry no evidence: the manifests are the record, a claim only coordinates
//! writers.

use serde::{Deserialize, Serialize};

use crate::event::StreamId;
use crate::manifest::StreamRef;

/// The `format` tag of a claim.
pub const CLAIM_FORMAT: &str = "cairn.claim.v1";

/// A claim object's content: one line of JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub format: String,
    pub stream: StreamRef,
    pub first_offset: i64,
    pub last_offset: i64,
    /// Identifies the writer (a random 128-bit value per opened sealer, lowercase hex), so a
    /// writer that retries its own create recognises its claim.
    pub writer: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid claim: {0}")]
pub struct ClaimError(String);

impl Claim {
    pub fn new(stream: &StreamId, first_offset: i64, last_offset: i64, writer: &str) -> Self {
        Claim {
            format: CLAIM_FORMAT.to_string(),
            stream: StreamRef {
                id: stream.source.clone(),
                partition: stream.partition,
            },
            first_offset,
            last_offset,
            writer: writer.to_string(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("a claim serialises");
        out.push(b'\n');
        out
    }

    /// Parses a claim object found at the name of `stream`'s claim on `first`, checking that it
    /// is well formed and names that stream and offset.
    pub fn parse(bytes: &[u8], stream: &StreamId, first: i64) -> Result<Self, ClaimError> {
        let text = std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| t.strip_suffix('\n'))
            .filter(|t| !t.contains('\n'))
            .ok_or_else(|| ClaimError("not one line of UTF-8 ending in a newline".into()))?;
        let c: Claim = serde_json::from_str(text).map_err(|e| ClaimError(e.to_string()))?;
        if c.format != CLAIM_FORMAT {
            return Err(ClaimError(format!("format {:?}", c.format)));
        }
        if c.stream.id != stream.source || c.stream.partition != stream.partition {
            return Err(ClaimError(format!(
                "names stream {}/{}, not {stream}",
                c.stream.id, c.stream.partition
            )));
        }
        if c.first_offset != first || c.last_offset < c.first_offset {
            return Err(ClaimError(format!(
                "range {}..={} does not start at its name's offset {first}",
                c.first_offset, c.last_offset
            )));
        }
        let hex = |s: &str| {
            s.len() == 32
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(&c.writer) {
            return Err(ClaimError(
                "writer is not 32 lowercase hex digits".to_string(),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_round_trips_and_must_match_its_name() {
        let s = StreamId::new("audit", 3).unwrap();
        let w = "0123456789abcdef0123456789abcdef";
        let c = Claim::new(&s, 100, 149, w);
        let bytes = c.to_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "{\"format\":\"cairn.claim.v1\",\"stream\":{\"id\":\"audit\",\"partition\":3},\"first_offset\":100,\"last_offset\":149,\"writer\":\"0123456789abcdef0123456789abcdef\"}\n"
        );
        assert_eq!(Claim::parse(&bytes, &s, 100), Ok(c.clone()));
        assert!(Claim::parse(&bytes, &s, 101).is_err());
        assert!(Claim::parse(&bytes, &StreamId::new("audit", 4).unwrap(), 100).is_err());
        assert!(Claim::parse(&bytes[..bytes.len() - 1], &s, 100).is_err());
        let reversed = Claim::new(&s, 100, 99, w).to_bytes();
        assert!(Claim::parse(&reversed, &s, 100).is_err());
        let bad_writer = Claim::new(&s, 100, 149, "ABC").to_bytes();
        assert!(Claim::parse(&bad_writer, &s, 100).is_err());
    }
}
