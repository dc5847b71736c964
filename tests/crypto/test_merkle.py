"""RFC 6962 Merkle trees: against a direct transcription of the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.errors import InvalidArgument


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _split(len(d))
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = _split(len(d))
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _split(n)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_against_rfc_definitions(n: int, data: st.DataObject) -> None:
    leaves = [crypto.merkle_leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    assert leaves[0] == hashlib.sha256(b"\x00" + (0).to_bytes(4, "big")).digest()
    root = crypto.merkle_root(leaves)
    assert root == mth(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = crypto.merkle_inclusion_proof(leaves, i)
    assert proof == path(i, leaves)
    assert crypto.merkle_verify_inclusion(leaves[i], i, n, proof, root)
    assert not crypto.merkle_verify_inclusion(crypto.merkle_leaf_hash(b"other"), i, n, proof, root)
    m = data.draw(st.integers(1, n))
    cproof = crypto.merkle_consistency_proof(leaves, m)
    assert cproof == (subproof(m, leaves, True) if m < n else [])
    assert crypto.merkle_verify_consistency(m, n, mth(leaves[:m]), root, cproof)
    if m < n:
        assert not crypto.merkle_verify_consistency(m, n, mth(leaves[: m - 1]) if m > 1 else root, root, cproof)
    tree = crypto.MerkleTree(leaves[: n // 2])
    tree.extend(leaves[n // 2 :])
    assert len(tree) == tree.size == n
    assert tree.root() == root and tree.root(m) == mth(leaves[:m])
    assert tree.inclusion_proof(i) == proof
    assert tree.consistency_proof(m) == cproof


def test_bad_arguments() -> None:
    t = crypto.MerkleTree()
    assert t.root() == hashlib.sha256(b"").digest()
    assert t.append(crypto.merkle_leaf_hash(b"a")) == 0
    with pytest.raises(InvalidArgument):
        t.append(b"short")
    with pytest.raises(InvalidArgument):
        t.inclusion_proof(1)
    with pytest.raises(InvalidArgument):
        t.consistency_proof(0)
    with pytest.raises(InvalidArgument):
        crypto.merkle_root([b"x" * 31])
