//! RFC 9162 §2.1.3 inclusion and §2.1.4 consistency proofs over RFC 6962 trees: generation
//! from the leaf hashes, and verification exactly as the RFC's algorithms say (§2.1.3.2,
//! §2.1.4.2). The same code proves events in a segment's tree and manifests in the log.
//!
//! Verification is deliberately small and follows the RFC line by line: a verifier that
//! accepts a forged proof is worse than none (immudb's CVE-2022-36111).

use super::tiles;
use crate::merkle::{Hash, node_hash, split_point};

/// A tree that keeps the hashes of its complete subtrees ([`tiles::levels`]), so that each
/// proof costs O(log² n) hashes instead of rehashing the leaves: proving many events of one
/// segment, or many manifests of one log, builds it once.
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
    size: usize,
}

impl MerkleTree {
    pub fn new(leaves: &[Hash]) -> MerkleTree {
        MerkleTree {
            levels: tiles::levels(leaves),
            size: leaves.len(),
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// MTH of the leaves `start..start + len` (`len > 0`). In the RFC's recursion every
    /// power-of-two subtree starts at a multiple of its size, so it is a stored hash; other
    /// ranges split as the RFC says.
    fn root_of(&self, start: usize, len: usize) -> Hash {
        if len.is_power_of_two() {
            let level = len.trailing_zeros() as usize;
            return self.levels[level][start >> level];
        }
        let k = split_point(len);
        node_hash(&self.root_of(start, k), &self.root_of(start + k, len - k))
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        if self.size == 0 {
            crate::merkle::empty_root()
        } else {
            self.root_of(0, self.size)
        }
    }

    /// PATH(m, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf `m`, bottom up. `None`
    /// when `m` is not a leaf index.
    pub fn inclusion_path(&self, m: usize) -> Option<Vec<Hash>> {
        if m >= self.size {
            return None;
        }
        let mut out = Vec::new();
        self.path(0, self.size, m, &mut out);
        Some(out)
    }

    fn path(&self, start: usize, n: usize, m: usize, out: &mut Vec<Hash>) {
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(start, k, m, out);
            out.push(self.root_of(start + k, n - k));
        } else {
            self.path(start + k, n - k, m - k, out);
            out.push(self.root_of(start, k));
        }
    }

    /// PROOF(m, D[n]) of RFC 9162 §2.1.4.1: that the first `m` leaves are a prefix of the
    /// tree. `None` unless `0 < m ≤ n`.
    pub fn consistency_path(&self, m: usize) -> Option<Vec<Hash>> {
        if m == 0 || m > self.size {
            return None;
        }
        let mut out = Vec::new();
        self.subproof(m, 0, self.size, true, &mut out);
        Some(out)
    }

    fn subproof(&self, m: usize, start: usize, n: usize, b: bool, out: &mut Vec<Hash>) {
        if m == n {
            if !b {
                out.push(self.root_of(start, n));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, k, b, out);
            out.push(self.root_of(start + k, n - k));
        } else {
            self.subproof(m - k, start + k, n - k, false, out);
            out.push(self.root_of(start, k));
        }
    }
}

/// PATH(m, D[n]) of RFC 9162 §2.1.3.1 for one leaf (see [`MerkleTree`] for many).
pub fn inclusion_path(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    MerkleTree::new(leaves).inclusion_path(m)
}

/// PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (see [`MerkleTree`]).
pub fn consistency_path(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    MerkleTree::new(leaves).consistency_path(m)
}

/// RFC 9162 §2.1.3.2: does `path` prove that `leaf_hash` is leaf `index` of the tree of
/// `size` leaves whose root is `root`?
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `path` prove that the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root `new_root`?
/// `old_size` must be at least 1 (every tree extends the empty one; there is nothing to prove).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return path.is_empty() && old_root == new_root;
    }
    if path.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = path.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root_recursive};

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn reference_leaves() -> Vec<Hash> {
        crate::merkle::REFERENCE_INPUTS
            .iter()
            .map(|i| leaf_hash(i))
            .collect()
    }

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Inclusion and consistency proofs from the reference vectors of Certificate
    /// Transparency's merkle tree tests (transparency-dev/merkle `testonly`).
    #[test]
    fn reference_vectors() {
        let l = reference_leaves();
        // Leaf 0 in a tree of 8: path from the reference implementation.
        assert_eq!(
            inclusion_path(&l, 0).unwrap(),
            [
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        // Leaf 5 in a tree of 8.
        assert_eq!(
            inclusion_path(&l, 5).unwrap(),
            [
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        // Consistency 1 → 8 and 6 → 8.
        assert_eq!(
            consistency_path(&l, 1).unwrap(),
            [
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        assert_eq!(
            consistency_path(&l, 6).unwrap(),
            [
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        assert_eq!(
            consistency_path(&l[..5], 2).unwrap(),
            [
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ]
        );
        assert_eq!(
            inclusion_path(&l, 4).unwrap(),
            [
                h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        let root8 = root_recursive(&l);
        assert!(verify_inclusion(
            &l[5],
            5,
            8,
            &inclusion_path(&l, 5).unwrap(),
            &root8
        ));
    }

    /// Every proof of every leaf and prefix verifies, for many tree sizes; and each proof
    /// fails when anything about it changes.
    #[test]
    fn proofs_verify_and_tampering_fails_for_many_sizes() {
        let all = leaves(70);
        for n in 1..=all.len() {
            let d = &all[..n];
            let root = root_recursive(d);
            for m in 0..n {
                let p = inclusion_path(d, m).unwrap();
                assert!(verify_inclusion(&d[m], m as u64, n as u64, &p, &root));
                // Another leaf, index, size, root; a truncated or extended path.
                let other = (m + 1) % n;
                if other != m {
                    assert!(!verify_inclusion(&d[other], m as u64, n as u64, &p, &root));
                    assert!(!verify_inclusion(&d[m], other as u64, n as u64, &p, &root));
                }
                // The proof presented for the next tree size, against that tree's root.
                if n < all.len() {
                    let next = root_recursive(&all[..n + 1]);
                    assert!(!verify_inclusion(&d[m], m as u64, n as u64 + 1, &p, &next));
                }
                assert!(!verify_inclusion(&d[m], n as u64, n as u64, &p, &root));
                if !p.is_empty() {
                    assert!(!verify_inclusion(&d[m], m as u64, n as u64, &p[1..], &root));
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(&d[m], m as u64, n as u64, &bad, &root));
                }
                let mut longer = p.clone();
                longer.push(root);
                assert!(!verify_inclusion(&d[m], m as u64, n as u64, &longer, &root));
                if p.len() >= 2 {
                    let mut swapped = p.clone();
                    swapped.swap(0, 1);
                    assert!(!verify_inclusion(
                        &d[m], m as u64, n as u64, &swapped, &root
                    ));
                }
            }
            for m in 1..=n {
                let old = root_recursive(&d[..m]);
                let p = consistency_path(d, m).unwrap();
                assert!(verify_consistency(m as u64, n as u64, &old, &root, &p));
                if m < n {
                    assert!(!verify_consistency(m as u64, n as u64, &root, &root, &p));
                    assert!(!verify_consistency(m as u64, n as u64, &old, &old, &p));
                    assert!(!verify_consistency(m as u64 + 1, n as u64, &old, &root, &p));
                    if n < all.len() {
                        let next = root_recursive(&all[..n + 1]);
                        assert!(!verify_consistency(m as u64, n as u64 + 1, &old, &next, &p));
                    }
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &old,
                        &root,
                        &p[..p.len() - 1]
                    ));
                    let mut longer = p.clone();
                    longer.push(root);
                    assert!(!verify_consistency(
                        m as u64, n as u64, &old, &root, &longer
                    ));
                    let mut bad = p.clone();
                    bad[0][31] ^= 1;
                    assert!(!verify_consistency(m as u64, n as u64, &old, &root, &bad));
                } else {
                    assert!(p.is_empty());
                }
            }
            assert!(!verify_consistency(0, n as u64, &root, &root, &[]));
            assert!(inclusion_path(d, n).is_none());
            assert!(consistency_path(d, 0).is_none());
        }
    }
}
