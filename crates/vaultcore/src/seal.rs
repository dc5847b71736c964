//! AES-256-GCM: 256-bit key, 96-bit nonce, 128-bit tag appended to the ciphertext.
//!
//! Backed by `ring`, which selects at run time its VAES + VPCLMULQDQ (AVX2) code on CPUs that have it,
//! else AES-NI + PCLMULQDQ (AVX), else a constant-time fallback.

use crate::error::{Error, Result};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use zeroize::Zeroize;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// An AES-256-GCM key schedule. Its memory (round keys and GHASH powers) is zeroized on drop.
pub struct AeadKey {
    inner: ManuallyDrop<LessSafeKey>,
}

impl AeadKey {
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() != KEY_LEN {
            return Err(Error::invalid(format!("an AES-256-GCM key is {KEY_LEN} bytes, got {}", key.len())));
        }
        let k = UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::invalid("bad AES-256-GCM key"))?;
        Ok(AeadKey { inner: ManuallyDrop::new(LessSafeKey::new(k)) })
    }

    /// Seals `plaintext` into `out` (exactly `plaintext.len() + TAG_LEN` bytes): ciphertext then tag.
    pub fn seal_into(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        let nonce = nonce_of(nonce)?;
        if out.len() != plaintext.len() + TAG_LEN {
            return Err(Error::invalid("output buffer has the wrong length"));
        }
        let (body, tag_out) = out.split_at_mut(plaintext.len());
        body.copy_from_slice(plaintext);
        let tag = self
            .inner
            .seal_in_place_separate_tag(nonce, Aad::from(aad), body)
            .map_err(|_| Error::invalid("plaintext too long for AES-GCM"))?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens `sealed` (ciphertext then tag) into `out` (exactly `sealed.len() - TAG_LEN` bytes).
    /// On a tag mismatch `out` is zeroed and `Error::Integrity` returned: no unchecked byte survives.
    pub fn open_into(&self, nonce: &[u8], aad: &[u8], sealed: &[u8], out: &mut [u8]) -> Result<()> {
        let nonce = nonce_of(nonce)?;
        if sealed.len() < TAG_LEN {
            return Err(Error::Integrity { index: None, what: "sealed data shorter than the tag" });
        }
        let n = sealed.len() - TAG_LEN;
        if out.len() != n {
            return Err(Error::invalid("output buffer has the wrong length"));
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&sealed[n..]);
        out.copy_from_slice(&sealed[..n]);
        match self.inner.open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(tag), out, 0..) {
            Ok(_) => Ok(()),
            Err(e) => {
                out.zeroize();
                Err(e.into())
            }
        }
    }

    pub fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        self.seal_into(nonce, aad, plaintext, &mut out)?;
        Ok(out)
    }

    pub fn open(&self, nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; sealed.len().saturating_sub(TAG_LEN)];
        self.open_into(nonce, aad, sealed, &mut out)?;
        Ok(out)
    }
}

impl Drop for AeadKey {
    fn drop(&mut self) {
        // `LessSafeKey` is plain data (no heap, no drop glue of its own): wipe its bytes and never use it again.
        let p = &mut *self.inner as *mut LessSafeKey as *mut u8;
        // SAFETY: `p` points to `size_of::<LessSafeKey>()` bytes we own; the value is never read or dropped after.
        let bytes = unsafe { std::slice::from_raw_parts_mut(p, std::mem::size_of::<LessSafeKey>()) };
        bytes.zeroize();
    }
}

fn nonce_of(nonce: &[u8]) -> Result<Nonce> {
    Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| Error::invalid(format!("an AES-GCM nonce is {NONCE_LEN} bytes, got {}", nonce.len())))
}

/// Fills `out` from the operating system's CSPRNG (getrandom(2)).
pub fn random_bytes(out: &mut [u8]) {
    getrandom::getrandom(out).expect("the operating system's random number generator failed");
}

