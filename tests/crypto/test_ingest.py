"""The fused deposit path: ingest (boundaries, ids, seals) and open_chunks, against a pure-Python
pipeline built from pyfastcdc, blake3 and cryptography."""

from __future__ import annotations

import hashlib
import os
import random

import blake3 as blake3_ref
import pyfastcdc
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.errors import IntegrityError, InvalidArgument

SIZES = {"min_size": 1024, "avg_size": 4096, "max_size": 16384}


def keys() -> tuple[bytes, bytes]:
    return os.urandom(32), os.urandom(32)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 200_000))
def test_matches_python_pipeline(seed: int, size: int) -> None:
    data = random.Random(seed).randbytes(size)
    dedup, dkey = keys()
    chunks = crypto.ingest(data, dedup, dkey, b"vault:7|kv:1|", min_size=1024, avg_size=4096, max_size=16384)
    cdc = pyfastcdc.FastCDC(SIZES["avg_size"], min_size=SIZES["min_size"], max_size=SIZES["max_size"])
    ref = list(cdc.cut_buf(data))
    assert [(c.offset, c.length) for c in chunks] == [(r.offset, r.length) for r in ref]
    gcm = AESGCM(dkey)
    for c in chunks:
        piece = data[c.offset : c.offset + c.length]
        assert c.chunk_id == blake3_ref.blake3(piece, key=dedup).digest()
        assert c.nonce is not None and c.sealed is not None and len(c.nonce) == 12
        assert gcm.decrypt(c.nonce, c.sealed, crypto.chunk_aad(b"vault:7|kv:1|", c.chunk_id)) == piece


def test_sealed_chunks_share_one_read_only_buffer() -> None:
    """Every sealed chunk of a call is a read-only view into one buffer laid out as the stored form
    (nonce || ciphertext || tag, chunk after chunk); the buffer outlives the list it came from."""
    data = random.Random(5).randbytes(1 << 20)
    dedup, dkey = keys()
    chunks = crypto.ingest(data, dedup, dkey, b"v1", known={b"x" * 32}, **SIZES)
    views = [c.sealed for c in chunks]
    stored = [c.stored for c in chunks]
    assert len(views) > 100 and all(isinstance(v, memoryview) and v.readonly for v in views + stored)
    owner = views[0].obj  # type: ignore[union-attr]
    assert isinstance(owner, bytes) and all(v.obj is owner for v in views + stored)  # type: ignore[union-attr]
    expected = b"".join(c.nonce + c.sealed for c in chunks)  # type: ignore[operator]
    assert owner == expected and len(owner) == len(data) + 28 * len(chunks)
    # the stored form of each chunk is its nonce then its sealed bytes, and the forms tile the buffer
    assert all(s == c.nonce + c.sealed for s, c in zip(stored, chunks, strict=True))  # type: ignore[operator]
    assert b"".join(stored) == owner  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        views[0][0] = 0  # type: ignore[index]
    nonces, ids = [c.nonce for c in chunks], [c.chunk_id for c in chunks]
    del chunks
    assert b"".join(crypto.open_chunks(dkey, dedup, b"v1", ids, nonces, views)) == data  # type: ignore[arg-type]


def test_round_trip_known_and_tampering() -> None:
    data = random.Random(3).randbytes(3 << 20)
    dedup, dkey = keys()
    chunks = crypto.ingest(data, dedup, dkey, b"v1")
    assert len(chunks) >= 3 and len({c.nonce for c in chunks}) == len(chunks)
    ids = [c.chunk_id for c in chunks]
    nonces = [c.nonce for c in chunks]
    sealed = [c.sealed for c in chunks]
    assert all(n is not None for n in nonces) and all(s is not None for s in sealed)
    plain = crypto.open_chunks(dkey, dedup, b"v1", ids, nonces, sealed)  # type: ignore[arg-type]
    assert b"".join(plain) == data
    # known ids are not sealed again
    again = crypto.ingest(data, dedup, dkey, b"v1", known={ids[0], ids[2]})
    assert [c.chunk_id for c in again] == ids
    assert again[0].sealed is None and again[0].nonce is None and again[0].stored is None and again[2].stored is None
    assert again[1].sealed is not None
    # a swapped id (another chunk's) or another vault's prefix is refused, naming the index
    swapped = list(ids)
    swapped[1] = ids[0]
    with pytest.raises(IntegrityError, match=r"^item 1: "):
        crypto.open_chunks(dkey, dedup, b"v1", swapped, nonces, sealed)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError, match=r"^item 0: "):
        crypto.open_chunks(dkey, dedup, b"v2", ids, nonces, sealed)  # type: ignore[arg-type]
    # the right tag but an id that does not match the plaintext: sealed under a forged AAD
    forged_id = bytes(32)
    forged = crypto.aead_seal(dkey, b"\x01" * 12, b"evil", b"v1" + forged_id)
    with pytest.raises(IntegrityError, match=r"^item 2: chunk id"):
        crypto.open_chunks(dkey, dedup, b"v1", [*ids[:2], forged_id], [*nonces[:2], b"\x01" * 12], [*sealed[:2], forged])  # type: ignore[list-item]


