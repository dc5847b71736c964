"""FastCDC boundaries: behaviour, and differential against pyfastcdc.

pyfastcdc implements the same FastCDC 2020 as the Rust `fastcdc` crate's v2020 module: the gear table
of the paper's reference code (seed 0), masks chosen from log2(avg) +- the normalisation level, and
normalisation level 1 by default ("aligning with fastcdc-rs"). Given the same min/avg/max and level 1,
the cut points must be identical.
"""

from __future__ import annotations

import random

import pyfastcdc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.errors import InvalidArgument


def pyfastcdc_ends(data: bytes, min_size: int, avg_size: int, max_size: int) -> list[int]:
    cdc = pyfastcdc.FastCDC(avg_size, min_size=min_size, max_size=max_size, normalized_chunking=1, seed=0)
    return [c.offset + c.length for c in cdc.cut_buf(data)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(0, 400_000),
    avg_log=st.integers(8, 14),
    repeat=st.booleans(),
)
def test_same_cut_points_as_pyfastcdc(seed: int, size: int, avg_log: int, repeat: bool) -> None:
    rng = random.Random(seed)
    if repeat:  # low-entropy data: long runs and repeated blocks
        block = rng.randbytes(rng.randint(1, 5000))
        data = (block * (size // len(block) + 1))[:size]
    else:
        data = rng.randbytes(size)
    avg = 1 << avg_log
    mn, mx = max(64, avg // 4), max(1024, avg * 4)
    assert crypto.chunk_boundaries(data, mn, avg, mx) == pyfastcdc_ends(data, mn, avg, mx)


def test_defaults_and_bounds() -> None:
    rng = random.Random(1)
    data = rng.randbytes(8 << 20)
    ends = crypto.chunk_boundaries(data)
    assert ends == pyfastcdc_ends(data, crypto.DEFAULT_MIN_SIZE, crypto.DEFAULT_AVG_SIZE, crypto.DEFAULT_MAX_SIZE)
    assert ends[-1] == len(data)
    sizes = [b - a for a, b in zip([0, *ends], ends)]
    assert all(crypto.DEFAULT_MIN_SIZE <= s <= crypto.DEFAULT_MAX_SIZE for s in sizes[:-1])
    assert 8 <= len(ends) <= 64
    assert crypto.chunk_boundaries(b"") == []
    assert crypto.chunk_boundaries(b"small") == [5]
    # memoryview and bytearray are borrowed the same way
    assert crypto.chunk_boundaries(memoryview(data)[:1 << 20]) == crypto.chunk_boundaries(bytearray(data[: 1 << 20]))


@pytest.mark.parametrize("sizes", [(32, 256, 1024), (4096, 2048, 65536), (64, 256, 1 << 25), (65536, 65536, 1000)])
def test_sizes_out_of_range_are_refused(sizes: tuple[int, int, int]) -> None:
    with pytest.raises(InvalidArgument):
        crypto.chunk_boundaries(b"x" * 100, *sizes)
