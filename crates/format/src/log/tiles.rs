//! C2SP tlog-tiles (FORMAT.md §12.2): tile names, the hashes a tile holds, entry bundles.
//!
//! Tile height 8: a hash tile at level `L` holds up to 256 hashes of complete subtrees of
//! `2^(8L)` leaves; level 0 holds the leaf hashes. Only the right edge of a tree has partial
//! tiles (`.p/<W>`).

use crate::merkle::{Hash, node_hash};

pub const TILE_HEIGHT: u32 = 8;
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;

/// C2SP's path form of a tile index: groups of three digits from the right, every group but the
/// last prefixed with `x` (`1234067` → `x001/x234/067`).
pub fn index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// The inverse of [`index_path`], accepting only the canonical spelling.
pub fn parse_index(path: &str) -> Option<u64> {
    let groups: Vec<&str> = path.split('/').collect();
    let (last, init) = groups.split_last()?;
    let mut n: u64 = 0;
    fn digits(g: &str) -> Option<u64> {
        (g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
            .then(|| g.parse().ok())
            .flatten()
    }
    for g in init {
        let d = digits(g.strip_prefix('x')?)?;
        n = n.checked_mul(1000)?.checked_add(d)?;
    }
    n = n.checked_mul(1000)?.checked_add(digits(last)?)?;
    (index_path(n) == path).then_some(n)
}

fn suffix(width: usize) -> String {
    if width == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// `v1/log/tile/<level>/<index>[.p/<width>]`.
pub fn hash_tile_name(level: u32, index: u64, width: usize) -> String {
    format!("v1/log/tile/{level}/{}{}", index_path(index), suffix(width))
}

/// `v1/log/tile/entries/<index>[.p/<width>]`.
pub fn entry_bundle_name(index: u64, width: usize) -> String {
    format!("v1/log/tile/entries/{}{}", index_path(index), suffix(width))
}

/// Entries, each prefixed by its length as a big-endian `u16`. Entries are manifest names and
/// hashes, far below 64 KiB.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).expect("a log entry is shorter than 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// The entries of a bundle, or `None` when its bytes are not a sequence of length-prefixed
/// entries.
pub fn parse_bundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
        out.push(bytes.get(2..2 + len)?.to_vec());
        bytes = &bytes[2 + len..];
    }
    Some(out)
}

/// The entry bundles that hold the entries `0..size`, with the number of entries in each.
pub fn bundles_for(size: u64) -> Vec<(String, usize)> {
    let w = TILE_WIDTH as u64;
    (0..size.div_ceil(w))
        .map(|i| {
            let width = (size - i * w).min(w) as usize;
            (entry_bundle_name(i, width), width)
        })
        .collect()
}

/// The stored hashes of a tree: `levels[k]` holds the hashes of its complete subtrees of `2^k`
/// leaves, left to right (`levels[0]` are the leaf hashes).
pub fn levels(leaves: &[Hash]) -> Vec<Vec<Hash>> {
    let mut out = vec![leaves.to_vec()];
    while out.last().is_some_and(|l| l.len() > 1) {
        let below = out.last().expect("not empty");
        let up = below
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
        out.push(up);
    }
    out
}

/// Every hash tile and entry bundle the tree of `entries` (with leaf hashes `leaves`) needs and a
/// tree of `old_size` leaves did not have, as (object name, bytes). With `old_size` 0: every
/// tile of the tree.
pub fn new_objects(leaves: &[Hash], entries: &[Vec<u8>], old_size: u64) -> Vec<(String, Vec<u8>)> {
    assert_eq!(leaves.len(), entries.len());
    let levels = levels(leaves);
    let w = TILE_WIDTH as u64;
    let mut out = Vec::new();
    // Width of tile `index` in a row of `count` hashes (0 when the tile is not there).
    let width_at = |count: u64, index: u64| count.saturating_sub(index * w).min(w);
    for tile_level in 0.. {
        let shift = TILE_HEIGHT * tile_level;
        let Some(row) = levels.get(shift as usize) else {
            break;
        };
        let count = row.len() as u64;
        if count == 0 {
            break;
        }
        let old_count = old_size >> shift;
        for index in (old_count / w)..count.div_ceil(w) {
            let width = width_at(count, index);
            if width == 0 || width == width_at(old_count, index) {
                continue;
            }
            let start = (index * w) as usize;
            let range = start..start + width as usize;
            let bytes = row[range.clone()].concat();
            out.push((hash_tile_name(tile_level, index, width as usize), bytes));
            if tile_level == 0 {
                out.push((
                    entry_bundle_name(index, width as usize),
                    encode_bundle(&entries[range]),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn index_paths_are_c2sp() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(5), "005");
        assert_eq!(index_path(1000), "x001/000");
        assert_eq!(index_path(1234067), "x001/x234/067");
        for n in [0, 7, 999, 1000, 1234067, u64::MAX] {
            assert_eq!(parse_index(&index_path(n)), Some(n));
        }
        for bad in ["5", "x005", "005/001", "x000/005", "x1/005", "0a5", ""] {
            assert_eq!(parse_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn bundles_round_trip() {
        let entries = [b"a".to_vec(), vec![], vec![7; 300]];
        assert_eq!(parse_bundle(&encode_bundle(&entries)).unwrap(), entries);
        assert_eq!(parse_bundle(&[0, 5, 1]), None);
        assert_eq!(bundles_for(0), vec![]);
        assert_eq!(
            bundles_for(257),
            vec![
                ("v1/log/tile/entries/000".into(), 256),
                ("v1/log/tile/entries/001.p/1".into(), 1)
            ]
        );
    }

    #[test]
    fn tiles_hold_the_levels_and_grow_only_at_the_edge() {
        let n = 256 * 256 + 3;
        let leaves: Vec<Hash> = (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let entries: Vec<Vec<u8>> = (0..n as u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let all = new_objects(&leaves, &entries, 0);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"v1/log/tile/0/255"));
        assert!(names.contains(&"v1/log/tile/0/256.p/3"));
        assert!(names.contains(&"v1/log/tile/entries/256.p/3"));
        assert!(names.contains(&"v1/log/tile/1/000"));
        assert!(names.contains(&"v1/log/tile/2/000.p/1"));
        assert_eq!(all.len(), 257 * 2 + 1 + 1);
        let level1 = &all
            .iter()
            .find(|(n, _)| n == "v1/log/tile/1/000")
            .unwrap()
            .1;
        assert_eq!(
            &level1[..32],
            &crate::merkle::root_recursive(&leaves[..256])
        );
        // Growing from n to n + 1 rewrites only the edge: the level-0 partial tile and bundle.
        let mut more = leaves.clone();
        more.push(leaf_hash(b"x"));
        let mut more_entries = entries.clone();
        more_entries.push(b"x".to_vec());
        let grown: Vec<String> = new_objects(&more, &more_entries, n as u64)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            grown,
            ["v1/log/tile/0/256.p/4", "v1/log/tile/entries/256.p/4"]
        );
    }
}
