//! Signatures: Ed25519 (RFC 8032; `ed25519-dalek`, batch verification) and ECDSA P-256 with SHA-256
//! (`ring`: constant-time P-256 in assembly on x86_64 and aarch64), DER or IEEE P1363 (r || s) encoded.

use crate::error::{Error, Result};
use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, VerifyingKey};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Items per Ed25519 batch equation: large enough to amortise the multiscalar multiplication (measured
/// here: 32 -> 33 us/signature, 128 -> 26, 1024 -> 23; a single strict check 67), small enough that a
/// bad signature costs only one batch re-checked one by one, and that a long list splits over the cores.
pub const ED25519_BATCH: usize = 128;

/// Ed25519 private key (32-byte seed) to public key.
pub fn ed25519_public_key(private_key: &[u8]) -> Result<[u8; 32]> {
    Ok(signing_key(private_key)?.verifying_key().to_bytes())
}

/// An Ed25519 private key held for repeated signing (the journal's checkpoints); zeroized on drop.
pub struct Ed25519Key(SigningKey);

impl Ed25519Key {
    pub fn new(private_key: &[u8]) -> Result<Self> {
        Ok(Ed25519Key(signing_key(private_key)?))
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
}

fn signing_key(private_key: &[u8]) -> Result<SigningKey> {
    let seed: &[u8; 32] = private_key
        .try_into()
        .map_err(|_| Error::invalid(format!("an Ed25519 private key is a 32-byte seed, got {} bytes", private_key.len())))?;
    // SigningKey zeroizes itself on drop.
    Ok(SigningKey::from_bytes(seed))
}

/// Signs every message with one private key (in parallel).
pub fn ed25519_sign_batch(private_key: &[u8], messages: &[&[u8]]) -> Result<Vec<[u8; 64]>> {
    let key = signing_key(private_key)?;
    Ok(messages.par_iter().map(|m| key.sign(m).to_bytes()).collect())
}

/// One Ed25519 signature, checked alone (RFC 8032 cofactorless equation, canonical S required).
pub fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    match parse_ed(public_key, signature) {
        Some((vk, sig)) => vk.verify_strict(message, &sig).is_ok(),
        None => false,
    }
}

fn parse_ed(public_key: &[u8], signature: &[u8]) -> Option<(VerifyingKey, EdSignature)> {
    let pk: &[u8; 32] = public_key.try_into().ok()?;
    let vk = VerifyingKey::from_bytes(pk).ok()?;
    let sig = EdSignature::from_slice(signature).ok()?;
    Some((vk, sig))
}

/// Verifies many signatures: one batch equation per `ED25519_BATCH` items (batches in parallel); when a
/// batch fails, each of its items is checked alone, so the answer is per item.
pub fn ed25519_verify_batch(public_keys: &[&[u8]], messages: &[&[u8]], signatures: &[&[u8]]) -> Result<Vec<bool>> {
    let n = messages.len();
    if public_keys.len() != n || signatures.len() != n {
        return Err(Error::invalid("public_keys, messages and signatures must have the same length"));
    }
    let idx: Vec<usize> = (0..n).collect();
    let parts: Vec<Vec<bool>> = idx.par_chunks(ED25519_BATCH).map(|ix| verify_group(ix, public_keys, messages, signatures)).collect();
    Ok(parts.into_iter().flatten().collect())
}

fn verify_group(ix: &[usize], pks: &[&[u8]], msgs: &[&[u8]], sigs: &[&[u8]]) -> Vec<bool> {
    // Public keys repeat (a few signers, many signatures): decode each distinct one once.
    let mut keys: HashMap<&[u8], Option<VerifyingKey>> = HashMap::new();
    let parsed: Vec<Option<(VerifyingKey, EdSignature)>> = ix
        .iter()
        .map(|&i| {
            let vk = *keys.entry(pks[i]).or_insert_with(|| {
                let pk: &[u8; 32] = pks[i].try_into().ok()?;
                VerifyingKey::from_bytes(pk).ok()
            });
            Some((vk?, EdSignature::from_slice(sigs[i]).ok()?))
        })
        .collect();
    // The batch equation only sees decoded points: keep out of it anything the single check refuses
    // on its encoding (non-canonical or small-order A or R), so a batch never accepts those.
    let batchable = ix.iter().zip(&parsed).all(|(&i, p)| match p {
        Some((_, sig)) => strict_encoding(pks[i]) && strict_encoding(&sig.r_bytes()[..]),
        None => false,
    });
    if batchable && ix.len() > 1 {
        let m: Vec<&[u8]> = ix.iter().map(|&i| msgs[i]).collect();
        let s: Vec<EdSignature> = parsed.iter().map(|p| p.unwrap().1).collect();
        let k: Vec<VerifyingKey> = parsed.iter().map(|p| p.unwrap().0).collect();
        if ed25519_dalek::verify_batch(&m, &s, &k).is_ok() {
            return vec![true; ix.len()];
        }
    }
    ix.iter()
        .zip(parsed)
        .map(|(&i, p)| match p {
            Some((vk, sig)) => vk.verify_strict(msgs[i], &sig).is_ok(),
            None => false,
        })
        .collect()
}

/// The y coordinates (bit 255 cleared) of the eight points of small order, from the curve library's
/// own table: {0, 1, p - 1, and the two of order 8}.
fn small_order_ys() -> &'static [[u8; 32]] {
    static YS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    YS.get_or_init(|| {
        let mut v: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| {
                let mut y = p.compress().0;
                y[31] &= 0x7f;
                y
            })
            .collect();
        v.sort();
        v.dedup();
        v
    })
}

