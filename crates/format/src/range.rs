//! Inclusive offset ranges, as manifests list them (`[first, last]` in JSON).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The inclusive range `first..=last` of stream offsets. Serialised as the JSON pair
/// `[first, last]` (docs/FORMAT.md §6.1). A parsed range may break the rules (`first > last`,
/// negative bounds): readers check them (`Manifest::rule_violations`), they do not assume them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "[i64; 2]", into = "[i64; 2]")]
pub struct OffsetRange {
    pub first: i64,
    pub last: i64,
}

impl OffsetRange {
    pub const fn new(first: i64, last: i64) -> Self {
        OffsetRange { first, last }
    }

    /// A single offset.
    pub const fn one(offset: i64) -> Self {
        OffsetRange::new(offset, offset)
    }

    /// Number of offsets (0 for a reversed range).
    pub fn width(&self) -> u64 {
        (self.last as i128 - self.first as i128 + 1).max(0) as u64
    }

    pub fn contains(&self, offset: i64) -> bool {
        self.first <= offset && offset <= self.last
    }

    /// Does `self` lie inside `outer` (and is it not reversed)?
    pub fn within(&self, outer: &OffsetRange) -> bool {
        self.first <= self.last && outer.first <= self.first && self.last <= outer.last
    }

    /// Do the two ranges share an offset?
    pub fn overlaps(&self, other: &OffsetRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// Appends `r` to ascending `ranges`, merging it into the last range when adjacent
    /// (writers list merged ranges, docs/FORMAT.md §6.1).
    pub fn push_merged(ranges: &mut Vec<OffsetRange>, r: OffsetRange) {
        match ranges.last_mut() {
            Some(prev) if prev.last.checked_add(1) == Some(r.first) => prev.last = r.last,
            _ => ranges.push(r),
        }
    }

    /// Total width of `ranges`.
    pub fn total(ranges: &[OffsetRange]) -> u64 {
        ranges.iter().map(OffsetRange::width).sum()
    }
}

impl From<[i64; 2]> for OffsetRange {
    fn from([first, last]: [i64; 2]) -> Self {
        OffsetRange { first, last }
    }
}

impl From<OffsetRange> for [i64; 2] {
    fn from(r: OffsetRange) -> Self {
        [r.first, r.last]
    }
}

impl fmt::Display for OffsetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_a_json_pair_and_merges_adjacent_ranges() {
        let r = OffsetRange::new(2, 5);
        assert_eq!(serde_json::to_string(&r).unwrap(), "[2,5]");
        assert_eq!(serde_json::from_str::<OffsetRange>("[2,5]").unwrap(), r);
        assert!(serde_json::from_str::<OffsetRange>("[2,5,6]").is_err());
        assert_eq!(r.width(), 4);
        assert_eq!(OffsetRange::new(5, 2).width(), 0);
        let mut v = vec![];
        for r in [
            OffsetRange::one(1),
            OffsetRange::one(2),
            OffsetRange::new(4, 6),
        ] {
            OffsetRange::push_merged(&mut v, r);
        }
        assert_eq!(v, [OffsetRange::new(1, 2), OffsetRange::new(4, 6)]);
        assert_eq!(OffsetRange::total(&v), 5);
        assert!(OffsetRange::new(3, 4).within(&OffsetRange::new(1, 9)));
        assert!(!OffsetRange::new(4, 3).within(&OffsetRange::new(1, 9)));
        assert!(OffsetRange::new(3, 4).overlaps(&OffsetRange::new(4, 9)));
    }
}
