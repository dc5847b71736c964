//! RFC 6962 / RFC 9162 Merkle trees over SHA-256: leaf = H(0x00 || data), node = H(0x01 || left || right),
//! empty tree = H(""). Proof generation (PATH, SUBPROOF) and verification (RFC 9162 sections 2.1.3.2 and
//! 2.1.4.2, with the edge cases of the transparency-dev Go verifier).

use crate::error::Error;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

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

/// The stored record of leaf `index` appended to a tree whose right border is `left` (entry `level`:
/// the hash of the complete subtree of `2^level` leaves just left of the one the leaf completes at that
/// level; only the levels below the leaf's trailing one bits are read): the leaf hash, the hash of each
/// complete subtree the leaf completes (smallest first), then the leaf's bytes. Returns the record, the
/// leaf hash, and the largest subtree's hash with its level (the border's new entry). None when an
/// entry it needs is missing or not 32 bytes. `vaultd.journal.tree._record_at` is the reference.
pub fn border_record(index: u64, left: &[&[u8]], leaf: &[u8]) -> Option<(Vec<u8>, Hash, Hash, usize)> {
    let levels = index.trailing_ones() as usize;
    let mut record = Vec::with_capacity(32 * (levels + 1) + leaf.len());
    let lh = leaf_hash(leaf);
    let mut h = lh;
    record.extend_from_slice(&h);
    for l in left.get(..levels)? {
        if l.len() != 32 {
            return None;
        }
        h = node_hash(l, &h);
        record.extend_from_slice(&h);
    }
    record.extend_from_slice(leaf);
    Some((record, lh, h, levels))
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
        path(index, 0, size, &mut |s, e| Some(self.range_hash(s, e)))
    }

    /// PROOF(size1, D[0:size2]) for 0 < size1 <= size2 (empty when the sizes are equal).
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Option<Vec<Hash>> {
        if size2 > self.size() || size1 == 0 || size1 > size2 {
            return None;
        }
        subproof(size1, size2, &mut |s, e| Some(self.range_hash(s, e)))
    }
}

/// RFC 9162 PATH(m, D[start:end]) (section 2.1.3.1), with `mth(start, end)` giving each subtree hash
/// it needs (None: a hash that cannot be had, which ends the proof).
fn path(m: u64, start: u64, end: u64, mth: &mut impl FnMut(u64, u64) -> Option<Hash>) -> Option<Vec<Hash>> {
    let mut out = Vec::new();
    let (mut start, mut end, mut m) = (start, end, m);
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            out.push(mth(start + k, end)?);
            end = start + k;
        } else {
            out.push(mth(start, start + k)?);
            start += k;
            m -= k;
        }
    }
    out.reverse();
    Some(out)
}

