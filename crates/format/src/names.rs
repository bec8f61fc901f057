//! Object names inside a store (docs/FORMAT.md, "Object names").
//!
//! ```text
//! v1/streams/<stream id>/<partition>/<first:020>-<last:020>.parquet
//! v1/streams/<stream id>/<partition>/<first:020>-<last:020>.manifest
//! v1/streams/<stream id>/<partition>/<first:020>.claim
//! ```
//!
//! Offsets are zero-padded to 20 digits so lexicographic order is offset order. Names are a
//! pure function of (stream, first, last): a retry after a crash writes the same names.

use crate::event::StreamId;
use crate::range::OffsetRange;

pub const ROOT: &str = "v1/streams";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Parquet,
    Manifest,
}

impl ObjectKind {
    fn ext(self) -> &'static str {
        match self {
            ObjectKind::Parquet => "parquet",
            ObjectKind::Manifest => "manifest",
        }
    }
}

/// The directory (prefix, no trailing slash) holding one stream's objects.
pub fn stream_dir(stream: &StreamId) -> String {
    format!("{ROOT}/{}/{}", stream.source, stream.partition)
}

pub fn object_name(stream: &StreamId, first: i64, last: i64, kind: ObjectKind) -> String {
    format!(
        "{}/{first:020}-{last:020}.{}",
        stream_dir(stream),
        kind.ext()
    )
}

/// The name of `stream`'s claim on the segment starting at `first` ([`crate::claim`]).
pub fn claim_name(stream: &StreamId, first: i64) -> String {
    format!("{}/{first:020}.claim", stream_dir(stream))
}

/// Parses a name produced by [`claim_name`]: (stream, first offset).
pub fn parse_claim_name(name: &str) -> Option<(StreamId, i64)> {
    let (dir, file) = name.rsplit_once('/')?;
    let first = file.strip_suffix(".claim")?;
    if first.len() != 20 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let first: i64 = first.parse().ok()?;
    // The directory must be a stream's: reuse the segment-name parser on a sibling name.
    let n = parse_object_name(&format!("{dir}/{first:020}-{first:020}.parquet"))?;
    Some((n.stream, first))
}

/// A parsed object name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    pub stream: StreamId,
    pub first: i64,
    pub last: i64,
    pub kind: ObjectKind,
}

impl ObjectName {
    pub fn range(&self) -> OffsetRange {
        OffsetRange::new(self.first, self.last)
    }

    /// The same segment's object of the other kind (its manifest, or its Parquet file).
    pub fn sibling(&self, kind: ObjectKind) -> String {
        object_name(&self.stream, self.first, self.last, kind)
    }
}

/// Parses a name produced by [`object_name`]; anything else is `None`.
pub fn parse_object_name(name: &str) -> Option<ObjectName> {
    let rest = name.strip_prefix(ROOT)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (Some(source), Some(partition), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let partition_text = partition;
    let partition: i32 = partition_text.parse().ok()?;
    if partition.to_string() != partition_text {
        return None;
    }
    let stream = StreamId::new(source, partition).ok()?;
    let (range, kind) = if let Some(r) = file.strip_suffix(".parquet") {
        (r, ObjectKind::Parquet)
    } else if let Some(r) = file.strip_suffix(".manifest") {
        (r, ObjectKind::Manifest)
    } else {
        return None;
    };
    let (first, last) = range.split_once('-')?;
    if first.len() != 20 || last.len() != 20 {
        return None;
    }
    let first: i64 = first.parse().ok()?;
    let last: i64 = last.parse().ok()?;
    if first < 0 || last < first {
        return None;
    }
    Some(ObjectName {
        stream,
        first,
        last,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_offset() {
        let s = StreamId::new("billing", 2).unwrap();
        let a = object_name(&s, 9, 10, ObjectKind::Manifest);
        let b = object_name(&s, 11, 100, ObjectKind::Manifest);
        assert_eq!(
            a,
            "v1/streams/billing/2/00000000000000000009-00000000000000000010.manifest"
        );
        assert!(a < b);
        let p = parse_object_name(&a).unwrap();
        assert_eq!(
            (p.stream, p.first, p.last, p.kind),
            (s, 9, 10, ObjectKind::Manifest)
        );
        for bad in [
            "v1/streams/billing/02/00000000000000000009-00000000000000000010.manifest",
            "v1/streams/billing/2/9-10.manifest",
            "v1/streams/billing/2/00000000000000000010-00000000000000000009.manifest",
            "v1/streams/billing/2/00000000000000000009-00000000000000000010.json",
            "v2/streams/billing/2/00000000000000000009-00000000000000000010.manifest",
        ] {
            assert_eq!(parse_object_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn claim_names_round_trip() {
        let s = StreamId::new("billing", 2).unwrap();
        let c = claim_name(&s, 9);
        assert_eq!(c, "v1/streams/billing/2/00000000000000000009.claim");
        assert_eq!(parse_claim_name(&c), Some((s, 9)));
        assert_eq!(parse_object_name(&c), None);
        for bad in [
            "v1/streams/billing/2/9.claim",
            "v1/streams/billing/02/00000000000000000009.claim",
            "v1/streams/billing/2/0000000000000000000a.claim",
            "v1/streams/billing/2/+0000000000000000009.claim",
            "v1/streams/billing/00000000000000000009.claim",
            "v1/streams/billing/2/00000000000000000009-00000000000000000010.claim",
        ] {
            assert_eq!(parse_claim_name(bad), None, "{bad}");
        }
    }
}
