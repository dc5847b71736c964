"""Digests: differential against the blake3 package and hashlib."""

from __future__ import annotations

import hashlib

import blake3 as blake3_ref
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.errors import InvalidArgument

data_st = st.one_of(st.binary(max_size=5000), st.integers(0, 600_000).map(lambda n: bytes(i % 253 for i in range(n))))


@settings(max_examples=80, deadline=None)
@given(data=data_st, key=st.binary(min_size=32, max_size=32), length=st.integers(1, 200))
def test_blake3_matches_reference(data: bytes, key: bytes, length: int) -> None:
    assert crypto.blake3(data) == blake3_ref.blake3(data).digest()
    assert crypto.blake3(data, length) == blake3_ref.blake3(data).digest(length)
    assert crypto.blake3_keyed(key, data) == blake3_ref.blake3(data, key=key).digest()
    ctx = "vaultd 2026 test context"
    assert crypto.blake3_derive_key(ctx, data, length) == blake3_ref.blake3(data, derive_key_context=ctx).digest(length)


@settings(max_examples=60, deadline=None)
@given(data=data_st, cuts=st.lists(st.integers(0, 600_000), max_size=6))
def test_streaming_matches_one_shot(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    s, b = crypto.Sha256Hasher(), crypto.Blake3Hasher()
    for lo, hi in zip(points, points[1:]):
        s.update(memoryview(data)[lo:hi])
        b.update(data[lo:hi])
    assert s.digest() == hashlib.sha256(data).digest() == crypto.sha256(data)
    assert s.hexdigest() == hashlib.sha256(data).hexdigest()
    assert b.digest() == crypto.blake3(data)
    c = s.copy()
    c.update(b"more")
    assert c.digest() == hashlib.sha256(data + b"more").digest()
    assert s.digest() == hashlib.sha256(data).digest()


def test_bad_keys_and_lengths() -> None:
    with pytest.raises(InvalidArgument):
        crypto.blake3_keyed(b"short", b"x")
    with pytest.raises(InvalidArgument):
        crypto.Blake3Hasher(key=b"k" * 31)
    with pytest.raises(InvalidArgument):
        crypto.blake3(b"x", 0)
    with pytest.raises(TypeError):
        crypto.sha256("text")  # type: ignore[arg-type]
