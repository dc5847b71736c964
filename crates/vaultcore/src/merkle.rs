//! RFC 6962 / RFC 9162 Merkle trees over SHA-256: leaf = H(0x00 || data), node = H(0x01 || left || right),
//! empty tree = H(""). Proof generation (PATH, SUBPROOF) and verification (RFC 9162 sections 2.1.3.2 and
//! 2.1.4.2, with the edge cases of the transparency-dev Go verifier).

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &[u8], right: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only tree in memory that keeps every complete-subtree hash: `levels[k][i]` is the hash of
/// leaves `i*2^k .. (i+1)*2^k`. Appends cost O(1) amortised hashes; roots and proofs for any size up to
/// the current one cost O(log n) hashes.
#[derive(Default, Clone)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut t = Tree::new();
        for l in leaves {
            t.append(*l);
        }
        t
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash; returns its index.
    pub fn append(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() - 1;
        let mut i = index;
        let mut k = 0;
        while i % 2 == 1 {
            let h = node_hash(&self.levels[k][i - 1], &self.levels[k][i]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(h);
            k += 1;
            i /= 2;
        }
        index as u64
    }

    /// MTH(D[start:end]); the range must be within the tree.
    fn range_hash(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && start % n == 0 {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(start >> k) as usize];
        }
        let k = split(n);
        node_hash(&self.range_hash(start, start + k), &self.range_hash(start + k, end))
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Option<Hash> {
        (size <= self.size()).then(|| self.range_hash(0, size))
    }

    /// PATH(index, D[0:size]).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if size > self.size() || index >= size {
            return None;
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out);
        Some(out)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.range_hash(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.range_hash(start, start + k));
        }
    }

    /// PROOF(size1, D[0:size2]) for 0 < size1 <= size2 (empty when the sizes are equal).
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Option<Vec<Hash>> {
        if size2 > self.size() || size1 == 0 || size1 > size2 {
            return None;
        }
        let mut out = Vec::new();
        if size1 < size2 {
            self.subproof(size1, 0, size2, true, &mut out);
        }
        Some(out)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, b: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !b {
                out.push(self.range_hash(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, b, out);
            out.push(self.range_hash(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.range_hash(start, start + k));
        }
    }
}

/// MTH of a list of leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    Tree::from_leaves(leaves).root(leaves.len() as u64).expect("size within the tree")
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 9162 section 2.1.3.2: does `proof` show that `leaf` (32 bytes) is at `index` in the tree of `size`
/// with `root`?
pub fn verify_inclusion(leaf: &[u8], index: u64, size: u64, proof: &[&[u8]], root: &[u8]) -> bool {
    if index >= size || leaf.len() != 32 {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r: Vec<u8> = leaf.to_vec();
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r).to_vec();
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p).to_vec();
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && ct_eq(&r, root)
}

/// RFC 9162 section 2.1.4.2: does `proof` show that the tree of `size2` with `root2` extends the tree of
/// `size1` with `root1`? As the Go verifier: size1 = 0 and size1 > size2 are refused; equal sizes need an
/// empty proof and equal roots.
pub fn verify_consistency(size1: u64, size2: u64, root1: &[u8], root2: &[u8], proof: &[&[u8]]) -> bool {
    if size1 == 0 || size2 < size1 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && ct_eq(root1, root2);
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<&[u8]> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(root1);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr: Vec<u8> = path[0].to_vec();
    let mut sr: Vec<u8> = path[0].to_vec();
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr).to_vec();
            sr = node_hash(c, &sr).to_vec();
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c).to_vec();
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && ct_eq(&fr, root1) && ct_eq(&sr, root2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from the RFC's recursive definition, to check the tree against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn empty_and_leaf_known_answers() {
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    #[test]
    fn every_proof_of_small_trees_verifies() {
        let leaves: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let t = Tree::from_leaves(&leaves);
        for size in 1..=40u64 {
            let r = t.root(size).unwrap();
            assert_eq!(r, mth(&leaves[..size as usize]));
            for i in 0..size {
                let p = t.inclusion_proof(i, size).unwrap();
                let pr: Vec<&[u8]> = p.iter().map(|h| &h[..]).collect();
                assert!(verify_inclusion(&leaves[i as usize], i, size, &pr, &r));
                assert!(!verify_inclusion(&leaves[i as usize], i ^ 1, size, &pr, &r) || size == 1);
            }
            for s1 in 1..=size {
                let p = t.consistency_proof(s1, size).unwrap();
                let pr: Vec<&[u8]> = p.iter().map(|h| &h[..]).collect();
                let r1 = t.root(s1).unwrap();
                assert!(verify_consistency(s1, size, &r1, &r, &pr), "{s1} {size}");
                if s1 < size {
                    let mut bad = r1;
                    bad[0] ^= 1;
                    assert!(!verify_consistency(s1, size, &bad, &r, &pr));
                }
            }
        }
    }

    #[test]
    fn refuses_out_of_range() {
        let t = Tree::from_leaves(&[leaf_hash(b"a")]);
        assert!(t.inclusion_proof(1, 1).is_none());
        assert!(t.consistency_proof(0, 1).is_none());
        assert!(t.root(2).is_none());
        assert!(!verify_inclusion(&[0u8; 32], 3, 3, &[], &[0u8; 32]));
    }
}
