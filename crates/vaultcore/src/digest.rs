//! Digests: BLAKE3 (plain, keyed, key derivation; extendable output) and SHA-256, one-shot and streaming.
//!
//! BLAKE3 picks its SIMD code (SSE4.1/AVX2/AVX-512) at run time and, for inputs of `RAYON_THRESHOLD`
//! bytes and more, spreads one input over the cores. SHA-256 (`sha2`) detects SHA-NI at run time.

use sha2::Digest;

/// From this size on one BLAKE3 input is hashed on several threads (below, the join costs more).
pub const RAYON_THRESHOLD: usize = 256 * 1024;

fn update(h: &mut blake3::Hasher, data: &[u8]) {
    if data.len() >= RAYON_THRESHOLD {
        h.update_rayon(data);
    } else {
        h.update(data);
    }
}

fn finish(h: &blake3::Hasher, length: usize) -> Vec<u8> {
    let mut out = vec![0u8; length];
    h.finalize_xof().fill(&mut out);
    out
}

/// BLAKE3 of `data`, `length` bytes of output (32 is the standard digest).
pub fn blake3(data: &[u8], length: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    update(&mut h, data);
    finish(&h, length)
}

/// Keyed BLAKE3 (a PRF / MAC) of `data` under a 32-byte key.
pub fn blake3_keyed(key: &[u8; 32], data: &[u8], length: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new_keyed(key);
    update(&mut h, data);
    finish(&h, length)
}

/// The 32-byte keyed BLAKE3 of one chunk (single-threaded: chunks are hashed in parallel already).
pub fn chunk_id(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, data).as_bytes()
}

/// BLAKE3 key derivation: a key for the purpose named by `context` (a hard-coded, globally unique
/// string) from `material`.
pub fn blake3_derive_key(context: &str, material: &[u8], length: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new_derive_key(context);
    update(&mut h, material);
    finish(&h, length)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Streaming BLAKE3 (optionally keyed) over a whole document. Its state, which holds the key, is
/// zeroized on drop.
#[derive(Clone)]
pub struct Blake3Hasher(blake3::Hasher);

impl Drop for Blake3Hasher {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.0.zeroize();
    }
}

impl Blake3Hasher {
    pub fn new(key: Option<&[u8; 32]>) -> Self {
        Blake3Hasher(match key {
            Some(k) => blake3::Hasher::new_keyed(k),
            None => blake3::Hasher::new(),
        })
    }
    pub fn update(&mut self, data: &[u8]) {
        update(&mut self.0, data)
    }
    pub fn digest(&self, length: usize) -> Vec<u8> {
        finish(&self.0, length)
    }
}

/// Streaming SHA-256 over a whole document.
#[derive(Clone, Default)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }
    pub fn digest(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        hex::encode(b)
    }

    #[test]
    fn sha256_known_answers() {
        assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let mut h = Sha256Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.digest(), sha256(b"abc"));
    }

    #[test]
    fn blake3_known_answer_and_streaming() {
        assert_eq!(hex(&blake3(b"", 32)), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = Blake3Hasher::new(None);
        for part in data.chunks(300_000) {
            h.update(part);
        }
        assert_eq!(h.digest(32), blake3(&data, 32));
        assert_eq!(&blake3(&data, 64)[..32], &blake3(&data, 32)[..]);
    }

    #[test]
    fn keyed_and_derived_differ() {
        let k = [7u8; 32];
        assert_eq!(chunk_id(&k, b"x").to_vec(), blake3_keyed(&k, b"x", 32));
        assert_ne!(blake3_keyed(&k, b"x", 32), blake3(b"x", 32));
        assert_ne!(blake3_derive_key("vaultd test", b"x", 32), blake3(b"x", 32));
    }
}