/// Without decoding the point: the 32 bytes are a canonical encoding (y < p = 2^255 - 19) and y is not
/// that of a point of small order. (x = 0 with the sign bit set needs y = +-1, both of small order.)
/// Equal to "decodes, re-encodes to the same bytes, and is not of small order" for every encoding
/// that decodes at all (tested below against the decoding check); the batch equation refuses the rest.
fn strict_encoding(b: &[u8]) -> bool {
    let Ok(arr) = <[u8; 32]>::try_from(b) else { return false };
    let mut y = arr;
    y[31] &= 0x7f;
    // y >= p  <=>  y[31] == 0x7f, y[1..31] all 0xff, y[0] >= 0xed
    let non_canonical = y[31] == 0x7f && y[1..31].iter().all(|&x| x == 0xff) && y[0] >= 0xed;
    !non_canonical && !small_order_ys().contains(&y)
}

/// Items per ECDSA work unit: a compressed public key is decompressed once per unit (keys repeat: a few
/// signers, many signatures), and a long list still splits over the cores.
pub const ECDSA_GROUP: usize = 64;

/// A SEC1 public key in the uncompressed form `ring` takes (0x04 || x || y). A compressed key (0x02/0x03
/// || x) is decompressed here; anything else is passed on as is, for `ring` to refuse or accept.
fn sec1_uncompressed(public_key: &[u8]) -> Option<Vec<u8>> {
    use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
    match public_key.first() {
        Some(0x02 | 0x03) if public_key.len() == 33 => {
            let ep = p256::EncodedPoint::from_bytes(public_key).ok()?;
            let point: Option<p256::AffinePoint> = p256::AffinePoint::from_encoded_point(&ep).into();
            Some(point?.to_encoded_point(false).as_bytes().to_vec())
        }
        _ => Some(public_key.to_vec()),
    }
}

fn ecdsa_alg(der: bool) -> &'static ring::signature::EcdsaVerificationAlgorithm {
    if der {
        &ring::signature::ECDSA_P256_SHA256_ASN1
    } else {
        &ring::signature::ECDSA_P256_SHA256_FIXED
    }
}

/// One ECDSA P-256 / SHA-256 signature; `public_key` is SEC1 (compressed or uncompressed); `der` selects
/// ASN.1 DER (strict: minimal integers, no trailing bytes) or P1363 (64 bytes r || s). r and s must be in
/// [1, n-1]; a high s is accepted, as ECDSA (FIPS 186-5) does.
pub fn ecdsa_p256_verify(public_key: &[u8], message: &[u8], signature: &[u8], der: bool) -> bool {
    match sec1_uncompressed(public_key) {
        Some(pk) => ring::signature::UnparsedPublicKey::new(ecdsa_alg(der), &pk).verify(message, signature).is_ok(),
        None => false,
    }
}