/// The most messages sealed under one `NonceSealer` (2^32). With 96-bit nonces drawn uniformly at
/// random, the chance that any two of q nonces collide is below q^2 / 2^97; at q = 2^32 that is 2^-33,
/// under the 2^-32 that NIST SP 800-38D section 8.3 allows.
pub const RANDOM_NONCE_LIMIT: u64 = 1 << 32;

/// Seals with nonces it draws itself: each nonce is 96 bits from the OS CSPRNG, so no nonce is ever
/// chosen by a caller; the key refuses to seal more than `RANDOM_NONCE_LIMIT` messages (counted by this
/// object; a key used from several objects or processes must be budgeted by its owner, e.g. rotated
/// after 2^32 seals in all).
pub struct NonceSealer {
    key: AeadKey,
    used: AtomicU64,
}

impl NonceSealer {
    pub fn new(key: &[u8]) -> Result<Self> {
        Ok(NonceSealer { key: AeadKey::new(key)?, used: AtomicU64::new(0) })
    }

    /// Reserves `n` nonces from the budget.
    pub fn reserve(&self, n: u64) -> Result<()> {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > RANDOM_NONCE_LIMIT {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return Err(Error::Exhausted(format!(
                "this key has sealed {before} messages with random nonces; the limit is {RANDOM_NONCE_LIMIT}: rotate the key"
            )));
        }
        Ok(())
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// `nonce || ciphertext || tag` with a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.reserve(1)?;
        let mut out = vec![0u8; NONCE_LEN + plaintext.len() + TAG_LEN];
        let (nonce, rest) = out.split_at_mut(NONCE_LEN);
        random_bytes(nonce);
        self.key.seal_into(nonce, aad, plaintext, rest)?;
        Ok(out)
    }

    /// Opens the output of `seal`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        open_with_nonce_prefix(&self.key, aad, sealed)
    }

    pub fn key(&self) -> &AeadKey {
        &self.key
    }
}

/// Opens `nonce || ciphertext || tag`.
pub fn open_with_nonce_prefix(key: &AeadKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::Integrity { index: None, what: "sealed data shorter than nonce and tag" });
    }
    key.open(&sealed[..NONCE_LEN], aad, &sealed[NONCE_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_gcm_spec_test_case_16() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, 60-byte plaintext, AAD).
        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308").unwrap();
        let iv = hex::decode("cafebabefacedbaddecaf888").unwrap();
        let pt = hex::decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39").unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let ct = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
        let tag = "76fc6ece0f4e1768cddf8853bb2d551b";
        let k = AeadKey::new(&key).unwrap();
        let sealed = k.seal(&iv, &aad, &pt).unwrap();
        assert_eq!(hex::encode(&sealed), format!("{ct}{tag}"));
        assert_eq!(k.open(&iv, &aad, &sealed).unwrap(), pt);
    }

    #[test]
    fn tampering_is_refused() {
        let k = AeadKey::new(&[1u8; 32]).unwrap();
        let n = [2u8; 12];
        let mut s = k.seal(&n, b"aad", b"hello world").unwrap();
        assert!(matches!(k.open(&n, b"aad!", &s), Err(Error::Integrity { .. })));
        s[3] ^= 1;
        assert!(matches!(k.open(&n, b"aad", &s), Err(Error::Integrity { .. })));
        assert!(k.open(&n, b"aad", &s[..10]).is_err());
    }

    #[test]
    fn bad_lengths() {
        assert!(AeadKey::new(&[0u8; 16]).is_err());
        let k = AeadKey::new(&[0u8; 32]).unwrap();
        assert!(matches!(k.seal(&[0u8; 8], b"", b"x"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn sealer_random_nonces_and_budget() {
        let s = NonceSealer::new(&[9u8; 32]).unwrap();
        let a = s.seal(b"ad", b"same").unwrap();
        let b = s.seal(b"ad", b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_eq!(s.open(b"ad", &a).unwrap(), b"same");
        assert_eq!(s.used(), 2);
        assert!(s.reserve(RANDOM_NONCE_LIMIT).is_err());
        assert_eq!(s.used(), 2);
    }
}
