//! The fused path of a deposit, for one buffer: FastCDC boundaries, chunk ids (keyed BLAKE3 of the
//! plaintext under the vault's dedup key), and AES-256-GCM sealing of the chunks the caller does not have.
//!
//! Chunk `i` is sealed under the data key with a fresh 96-bit random nonce and
//! AAD = `aad_prefix || chunk_id` (the caller's prefix binds vault and key version; the id binds the
//! sealed bytes to the plaintext they claim to be). Opening re-derives the id from the plaintext and
//! compares it, so a chunk swapped for another sealed under the same key is refused.

use crate::chunk;
use crate::digest;
use crate::error::{Error, Result};
use crate::seal::{random_bytes, AeadKey, NONCE_LEN, TAG_LEN};
use rayon::prelude::*;

/// One chunk of a buffer: where it is and what its id is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub offset: usize,
    pub length: usize,
    pub id: [u8; 32],
}

/// The AAD of a chunk.
pub fn chunk_aad(aad_prefix: &[u8], id: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(aad_prefix.len() + id.len());
    a.extend_from_slice(aad_prefix);
    a.extend_from_slice(id);
    a
}

pub fn key32(key: &[u8], what: &str) -> Result<[u8; 32]> {
    key.try_into().map_err(|_| Error::invalid(format!("{what} is 32 bytes, got {}", key.len())))
}

/// The (offset, length) of the chunks of `data`. With `last = false` the final chunk is left out unless
/// it was cut at `max_size` (a cut that does not depend on what follows); the caller then passes the
/// rest, `data[consumed..]`, in front of its next buffer, so cut points do not depend on buffer edges.
pub fn spans(data: &[u8], sizes: (usize, usize, usize), last: bool) -> Result<Vec<(usize, usize)>> {
    let (min, avg, max) = sizes;
    let ends = chunk::boundaries(data, min, avg, max)?;
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(ends.len());
    let mut prev = 0;
    for e in ends {
        spans.push((prev, e - prev));
        prev = e;
    }
    if !last && spans.last().is_some_and(|&(_, len)| len < max) {
        spans.pop();
    }
    Ok(spans)
}

/// Boundaries and ids of the chunks of `data` (see `spans`), ids computed in parallel.
pub fn cut_and_identify(
    data: &[u8],
    dedup_key: &[u8; 32],
    sizes: (usize, usize, usize),
    last: bool,
) -> Result<Vec<ChunkRef>> {
    Ok(identify(data, dedup_key, &spans(data, sizes, last)?, true))
}

/// Ids of the given spans of `data`: on the current rayon pool with `parallel`, else on the calling
/// thread alone (small work: handing it to a pool costs more than doing it).
pub fn identify(data: &[u8], dedup_key: &[u8; 32], spans: &[(usize, usize)], parallel: bool) -> Vec<ChunkRef> {
    let one = |&(offset, length): &(usize, usize)| ChunkRef {
        offset,
        length,
        id: digest::chunk_id(dedup_key, &data[offset..offset + length]),
    };
    if parallel {
        spans.par_iter().with_min_len(1).map(one).collect()
    } else {
        spans.iter().map(one).collect()
    }
}

/// A destination for one sealed chunk: its id (32 bytes: computed here when a dedup key is given to
/// `seal_chunks`, else read), its nonce (12 bytes, drawn here) and `length + TAG_LEN` bytes of output.
pub struct SealJob<'a> {
    pub offset: usize,
    pub length: usize,
    pub id: &'a mut [u8],
    pub nonce: &'a mut [u8],
    pub out: &'a mut [u8],
}

