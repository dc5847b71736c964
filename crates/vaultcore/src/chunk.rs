//! Content-defined chunking: FastCDC as published in 2020 (Xia et al., "The Design of Fast
//! Content-Defined Chunking for Data Deduplication Based Storage Systems", IEEE TPDS), normalisation
//! level 1, the gear table of the paper's reference code (the `fastcdc` crate's `v2020` module).

use crate::error::{Error, Result};
use fastcdc::v2020::{FastCDC, Normalization};

/// Default minimum chunk size (64 KiB). See `DEFAULT_AVG`.
pub const DEFAULT_MIN: usize = 64 * 1024;
/// Default average chunk size (256 KiB).
///
/// For documents of 10 KiB to 1 GiB: a document under 64 KiB is one chunk (small office files are not
/// worth splitting: each chunk costs an id, a nonce, a tag and an index entry); a 1 GiB document makes
/// about 3,300 chunks, so its manifest stays near 200 KiB; a one-page edit in the middle of a large
/// document rewrites about 300 KiB. With buffers of a few MiB per call there are 10 or more chunks per
/// call to spread over the cores, and each chunk is large enough that the per-chunk costs (key
/// schedule, nonce, Python object) are well under 1% of the work.
pub const DEFAULT_AVG: usize = 256 * 1024;
/// Default maximum chunk size (1 MiB): one gRPC data message, one LMDB overflow value of bounded size.
pub const DEFAULT_MAX: usize = 1024 * 1024;

/// Checks the sizes against the ranges the algorithm supports (and min <= avg <= max).
pub fn check_sizes(min_size: usize, avg_size: usize, max_size: usize) -> Result<()> {
    use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
    let within = |v: usize, lo: u32, hi: u32| v >= lo as usize && v <= hi as usize;
    if !within(min_size, MINIMUM_MIN, MINIMUM_MAX) {
        return Err(Error::invalid(format!("min_size must be in {MINIMUM_MIN}..={MINIMUM_MAX}, got {min_size}")));
    }
    if !within(avg_size, AVERAGE_MIN, AVERAGE_MAX) {
        return Err(Error::invalid(format!("avg_size must be in {AVERAGE_MIN}..={AVERAGE_MAX}, got {avg_size}")));
    }
    if !within(max_size, MAXIMUM_MIN, MAXIMUM_MAX) {
        return Err(Error::invalid(format!("max_size must be in {MAXIMUM_MIN}..={MAXIMUM_MAX}, got {max_size}")));
    }
    if !(min_size <= avg_size && avg_size <= max_size) {
        return Err(Error::invalid("chunk sizes must satisfy min_size <= avg_size <= max_size"));
    }
    Ok(())
}

/// The end offset of every chunk of `data`, in order; the last one is `data.len()`. Empty data has
/// no chunk. Chunk `i` is `data[ends[i-1]..ends[i]]` (with `ends[-1]` = 0).
///
/// On a pool of several threads a large buffer is cut in segments at once: each segment is chunked
/// from its own start (speculatively), then one pass walks the true chain of cut points from offset 0
/// and, as soon as it lands on a cut point of the next segment's chain, adopts the rest of that chain.
/// A cut point depends only on the position it starts from, so the result is identical to the
/// sequential algorithm; the chains usually meet after one or two chunks.
pub fn boundaries(data: &[u8], min_size: usize, avg_size: usize, max_size: usize) -> Result<Vec<usize>> {
    check_sizes(min_size, avg_size, max_size)?;
    let chunker = FastCDC::with_level(data, min_size as u32, avg_size as u32, max_size as u32, Normalization::Level1);
    let len = data.len();
    let next = |pos: usize| chunker.cut(pos, len - pos).1;
    // The size test comes first: a small buffer never touches rayon (asking for the thread count
    // outside a pool would start rayon's global pool).
    let floor = PARALLEL_SEGMENT_MIN.max(8 * (min_size + avg_size));
    if len < 2 * floor {
        return Ok(chain(&next, 0, len, len));
    }
    let threads = rayon::current_num_threads();
    let segment = (len / threads.max(1)).max(floor);
    if threads <= 1 || len < 2 * segment {
        return Ok(chain(&next, 0, len, len));
    }
    let starts: Vec<usize> = (0..len / segment).map(|j| j * segment).collect();
    let lists: Vec<Vec<usize>> = {
        use rayon::prelude::*;
        (0..starts.len())
            .into_par_iter()
            .map(|j| chain(&next, starts[j], starts.get(j + 1).copied().unwrap_or(len), len))
            .collect()
    };
    let mut out = lists[0].clone();
    for list in &lists[1..] {
        let Some(&covered) = list.last() else { continue };
        let mut x = *out.last().expect("a non-empty buffer has a cut");
        while x < len && x <= covered {
            if let Ok(i) = list.binary_search(&x) {
                out.extend_from_slice(&list[i + 1..]);
                break;
            }
            x = next(x);
            out.push(x);
        }
    }
    while let Some(&x) = out.last() {
        if x >= len {
            break;
        }
        out.push(next(x));
    }
    Ok(out)
}

