"""AES-256-GCM: differential against cryptography's AESGCM, batches, and self-chosen nonces."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.errors import IntegrityError, InvalidArgument

key_st = st.binary(min_size=32, max_size=32)
nonce_st = st.binary(min_size=12, max_size=12)


@settings(max_examples=100, deadline=None)
@given(key=key_st, nonce=nonce_st, pt=st.binary(max_size=3000), aad=st.binary(max_size=100))
def test_matches_cryptography(key: bytes, nonce: bytes, pt: bytes, aad: bytes) -> None:
    ref = AESGCM(key).encrypt(nonce, pt, aad)
    assert crypto.aead_seal(key, nonce, pt, aad) == ref
    assert crypto.aead_open(key, nonce, ref, aad) == pt


@settings(max_examples=50, deadline=None)
@given(key=key_st, nonce=nonce_st, pt=st.binary(min_size=1, max_size=300), flip=st.integers(0, 10_000))
def test_any_changed_bit_is_refused(key: bytes, nonce: bytes, pt: bytes, flip: int) -> None:
    sealed = bytearray(crypto.aead_seal(key, nonce, pt, b"ad"))
    bit = flip % (len(sealed) * 8)
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        crypto.aead_open(key, nonce, sealed, b"ad")


def test_large_buffers_and_views() -> None:
    key, nonce = os.urandom(32), os.urandom(12)
    pt = os.urandom(5 << 20)
    sealed = crypto.aead_seal(key, nonce, memoryview(pt), b"")
    assert sealed == AESGCM(key).encrypt(nonce, pt, b"")
    assert crypto.aead_open(key, nonce, bytearray(sealed), b"") == pt


def test_batches_and_failing_index() -> None:
    n = 40
    keys = [os.urandom(32) for _ in range(3)] * 14
    keys = keys[:n]
    nonces = [os.urandom(12) for _ in range(n)]
    pts = [os.urandom(i * 1000) for i in range(n)]
    aads = [str(i).encode() for i in range(n)]
    sealed = crypto.aead_seal_batch(keys, nonces, pts, aads)
    assert sealed == [AESGCM(k).encrypt(nn, p, a) for k, nn, p, a in zip(keys, nonces, pts, aads)]
    assert crypto.aead_open_batch(keys, nonces, sealed, aads) == pts
    bad = list(sealed)
    bad[17] = bad[17][:-1] + bytes([bad[17][-1] ^ 1])
    bad[30] = bad[30][:5]
    with pytest.raises(IntegrityError, match=r"^item 17: "):
        crypto.aead_open_batch(keys, nonces, bad, aads)
    with pytest.raises(InvalidArgument):
        crypto.aead_seal_batch(keys, nonces[:-1], pts, aads)
    with pytest.raises(InvalidArgument, match=r"item 2"):
        crypto.aead_seal_batch(keys[:3], [b"n" * 12, b"n" * 12, b"n" * 11], pts[:3], aads[:3])
    assert crypto.aead_seal_batch([], [], [], []) == []


def test_bad_lengths() -> None:
    with pytest.raises(InvalidArgument):
        crypto.aead_seal(b"k" * 16, b"n" * 12, b"x", b"")
    with pytest.raises(InvalidArgument):
        crypto.aead_seal(b"k" * 32, b"n" * 16, b"x", b"")
    with pytest.raises(IntegrityError):
        crypto.aead_open(b"k" * 32, b"n" * 12, b"short", b"")


def test_self_chosen_nonces() -> None:
    key = os.urandom(32)
    a = crypto.seal(key, b"same", b"ad")
    b = crypto.seal(key, b"same", b"ad")
    assert a[:12] != b[:12] and len(a) == 12 + 4 + 16
    assert AESGCM(key).decrypt(a[:12], a[12:], b"ad") == b"same"
    assert crypto.open_sealed(key, b, b"ad") == b"same"
    with pytest.raises(IntegrityError):
        crypto.open_sealed(key, b, b"other")
    sk = crypto.SealingKey(key)
    nonces = {sk.seal(b"x")[:12] for _ in range(2000)}
    assert len(nonces) == 2000 and sk.used == 2000
    assert crypto.SealingKey.limit == 2**32
    assert sk.open(sk.seal(os.urandom(200_000), b"a"), b"a") != b""
    with pytest.raises(IntegrityError):
        sk.open(b"\x00" * 27)
