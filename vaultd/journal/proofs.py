"""RFC 6962 / RFC 9162 Merkle proof verification, in pure Python (hashlib only).

This module is what the server uses to check its own proofs before it signs or hands them out, and what
``vaultctl verify`` uses offline. It depends on nothing but the standard library, so an auditor can read
it whole. Hashing: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), empty tree =
SHA-256(""). Proof hashes are ordered from the bottom of the tree upward (RFC 9162 section 2.1.3, 2.1.4).

Every failure raises :class:`ProofError` (an :class:`~vaultd.errors.IntegrityError`) whose message says
which check failed; nothing returns ``False`` silently.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from vaultd.errors import IntegrityError

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "verify_inclusion",
    "verify_consistency",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# A proof in a tree of at most 2^64 leaves has at most 64 (inclusion) or 128 (consistency) hashes.
MAX_PROOF_HASHES = 130


class ProofError(IntegrityError):
    """A Merkle inclusion or consistency proof does not hold."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + bytes(left) + bytes(right)).digest()


def _check_proof_shape(proof: Sequence[bytes], what: str) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"{what}: proof has {len(proof)} hashes, more than any tree can need")
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what}: proof hash {i} is {len(h)} bytes, not {HASH_SIZE}")


def _inner_border(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof: ``inner`` hashes below the point where the path to ``index`` and the
    path to the last leaf diverge, then ``border`` hashes of left siblings on the right border."""
    inner = ((index ^ (size - 1)).bit_length())
    border = bin(index >> inner).count("1")
    return inner, border


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof of the leaf HASH ``leaf`` at ``index`` in a tree of ``size``."""
    if not (0 <= index < size):
        raise ProofError(f"inclusion: leaf index {index} is not inside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"inclusion: leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    _check_proof_shape(proof, "inclusion")
    inner, border = _inner_border(index, size)
    if len(proof) != inner + border:
        raise ProofError(
            f"inclusion: proof has {len(proof)} hashes, a leaf at {index} of {size} needs {inner + border}"
        )
    h = leaf
    for i, sibling in enumerate(proof[:inner]):
        h = node_hash(sibling, h) if (index >> i) & 1 else node_hash(h, sibling)
    for sibling in proof[inner:]:
        h = node_hash(sibling, h)
    return h


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that the leaf HASH ``leaf`` is at ``index`` in the tree of ``size`` whose root is ``root``."""
    got = root_from_inclusion(index, size, leaf, proof)
    if not hmac.compare_digest(got, bytes(root)):
        raise ProofError(
            f"inclusion: the proof for leaf {index} does not lead to the root of the tree of size {size}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the tree of ``size1`` with ``root1``
    (RFC 9162 section 2.1.4.2)."""
    if size1 <= 0:
        raise ProofError("consistency: the old tree size must be at least 1")
    if size2 < size1:
        raise ProofError(f"consistency: the new tree ({size2}) is smaller than the old one ({size1})")
    if size1 == size2:
        if proof:
            raise ProofError("consistency: the sizes are equal but the proof is not empty")
        if not hmac.compare_digest(bytes(root1), bytes(root2)):
            raise ProofError(f"consistency: two different roots for the same tree size {size1}")
        return
    if not proof:
        raise ProofError("consistency: empty proof between different tree sizes")
    _check_proof_shape(proof, "consistency")
    if len(root1) != HASH_SIZE or len(root2) != HASH_SIZE:
        raise ProofError("consistency: a root is not a 32-byte hash")
    # RFC 9162 2.1.4.2: if size1 is an exact power of two, prepend root1 to the proof.
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency: the proof is longer than the tree sizes allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency: the proof is shorter than the tree sizes need")
    if not hmac.compare_digest(fr, bytes(root1)):
        raise ProofError(f"consistency: the proof does not lead to the old root (size {size1})")
    if not hmac.compare_digest(sr, bytes(root2)):
        raise ProofError(f"consistency: the proof does not lead to the new root (size {size2})")
