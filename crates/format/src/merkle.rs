//! RFC 6962 (RFC 9162 §2.1.1) Merkle tree hashing.
//!
//! `leaf = SHA-256(0x00 ‖ data)`, `node = SHA-256(0x01 ‖ left ‖ right)`, the empty tree hashes
//! to `SHA-256("")`, and a tree of `n > 1` leaves splits at the largest power of two smaller
//! than `n`. [`MerkleBuilder`] computes the same root streaming, in O(log n) memory.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Streaming RFC 6962 root: push leaf hashes in order, then [`MerkleBuilder::root`].
///
/// The stack holds the roots of complete subtrees of strictly decreasing size (the binary
/// representation of the leaf count); folding it right to left yields exactly the RFC's
/// recursive split.
#[derive(Clone, Debug, Default)]
pub struct MerkleBuilder {
    stack: Vec<(u64, Hash)>,
    size: u64,
}

impl MerkleBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push_leaf_data(&mut self, data: &[u8]) {
        self.push_leaf_hash(leaf_hash(data));
    }

    pub fn push_leaf_hash(&mut self, mut hash: Hash) {
        let mut size = 1u64;
        while let Some(&(top_size, top)) = self.stack.last() {
            if top_size != size {
                break;
            }
            self.stack.pop();
            hash = node_hash(&top, &hash);
            size *= 2;
        }
        self.stack.push((size, hash));
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Root of `leaves` (already leaf-hashed) by the RFC's recursive definition. Used as the
/// reference in tests and by small callers.
pub fn root_recursive(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root_recursive(&leaves[..k]), &root_recursive(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly smaller than `n` (`n > 1`).
pub fn split_point(n: usize) -> usize {
    debug_assert!(n > 1);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The RFC 6962 reference leaves used by Certificate Transparency's implementations' tests
/// (roots here, audit and consistency paths in `log::proof`).
#[cfg(test)]
pub(crate) const REFERENCE_INPUTS: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_root_matches_the_recursive_definition() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 0..=leaves.len() {
            let mut b = MerkleBuilder::new();
            for l in &leaves[..n] {
                b.push_leaf_hash(*l);
            }
            assert_eq!(b.root(), root_recursive(&leaves[..n]), "n = {n}");
        }
    }

    /// The RFC 6962 reference test vectors (as used by Certificate Transparency's
    /// implementations): roots of the first n of eight fixed leaves.
    #[test]
    fn rfc6962_reference_vectors() {
        let inputs = REFERENCE_INPUTS;
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut b = MerkleBuilder::new();
        assert_eq!(
            hex::encode(b.root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (input, want) in inputs.iter().zip(roots) {
            b.push_leaf_data(input);
            assert_eq!(hex::encode(b.root()), want, "size {}", b.size());
        }
    }
}