/// Seals the given chunks with fresh random nonces, writing ids (if `dedup_key` is given: computed in
/// the same pass, while the chunk is in cache), nonces and sealed bytes in place; in parallel on the
/// current rayon pool with `parallel`, else on the calling thread.
pub fn seal_chunks(
    data: &[u8],
    dedup_key: Option<&[u8; 32]>,
    data_key: &AeadKey,
    aad_prefix: &[u8],
    jobs: &mut [SealJob<'_>],
    parallel: bool,
) -> Result<()> {
    // One call to the OS CSPRNG for all nonces of the batch.
    let mut nonces = vec![0u8; jobs.len() * NONCE_LEN];
    random_bytes(&mut nonces);
    for (j, n) in jobs.iter_mut().zip(nonces.chunks_exact(NONCE_LEN)) {
        j.nonce.copy_from_slice(n);
    }
    let one = |j: &mut SealJob<'_>| {
        if j.out.len() != j.length + TAG_LEN || j.offset + j.length > data.len() || j.id.len() != 32 {
            return Err(Error::invalid("sealed chunk buffer has the wrong size"));
        }
        let plain = &data[j.offset..j.offset + j.length];
        if let Some(k) = dedup_key {
            j.id.copy_from_slice(&digest::chunk_id(k, plain));
        }
        let mut aad = [0u8; 256];
        let n = aad_prefix.len() + 32;
        if n <= aad.len() {
            aad[..aad_prefix.len()].copy_from_slice(aad_prefix);
            aad[aad_prefix.len()..n].copy_from_slice(j.id);
            data_key.seal_into(j.nonce, &aad[..n], plain, j.out)
        } else {
            data_key.seal_into(j.nonce, &chunk_aad(aad_prefix, j.id), plain, j.out)
        }
    };
    if parallel {
        jobs.par_iter_mut().with_min_len(1).try_for_each(one)
    } else {
        jobs.iter_mut().try_for_each(one)
    }
}

/// Opens one sealed chunk into `out` and checks that its plaintext has the claimed id.
pub fn open_chunk(
    data_key: &AeadKey,
    dedup_key: &[u8; 32],
    aad_prefix: &[u8],
    id: &[u8],
    nonce: &[u8],
    sealed: &[u8],
    out: &mut [u8],
) -> Result<()> {
    if id.len() != 32 {
        return Err(Error::invalid(format!("a chunk id is 32 bytes, got {}", id.len())));
    }
    let aad = chunk_aad(aad_prefix, id);
    data_key.open_into(nonce, &aad, sealed, out)?;
    let again = digest::chunk_id(dedup_key, out);
    let same = again.iter().zip(id).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        use zeroize::Zeroize;
        out.zeroize();
        return Err(Error::Integrity { index: None, what: "chunk id does not match the opened plaintext" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut s = 0x9E3779B97F4A7C15u64;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn ingest_round_trip_and_swaps_refused() {
        let d = data(1 << 20);
        let dk = [1u8; 32];
        let key = AeadKey::new(&[2u8; 32]).unwrap();
        let chunks = cut_and_identify(&d, &dk, (4096, 16384, 65536), true).unwrap();
        assert!(chunks.len() > 8);
        let mut ids = vec![[0u8; 32]; chunks.len()];
        let mut nonces = vec![vec![0u8; 12]; chunks.len()];
        let mut outs: Vec<Vec<u8>> = chunks.iter().map(|c| vec![0u8; c.length + TAG_LEN]).collect();
        let mut jobs: Vec<SealJob> = chunks
            .iter()
            .zip(ids.iter_mut())
            .zip(nonces.iter_mut())
            .zip(outs.iter_mut())
            .map(|(((c, id), n), o)| SealJob { offset: c.offset, length: c.length, id, nonce: n, out: o })
            .collect();
        seal_chunks(&d, Some(&dk), &key, b"vault-1", &mut jobs, true).unwrap();
        assert!(ids.iter().zip(&chunks).all(|(a, c)| *a == c.id));
        let mut whole = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let mut out = vec![0u8; c.length];
            open_chunk(&key, &dk, b"vault-1", &c.id, &nonces[i], &outs[i], &mut out).unwrap();
            whole.extend_from_slice(&out);
        }
        assert_eq!(whole, d);
        // Another vault's prefix, or the id of another chunk: refused.
        let mut out = vec![0u8; chunks[0].length];
        assert!(open_chunk(&key, &dk, b"vault-2", &chunks[0].id, &nonces[0], &outs[0], &mut out).is_err());
        assert!(open_chunk(&key, &dk, b"vault-1", &chunks[1].id, &nonces[0], &outs[0], &mut out).is_err());
    }

    #[test]
    fn not_last_holds_back_the_tail() {
        let d = data(300_000);
        let all = cut_and_identify(&d, &[0u8; 32], (4096, 16384, 65536), true).unwrap();
        let part = cut_and_identify(&d, &[0u8; 32], (4096, 16384, 65536), false).unwrap();
        assert_eq!(part.len() + 1, all.len());
        assert_eq!(&all[..part.len()], &part[..]);
    }
}