/// Verifies many ECDSA P-256 / SHA-256 signatures in parallel, one answer per item.
pub fn ecdsa_p256_verify_batch(public_keys: &[&[u8]], messages: &[&[u8]], signatures: &[&[u8]], der: bool) -> Result<Vec<bool>> {
    let n = messages.len();
    if public_keys.len() != n || signatures.len() != n {
        return Err(Error::invalid("public_keys, messages and signatures must have the same length"));
    }
    let alg = ecdsa_alg(der);
    let idx: Vec<usize> = (0..n).collect();
    let parts: Vec<Vec<bool>> = idx
        .par_chunks(ECDSA_GROUP)
        .map(|ix| {
            let mut keys: HashMap<&[u8], Option<Vec<u8>>> = HashMap::new();
            ix.iter()
                .map(|&i| match keys.entry(public_keys[i]).or_insert_with(|| sec1_uncompressed(public_keys[i])) {
                    Some(pk) => ring::signature::UnparsedPublicKey::new(alg, &pk[..]).verify(messages[i], signatures[i]).is_ok(),
                    None => false,
                })
                .collect()
        })
        .collect();
    Ok(parts.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1() {
        let sk = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let pk = ed25519_public_key(&sk).unwrap();
        assert_eq!(hex::encode(pk), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let sig = ed25519_sign_batch(&sk, &[b""]).unwrap()[0];
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(ed25519_verify(&pk, b"", &sig));
    }

    #[test]
    fn batch_gives_per_item_answers() {
        let sk = [5u8; 32];
        let pk = ed25519_public_key(&sk).unwrap();
        let msgs: Vec<Vec<u8>> = (0..150u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let mrefs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let mut sigs = ed25519_sign_batch(&sk, &mrefs).unwrap();
        sigs[70][5] ^= 1;
        let srefs: Vec<&[u8]> = sigs.iter().map(|s| s.as_slice()).collect();
        let pks: Vec<&[u8]> = vec![&pk[..]; msgs.len()];
        let ok = ed25519_verify_batch(&pks, &mrefs, &srefs).unwrap();
        assert_eq!(ok.iter().filter(|b| !**b).count(), 1);
        assert!(!ok[70]);
        assert!(ed25519_verify_batch(&pks[..2], &mrefs, &srefs).is_err());
    }

    /// The decoding check `strict_encoding` stands for.
    fn canonical_by_decoding(b: &[u8; 32]) -> Option<bool> {
        let p = curve25519_dalek::edwards::CompressedEdwardsY(*b).decompress()?;
        Some(!p.is_small_order() && p.compress().0 == *b)
    }

    #[test]
    fn strict_encoding_matches_decoding() {
        let mut cases: Vec<[u8; 32]> = Vec::new();
        for t in curve25519_dalek::constants::EIGHT_TORSION.iter() {
            let e = t.compress().0;
            cases.push(e);
            let mut f = e;
            f[31] ^= 0x80;
            cases.push(f);
        }
        for k in 0u8..19 {
            let mut e = [0xffu8; 32];
            e[0] = 0xed + k;
            for top in [0x7f, 0xff] {
                e[31] = top;
                cases.push(e);
            }
        }
        let mut seed = 1u64;
        for _ in 0..3000 {
            let mut e = [0u8; 32];
            for b in e.iter_mut() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *b = (seed >> 56) as u8;
            }
            cases.push(e);
            cases.push(SigningKey::from_bytes(&e).verifying_key().to_bytes());
        }
        let mut decoded = 0;
        for c in &cases {
            if let Some(want) = canonical_by_decoding(c) {
                assert_eq!(strict_encoding(c), want, "{}", hex::encode(c));
                decoded += 1;
            }
        }
        assert!(decoded > 3000);
    }

    #[test]
    fn ecdsa_roundtrip_and_reject() {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let der_kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let fixed_kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let pk = der_kp.public_key().as_ref().to_vec();
        assert_eq!((pk.len(), pk[0]), (65, 0x04));
        let mut compressed = vec![0x02 | (pk[64] & 1)];
        compressed.extend_from_slice(&pk[1..33]);
        let der_sig = der_kp.sign(&rng, b"msg").unwrap().as_ref().to_vec();
        let fixed_sig = fixed_kp.sign(&rng, b"msg").unwrap().as_ref().to_vec();
        for key in [&pk, &compressed] {
            assert!(ecdsa_p256_verify(key, b"msg", &der_sig, true));
            assert!(ecdsa_p256_verify(key, b"msg", &fixed_sig, false));
            assert!(!ecdsa_p256_verify(key, b"msh", &fixed_sig, false));
            assert!(!ecdsa_p256_verify(key, b"msg", &fixed_sig, true));
            assert!(!ecdsa_p256_verify(key, b"msg", &der_sig, false));
        }
        // The other root of the compressed x: a different key, which must refuse.
        let mut flipped = compressed.clone();
        flipped[0] ^= 1;
        assert!(!ecdsa_p256_verify(&flipped, b"msg", &der_sig, true));
        assert!(!ecdsa_p256_verify(b"junk", b"msg", &fixed_sig, false));
        assert!(!ecdsa_p256_verify(&[0x02; 33], b"msg", &fixed_sig, false));
        // Batch: per-item answers across groups, keys given in both forms.
        let n = 3 * ECDSA_GROUP + 5;
        let keys: Vec<&[u8]> = (0..n).map(|i| if i % 3 == 0 { &compressed[..] } else { &pk[..] }).collect();
        let msgs: Vec<&[u8]> = vec![&b"msg"[..]; n];
        let mut sigs: Vec<Vec<u8>> = vec![der_sig.clone(); n];
        sigs[100][10] ^= 1;
        let srefs: Vec<&[u8]> = sigs.iter().map(|s| s.as_slice()).collect();
        let ok = ecdsa_p256_verify_batch(&keys, &msgs, &srefs, true).unwrap();
        assert_eq!(ok.iter().filter(|b| !**b).count(), 1);
        assert!(!ok[100]);
        assert!(ecdsa_p256_verify_batch(&keys[..2], &msgs, &srefs, true).is_err());
    }
}