/// Below this many bytes per segment the buffer is cut by one thread.
pub const PARALLEL_SEGMENT_MIN: usize = 1 << 20;

/// Cut points from `start` (taken as a chunk start) until the first one at or past `until`.
fn chain(next: &(impl Fn(usize) -> usize + Sync), start: usize, until: usize, len: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < len {
        pos = next(pos);
        out.push(pos);
        if pos >= until {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    #[test]
    fn covers_the_input_within_bounds() {
        let data = pseudo_random(3 << 20, 7);
        let ends = boundaries(&data, 4096, 16384, 65536).unwrap();
        assert_eq!(*ends.last().unwrap(), data.len());
        let mut prev = 0;
        for (i, &e) in ends.iter().enumerate() {
            let len = e - prev;
            assert!(len <= 65536);
            if i + 1 < ends.len() {
                assert!(len >= 4096);
            }
            prev = e;
        }
        assert!(ends.len() > 3 << 20 >> 16, "expected many chunks, got {}", ends.len());
    }

    #[test]
    fn cut_points_are_content_defined() {
        // Inserting bytes near the start moves only the first few cut points.
        let data = pseudo_random(2 << 20, 11);
        let mut shifted = vec![0xAB; 100];
        shifted.extend_from_slice(&data);
        let a = boundaries(&data, 4096, 16384, 65536).unwrap();
        let b: Vec<usize> = boundaries(&shifted, 4096, 16384, 65536).unwrap().iter().map(|e| e - 100).collect();
        let common = a.iter().filter(|e| b.contains(e)).count();
        assert!(common * 10 >= a.len() * 9, "{common} of {} cut points kept", a.len());
    }

    #[test]
    fn parallel_segments_give_the_sequential_cut_points() {
        let mut data = pseudo_random(9 << 20, 3);
        data[(4 << 20)..(5 << 20)].fill(0); // a long run without content-defined cuts
        for sizes in [(256usize, 1024usize, 4096usize), (4096, 16384, 65536), (65536, 262144, 1 << 20)] {
            let sequential: Vec<usize> = FastCDC::with_level(&data, sizes.0 as u32, sizes.1 as u32, sizes.2 as u32, Normalization::Level1)
                .map(|c| c.offset + c.length)
                .collect();
            for threads in [1, 2, 3, 5] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool.install(|| boundaries(&data, sizes.0, sizes.1, sizes.2)).unwrap();
                assert_eq!(got, sequential, "sizes {sizes:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn empty_and_small() {
        assert!(boundaries(&[], DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX).unwrap().is_empty());
        assert_eq!(boundaries(&[1, 2, 3], DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX).unwrap(), vec![3]);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(boundaries(b"x", 10, 256, 1024).is_err());
        assert!(boundaries(b"x", 4096, 2048, 65536).is_err());
        assert!(boundaries(b"x", 64, 256, 1 << 30).is_err());
    }
}