/// RFC 9162 PROOF(m, D[0:n]) (section 2.1.4.1, SUBPROOF with b = true from the root), 0 < m <= n.
fn subproof(m: u64, n: u64, mth: &mut impl FnMut(u64, u64) -> Option<Hash>) -> Option<Vec<Hash>> {
    let mut out = Vec::new();
    let (mut start, mut end, mut m, mut whole) = (0u64, n, m, true);
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(mth(start, end)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            out.push(mth(start + k, end)?);
            end = start + k;
        } else {
            out.push(mth(start, start + k)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    out.reverse();
    Some(out)
}

/// The complete subtrees `[start, end)` whose concatenation is the tree of `size` leaves, largest first
/// (the binary decomposition of `size`): their hashes, the tree's frontier, determine its root and
/// every later root.
pub fn frontier_ranges(size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for level in (0..64).rev() {
        if (size >> level) & 1 == 1 {
            out.push((start, start + (1u64 << level)));
            start += 1u64 << level;
        }
    }
    out
}

/// The tree of `size` leaves held as the frontier of an earlier tree of `old_size` leaves and the leaf
/// hashes appended since: what a journal needs to sign a batch and prove each of its leaves without
/// reading storage. Every hash of an inclusion proof for a leaf at `old_size` or later, and of the
/// consistency proof from `old_size`, is a complete subtree made while appending, a suffix `[x, size)` of
/// the right border, or computed from them.
#[derive(Clone)]
pub struct Extension {
    old_size: u64,
    size: u64,
    known: HashMap<(u64, u64), Hash>,
}

impl Extension {
    /// `old_frontier` must hold exactly the hashes of `frontier_ranges(old_size)`.
    pub fn new(old_frontier: &[((u64, u64), Hash)], old_size: u64, leaf_hashes: &[Hash]) -> Result<Self, Error> {
        let ranges = frontier_ranges(old_size);
        let mut known: HashMap<(u64, u64), Hash> = HashMap::with_capacity(old_frontier.len() + 3 * leaf_hashes.len() + 64);
        known.extend(old_frontier.iter().copied());
        let size = old_size
            .checked_add(leaf_hashes.len() as u64)
            .ok_or_else(|| Error::invalid("journal: tree size overflows"))?;
        // The frontier grows like a binary counter: push each leaf, merge the two last subtrees while
        // they are the same size, keeping every complete subtree made on the way (proof hashes); then
        // fold the right border, keeping each suffix [start, size) (the right siblings of proofs).
        let mut stack: Vec<(u64, u64, Hash)> = Vec::with_capacity(ranges.len() + 64);
        for r in &ranges {
            let h = known
                .get(r)
                .ok_or_else(|| Error::invalid(format!("journal: the frontier of size {old_size} lacks [{}, {})", r.0, r.1)))?;
            stack.push((r.0, r.1, *h));
        }
        if known.len() != ranges.len() {
            return Err(Error::invalid(format!("journal: the frontier of size {old_size} holds other subtrees")));
        }
        for (offset, leaf) in leaf_hashes.iter().enumerate() {
            let mut start = old_size + offset as u64;
            let end = start + 1;
            let mut h = *leaf;
            known.insert((start, end), h);
            while let Some(&(left_start, left_end, left)) = stack.last() {
                if left_end - left_start != end - start {
                    break;
                }
                stack.pop();
                h = node_hash(&left, &h);
                start = left_start;
                known.insert((start, end), h);
            }
            stack.push((start, end, h));
        }
        if let Some(&(_, end, last)) = stack.last() {
            let mut h = last;
            for &(start, _, left) in stack[..stack.len() - 1].iter().rev() {
                h = node_hash(&left, &h);
                known.insert((start, end), h);
            }
        }
        Ok(Extension { old_size, size, known })
    }

    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// MTH(D[start:end]) for a range of the RFC 9162 recursions over this tree; None for a range inside
    /// the earlier tree that is not on its frontier (its hash is not known here).
    pub fn mth(&self, start: u64, end: u64) -> Option<Hash> {
        if let Some(h) = self.known.get(&(start, end)) {
            return Some(*h);
        }
        let n = end.checked_sub(start)?;
        if n <= 1 || end > self.size || (end <= self.old_size && n.is_power_of_two()) {
            return None;
        }
        let k = split(n);
        Some(node_hash(&self.mth(start, start + k)?, &self.mth(start + k, end)?))
    }

    pub fn root(&self) -> Option<Hash> {
        if self.size == 0 {
            Some(empty_root())
        } else {
            self.mth(0, self.size)
        }
    }

    /// The hashes of this tree's frontier (to extend it later), in `frontier_ranges` order.
    pub fn frontier(&self) -> Option<Vec<((u64, u64), Hash)>> {
        frontier_ranges(self.size).into_iter().map(|r| Some((r, self.mth(r.0, r.1)?))).collect()
    }

    /// PATH(index, D[0:size]) for a leaf appended after `old_size`.
    pub fn inclusion_proof(&self, index: u64) -> Option<Vec<Hash>> {
        if !(self.old_size..self.size).contains(&index) {
            return None;
        }
        path(index, 0, self.size, &mut |s, e| self.mth(s, e))
    }

    /// PROOF(old_size, D[0:size]) for 0 < old_size < size.
    pub fn consistency_proof(&self) -> Option<Vec<Hash>> {
        if !(0 < self.old_size && self.old_size < self.size) {
            return None;
        }
        subproof(self.old_size, self.size, &mut |s, e| self.mth(s, e))
    }
}

/// Does `ext` extend the tree of `ext.old_size()` leaves whose root is `old_root` (its consistency proof
/// verifies; every tree extends the empty one), and does each `((start, end), hash)` of `stored` equal
/// this tree's hash of that range? Hashes compared in constant time.
pub fn extension_is_consistent(ext: &Extension, old_root: &Hash, stored: &[((u64, u64), Hash)]) -> bool {
    for ((start, end), h) in stored {
        match ext.mth(*start, *end) {
            Some(mine) if ct_eq(&mine, h) => {}
            _ => return false,
        }
    }
    let Some(root) = ext.root() else { return false };
    if ext.old_size() == 0 {
        return true;
    }
    if ext.old_size() == ext.size() {
        return ct_eq(&root, old_root);
    }
    match ext.consistency_proof() {
        Some(proof) => {
            let refs: Vec<&[u8]> = proof.iter().map(|h| &h[..]).collect();
            verify_consistency(ext.old_size(), ext.size(), old_root, &root, &refs)
        }
        None => false,
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

    #[test]
    fn border_records_hold_the_subtrees_each_leaf_completes() {
        let data: Vec<Vec<u8>> = (0..70u8).map(|i| vec![i; 5]).collect();
        let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let mut border: Vec<Hash> = Vec::new();
        for (i, d) in data.iter().enumerate() {
            let left: Vec<&[u8]> = border.iter().map(|h| &h[..]).collect();
            let (record, lh, h, level) = border_record(i as u64, &left, d).unwrap();
            assert_eq!(lh, leaves[i]);
            assert_eq!(level, (i as u64).trailing_ones() as usize);
            // hash k of the record is the subtree of 2^k leaves ending with leaf i
            for k in 0..=level {
                let start = i + 1 - (1 << k);
                assert_eq!(&record[32 * k..32 * (k + 1)], &mth(&leaves[start..=i])[..], "leaf {i} level {k}");
            }
            assert_eq!(&record[32 * (level + 1)..], &d[..]);
            assert_eq!(h, mth(&leaves[i + 1 - (1 << level)..=i]));
            if level == border.len() {
                border.push(h);
            } else {
                border[level] = h;
            }
        }
        let short: Vec<&[u8]> = vec![&[0u8; 31]];
        assert!(border_record(1, &short, b"x").is_none(), "an entry that is not a hash");
        assert!(border_record(3, &[&[0u8; 32][..]], b"x").is_none(), "an entry missing");
    }

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

    fn frontier_of(t: &Tree, size: u64) -> Vec<((u64, u64), Hash)> {
        frontier_ranges(size).into_iter().map(|r| (r, t.range_hash(r.0, r.1))).collect()
    }

    #[test]
    fn extension_gives_the_roots_and_proofs_of_the_whole_tree() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let t = Tree::from_leaves(&leaves);
        for old in 0..=40u64 {
            for size in old..=70u64 {
                let ext = Extension::new(&frontier_of(&t, old), old, &leaves[old as usize..size as usize]).unwrap();
                assert_eq!(ext.root().unwrap(), if size == 0 { empty_root() } else { t.root(size).unwrap() });
                assert_eq!(ext.frontier().unwrap(), frontier_of(&t, size));
                for i in old..size {
                    assert_eq!(ext.inclusion_proof(i).unwrap(), t.inclusion_proof(i, size).unwrap(), "{old} {size} {i}");
                }
                if old < size && old > 0 {
                    assert_eq!(ext.consistency_proof().unwrap(), t.consistency_proof(old, size).unwrap());
                } else {
                    assert!(ext.consistency_proof().is_none());
                }
                assert!(old == 0 || ext.inclusion_proof(old - 1).is_none());
                assert!(ext.inclusion_proof(size).is_none());
            }
        }
    }

    #[test]
    fn extension_consistency_check_catches_a_wrong_root_or_stored_hash() {
        let leaves: Vec<Hash> = (0..21u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let t = Tree::from_leaves(&leaves);
        for old in 0..=21u64 {
            let ext = Extension::new(&frontier_of(&t, old), old, &leaves[old as usize..]).unwrap();
            let stored = frontier_of(&t, 21);
            let old_root = if old == 0 { empty_root() } else { t.root(old).unwrap() };
            assert!(extension_is_consistent(&ext, &old_root, &stored), "{old}");
            if old > 0 {
                assert!(!extension_is_consistent(&ext, &[7u8; 32], &stored), "another signed root, {old}");
            }
            let mut bad = stored.clone();
            bad[0].1[5] ^= 1;
            assert!(!extension_is_consistent(&ext, &old_root, &bad), "a stored hash changed, {old}");
        }
    }

    #[test]
    fn extension_refuses_a_wrong_frontier_and_unknown_ranges() {
        let leaves: Vec<Hash> = (0..13u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let t = Tree::from_leaves(&leaves);
        let mut f = frontier_of(&t, 11);
        assert!(Extension::new(&f[..2], 11, &leaves[11..]).is_err(), "a missing frontier hash");
        f.push(((0, 1), leaves[0]));
        assert!(Extension::new(&f, 11, &leaves[11..]).is_err(), "a subtree off the frontier");
        let ext = Extension::new(&frontier_of(&t, 11), 11, &leaves[11..]).unwrap();
        assert!(ext.mth(0, 1).is_none(), "inside the earlier tree only its frontier is known");
        assert!(ext.mth(0, 14).is_none(), "beyond the tree");
        assert_eq!(ext.mth(0, 8), Some(t.range_hash(0, 8)));
    }
}
