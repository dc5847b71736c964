"""Signatures: differential against cryptography (Ed25519 deterministic signatures, ECDSA P-256)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.errors import InvalidArgument

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


@settings(max_examples=40, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), msgs=st.lists(st.binary(max_size=300), min_size=1, max_size=80))
def test_ed25519_matches_cryptography(seed: bytes, msgs: list[bytes]) -> None:
    ref = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    pk = ref.public_key().public_bytes(*RAW)
    assert crypto.ed25519_public_key(seed) == pk
    sigs = crypto.ed25519_sign_batch(seed, msgs)
    assert sigs == [ref.sign(m) for m in msgs]
    assert crypto.ed25519_verify_batch([pk] * len(msgs), msgs, sigs) == [True] * len(msgs)
    bad = [s[:10] + bytes([s[10] ^ 4]) + s[11:] for s in sigs]
    assert crypto.ed25519_verify_batch([pk] * len(msgs), msgs, bad) == [False] * len(msgs)


def test_ed25519_batch_answers_per_item() -> None:
    seeds = [os.urandom(32) for _ in range(5)]
    pks = [crypto.ed25519_public_key(s) for s in seeds]
    msgs = [os.urandom(40) for _ in range(200)]
    sigs = [crypto.ed25519_sign_batch(seeds[i % 5], [m])[0] for i, m in enumerate(msgs)]
    keys = [pks[i % 5] for i in range(200)]
    sigs[3] = sigs[4]
    keys[150] = pks[0] if 150 % 5 else pks[1]
    want = [i not in (3, 150) for i in range(200)]
    assert crypto.ed25519_verify_batch(keys, msgs, sigs) == want
    assert crypto.ed25519_verify_batch([b"short"], [b""], [b"x" * 64]) == [False]
    with pytest.raises(InvalidArgument):
        crypto.ed25519_verify_batch(keys, msgs[:-1], sigs)
    with pytest.raises(InvalidArgument):
        crypto.ed25519_sign_batch(b"short", [b""])


@settings(max_examples=20, deadline=None)
@given(msgs=st.lists(st.binary(max_size=200), min_size=1, max_size=20), compressed=st.booleans())
def test_ecdsa_p256_matches_cryptography(msgs: list[bytes], compressed: bool) -> None:
    sk = ec.generate_private_key(ec.SECP256R1())
    fmt = serialization.PublicFormat.CompressedPoint if compressed else serialization.PublicFormat.UncompressedPoint
    pk = sk.public_key().public_bytes(serialization.Encoding.X962, fmt)
    der = [sk.sign(m, ec.ECDSA(hashes.SHA256())) for m in msgs]
    p1363 = [b"".join(x.to_bytes(32, "big") for x in decode_dss_signature(s)) for s in der]
    keys = [pk] * len(msgs)
    assert crypto.ecdsa_p256_verify_batch(keys, msgs, der, True) == [True] * len(msgs)
    assert crypto.ecdsa_p256_verify_batch(keys, msgs, p1363, False) == [True] * len(msgs)
    assert crypto.ecdsa_p256_verify_batch(keys, msgs, der, False) == [False] * len(msgs)
    other = [m + b"!" for m in msgs]
    assert crypto.ecdsa_p256_verify_batch(keys, other, p1363, False) == [False] * len(msgs)