def test_open_chunks_in_groups() -> None:
    """Grouped, each group's chunks come back end to end in one bytes (what a Read streams as one
    message); a bad chunk is still named by its own index, and bad group counts are refused."""
    data = random.Random(5).randbytes(5 << 20)
    dedup, dkey = keys()
    chunks = crypto.ingest(data, dedup, dkey, b"v1")
    n = len(chunks)
    assert n >= 6
    ids = [c.chunk_id for c in chunks]
    nonces = [c.nonce for c in chunks]
    sealed = [c.sealed for c in chunks]
    single = crypto.open_chunks(dkey, dedup, b"v1", ids, nonces, sealed)  # type: ignore[arg-type]
    for groups in ([n], [1] * n, [2, 1, n - 5, 2], [n - 1, 1]):
        joined = crypto.open_chunks(dkey, dedup, b"v1", ids, nonces, sealed, groups)  # type: ignore[arg-type]
        assert len(joined) == len(groups)
        at = 0
        for g, piece in zip(groups, joined):
            assert piece == b"".join(single[at:at + g])
            at += g
    # framed: each group is an encoded protobuf message with that one length-delimited field
    from vaultd.v1 import vault_pb2 as pb

    field = pb.ReadResponse.DESCRIPTOR.fields_by_name["data"].number
    groups = [1, 2, n - 3]
    framed = crypto.open_chunks(dkey, dedup, b"v1", ids, nonces, sealed, groups, field)  # type: ignore[arg-type]
    at = 0
    for g, piece in zip(groups, framed):
        assert pb.ReadResponse.FromString(piece).data == b"".join(single[at:at + g])
        assert pb.ReadResponse(data=b"".join(single[at:at + g])).SerializeToString() == piece
        at += g
    for bad_field in (0, 16):
        with pytest.raises(InvalidArgument, match="field"):
            crypto.open_chunks(dkey, dedup, b"v1", ids, nonces, sealed, groups, bad_field)  # type: ignore[arg-type]
    swapped = list(ids)
    swapped[4] = ids[3]
    with pytest.raises(IntegrityError, match=r"^item 4: "):
        crypto.open_chunks(dkey, dedup, b"v1", swapped, nonces, sealed, [2, n - 2])  # type: ignore[arg-type]
    for bad in ([n + 1], [0, n], [n - 1], []):
        with pytest.raises(InvalidArgument, match="groups"):
            crypto.open_chunks(dkey, dedup, b"v1", ids, nonces, sealed, bad)  # type: ignore[arg-type]


def test_streaming_in_buffers_gives_the_same_chunks() -> None:
    data = random.Random(5).randbytes(6 << 20)
    dedup, dkey = keys()
    whole = crypto.ingest(data, dedup, dkey, b"p")
    hasher = crypto.Sha256Hasher()
    got: list[tuple[int, int, bytes]] = []
    carry = b""
    base = 0
    pos = 0
    step = 1 << 20
    while pos < len(data):
        buf = carry + data[pos : pos + step]
        pos += step
        last = pos >= len(data)
        out = crypto.ingest(buf, dedup, dkey, b"p", last=last, hasher=hasher)
        got += [(base + c.offset, c.length, c.chunk_id) for c in out]
        end = out[-1].offset + out[-1].length if out else 0
        carry = buf[end:]
        base += end
    assert got == [(c.offset, c.length, c.chunk_id) for c in whole]
    assert hasher.digest() == hashlib.sha256(data).digest()


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgument):
        crypto.ingest(b"x", b"short", b"k" * 32, b"")
    with pytest.raises(InvalidArgument):
        crypto.ingest(b"x", b"k" * 32, b"k" * 31, b"")
    with pytest.raises(InvalidArgument):
        crypto.ingest(b"x", b"k" * 32, b"k" * 32, b"", min_size=10)
    with pytest.raises(InvalidArgument):
        crypto.open_chunks(b"k" * 32, b"k" * 32, b"", [b"i" * 32], [b"n" * 12], [])
    assert crypto.ingest(b"", b"k" * 32, b"k" * 32, b"") == []
