//! Property tests (proptest) of the pure-Rust core: chunking covers its input exactly within its
//! bounds and does not depend on how the input is cut; sealing round-trips and every alteration of
//! the sealed bytes, the nonce or the associated data is refused; Merkle inclusion and consistency
//! proofs verify, and fail when the leaf, the index, the sizes, a proof hash or the root is altered.

use proptest::prelude::*;
use vaultcore::chunk::{boundaries, DEFAULT_AVG, DEFAULT_MAX, DEFAULT_MIN};
use vaultcore::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash, Tree};
use vaultcore::seal::{AeadKey, NONCE_LEN, TAG_LEN};

const MIN: usize = 256;
const AVG: usize = 1024;
const MAX: usize = 4096;

fn chunks_ok(data: &[u8], ends: &[usize], min: usize, max: usize) -> Result<(), TestCaseError> {
    if data.is_empty() {
        prop_assert!(ends.is_empty());
        return Ok(());
    }
    prop_assert_eq!(*ends.last().unwrap(), data.len(), "the chunks do not end at the input's end");
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        prop_assert!(end > start, "empty or backwards chunk {} ({}..{})", i, start, end);
        let n = end - start;
        prop_assert!(n <= max, "chunk {} has {} bytes, more than {}", i, n, max);
        if i + 1 < ends.len() {
            prop_assert!(n >= min, "chunk {} has {} bytes, fewer than {} (not the last)", i, n, min);
        }
        start = end;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn chunking_covers_the_input_within_bounds(data in proptest::collection::vec(any::<u8>(), 0..40_000)) {
        let ends = boundaries(&data, MIN, AVG, MAX).unwrap();
        chunks_ok(&data, &ends, MIN, MAX)?;
    }

    #[test]
    fn chunking_is_deterministic_and_local(prefix in proptest::collection::vec(any::<u8>(), 0..20_000),
                                           tail in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        // content-defined: the same bytes give the same cuts, and a change after a cut point does not
        // move the cuts before it (by more than one chunk of look-ahead)
        let mut a = prefix.clone();
        a.extend_from_slice(&tail);
        let ends = boundaries(&a, MIN, AVG, MAX).unwrap();
        prop_assert_eq!(&ends, &boundaries(&a, MIN, AVG, MAX).unwrap());
        let mut b = prefix.clone();
        b.extend(tail.iter().map(|x| x ^ 0x5a));
        let ends_b = boundaries(&b, MIN, AVG, MAX).unwrap();
        let safe = prefix.len().saturating_sub(MAX);
        let before_a: Vec<_> = ends.iter().filter(|&&e| e <= safe).collect();
        let before_b: Vec<_> = ends_b.iter().filter(|&&e| e <= safe).collect();
        prop_assert_eq!(before_a, before_b);
    }

    #[test]
    fn sizes_out_of_order_are_refused(min in 64usize..70_000, avg in 256usize..70_000, max in 1024usize..70_000) {
        let ok = boundaries(b"some data", min, avg, max).is_ok();
        if !(min <= avg && avg <= max) {
            prop_assert!(!ok);
        }
    }

    #[test]
    fn seal_open_round_trip(key in proptest::array::uniform32(any::<u8>()),
                            nonce in proptest::array::uniform12(any::<u8>()),
                            aad in proptest::collection::vec(any::<u8>(), 0..100),
                            plain in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let k = AeadKey::new(&key).unwrap();
        let sealed = k.seal(&nonce, &aad, &plain).unwrap();
        prop_assert_eq!(sealed.len(), plain.len() + TAG_LEN);
        prop_assert_eq!(k.open(&nonce, &aad, &sealed).unwrap(), plain);
    }

    #[test]
    fn any_alteration_is_refused(key in proptest::array::uniform32(any::<u8>()),
                                 nonce in proptest::array::uniform12(any::<u8>()),
                                 aad in proptest::collection::vec(any::<u8>(), 1..100),
                                 plain in proptest::collection::vec(any::<u8>(), 0..2000),
                                 which in 0usize..5, pos in any::<usize>(), bit in 0u8..8) {
        let k = AeadKey::new(&key).unwrap();
        let sealed = k.seal(&nonce, &aad, &plain).unwrap();
        let (mut n, mut a, mut s) = (nonce.to_vec(), aad.clone(), sealed.clone());
        match which {
            0 => { let i = pos % s.len(); s[i] ^= 1 << bit; }          // a bit of ciphertext or tag
            1 => { let i = pos % NONCE_LEN; n[i] ^= 1 << bit; }        // the nonce
            2 => { let i = pos % a.len(); a[i] ^= 1 << bit; }          // the associated data
            3 => { s.truncate(pos % s.len()); }                        // truncated
            _ => { s.push(bit); }                                      // extended
        }
        prop_assert!(k.open(&n, &a, &s).is_err(), "an altered seal opened");
        let mut other = key;
        other[pos % 32] ^= 1 << bit;
        prop_assert!(AeadKey::new(&other).unwrap().open(&nonce, &aad, &sealed).is_err(), "another key opened it");
    }

    #[test]
    fn inclusion_proofs_verify_and_fail_when_altered(n in 1u64..200, pick in any::<u64>(), what in 0usize..5,
                                                     pos in any::<usize>(), bit in 0u8..8) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = Tree::from_leaves(&leaves);
        let size = 1 + pick % n;
        let index = pick % size;
        let root = tree.root(size).unwrap();
        let proof = tree.inclusion_proof(index, size).unwrap();
        let refs: Vec<&[u8]> = proof.iter().map(|h| h.as_slice()).collect();
        prop_assert!(verify_inclusion(&leaves[index as usize], index, size, &refs, &root));
        let mut leaf = leaves[index as usize];
        let mut r = root;
        let mut p = proof.clone();
        let (mut i, mut s) = (index, size);
        match what {
            0 => leaf[pos % 32] ^= 1 << bit,
            1 => r[pos % 32] ^= 1 << bit,
            2 if !p.is_empty() => { let j = pos % p.len(); p[j][pos % 32] ^= 1 << bit; }
            2 => p.push([0u8; 32]),
            3 => i = (index + 1 + (pos as u64 % size.max(2))) % size.max(2),
            // another size with that size's own root (size and root are signed together)
            _ => { s = 1 + (size + (pos as u64 % (n - 1).max(1))) % n; r = tree.root(s).unwrap(); }
        }
        let altered = (leaf, r, p.clone(), i, s) != (leaves[index as usize], root, proof.clone(), index, size);
        if altered && !(what == 3 && i == index) && i < s {
            let refs: Vec<&[u8]> = p.iter().map(|h| h.as_slice()).collect();
            prop_assert!(!verify_inclusion(&leaf, i, s, &refs, &r), "an altered inclusion proof verified");
        }
    }

    #[test]
    fn consistency_proofs_verify_and_fail_when_altered(n in 2u64..200, a in any::<u64>(), b in any::<u64>(),
                                                       what in 0usize..4, pos in any::<usize>(), bit in 0u8..8) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i * 7).to_be_bytes())).collect();
        let tree = Tree::from_leaves(&leaves);
        let size2 = 2 + b % (n - 1);
        let size1 = 1 + a % (size2 - 1);
        let (root1, root2) = (tree.root(size1).unwrap(), tree.root(size2).unwrap());
        let proof = tree.consistency_proof(size1, size2).unwrap();
        let refs: Vec<&[u8]> = proof.iter().map(|h| h.as_slice()).collect();
        prop_assert!(verify_consistency(size1, size2, &root1, &root2, &refs));
        let (mut r1, mut r2, mut p) = (root1, root2, proof.clone());
        match what {
            0 => r1[pos % 32] ^= 1 << bit,
            1 => r2[pos % 32] ^= 1 << bit,
            2 if !p.is_empty() => { let j = pos % p.len(); p[j][pos % 32] ^= 1 << bit; }
            2 => p.push([1u8; 32]),
            _ => { p.pop(); }
        }
        if (r1, r2, &p) != (root1, root2, &proof) {
            let refs: Vec<&[u8]> = p.iter().map(|h| h.as_slice()).collect();
            prop_assert!(!verify_consistency(size1, size2, &r1, &r2, &refs), "an altered consistency proof verified");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn default_sizes_on_large_inputs(seed in any::<u64>(), len in 1usize..6_000_000) {
        // large enough for the parallel path: the result must still cover the input within bounds
        let mut x = seed | 1;
        let data: Vec<u8> = (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect();
        let ends = boundaries(&data, DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX).unwrap();
        chunks_ok(&data, &ends, DEFAULT_MIN, DEFAULT_MAX)?;
    }
}
