"""The LMDB Merkle tree against a naive reference implementation at various sizes, and the number of
stored hashes read per proof (logarithmic)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd import crypto
from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument, NotFound
from vaultd.journal import proofs
from vaultd.journal.tree import MerkleTree, _record_at, naive_root, record_slots


def _ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 PATH by definition (hashes every leaf of the range)."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return _ref_path(m, leaves[:k]) + [naive_root(leaves[k:])]
    return _ref_path(m - k, leaves[k:]) + [naive_root(leaves[:k])]


def _ref_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return _ref_subproof(m, leaves[:k], whole) + [naive_root(leaves[k:])]
    return _ref_subproof(m - k, leaves[k:], False) + [naive_root(leaves[:k])]


class CountingTree(MerkleTree):
    reads = 0

    def _node(self, txn, level, index):  # type: ignore[no-untyped-def]
        self.reads += 1
        return super()._node(txn, level, index)


@pytest.fixture()
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    e = lmdb.open(str(tmp_path), max_dbs=8, map_size=1 << 28)
    yield e
    e.close()


def test_against_naive_reference(env: lmdb.Environment) -> None:
    tree = MerkleTree(env)
    leaves = [hashlib.sha256(b"%d" % i).digest()[: i % 40] for i in range(67)]
    with env.begin(write=True) as txn:
        tree.append_many(txn, leaves[:1])
    for leaf in leaves[1:]:
        with env.begin(write=True) as txn:
            tree.append(txn, leaf)
    for n in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 67]:
        root = tree.root(n)
        assert root == naive_root(leaves[:n])
        for i in range(n):
            p = tree.inclusion_proof(i, n)
            assert p == _ref_path(i, leaves[:n])
            proofs.verify_inclusion(i, n, proofs.leaf_hash(leaves[i]), p, root)
        for m in range(1, n + 1):
            p = tree.consistency_proof(m, n)
            assert p == _ref_subproof(m, leaves[:n], True)
            proofs.verify_consistency(m, n, p, tree.root(m), root)
    assert tree.audit() == []


def test_bounds(env: lmdb.Environment) -> None:
    tree = MerkleTree(env)
    assert tree.root(0) == proofs.EMPTY_ROOT
    with env.begin(write=True) as txn:
        tree.append_many(txn, [b"a", b"b", b"c"])
    with pytest.raises(NotFound):
        tree.root(4)
    with pytest.raises(InvalidArgument):
        tree.inclusion_proof(3, 3)
    with pytest.raises(NotFound):
        tree.inclusion_proof(0, 9)
    with pytest.raises(InvalidArgument):
        tree.consistency_proof(0, 3)
    with pytest.raises(InvalidArgument):
        tree.consistency_proof(3, 2)
    with pytest.raises(NotFound):
        tree.leaf(3)


def test_bulk_load_equals_append(tmp_path: Path) -> None:
    leaves = [b"leaf-%d" % i for i in range(300)]
    e1 = lmdb.open(str(tmp_path / "a"), max_dbs=8, map_size=1 << 26)
    e2 = lmdb.open(str(tmp_path / "b"), max_dbs=8, map_size=1 << 26)
    t1, t2 = MerkleTree(e1), MerkleTree(e2)
    for leaf in leaves:
        with e1.begin(write=True) as txn:
            t1.append(txn, leaf)
    t2.bulk_load(leaves[:101], batch=17)
    t2.bulk_load(leaves[101:], batch=64)  # continues from a non-power-of-two border
    with e1.begin() as a, e2.begin() as b:
        records = list(a.cursor(db=t1.db))
        assert len(records) == len(leaves)
        assert records == list(b.cursor(db=t2.db))
    e1.close()
    e2.close()


def test_proof_reads_are_logarithmic(env: lmdb.Environment) -> None:
    tree = CountingTree(env)
    n = (1 << 14) + 12345
    tree.bulk_load((b"%d" % i for i in range(n)), batch=50_000)
    worst_incl = worst_cons = 0
    for i in [0, 1, n // 3, n // 2, n - 2, n - 1]:
        tree.reads = 0
        tree.inclusion_proof(i, n)
        worst_incl = max(worst_incl, tree.reads)
    for m in [1, 2, 3, 1000, n // 2, n - 1]:
        tree.reads = 0
        tree.consistency_proof(m, n)
        worst_cons = max(worst_cons, tree.reads)
    depth = n.bit_length()
    assert worst_incl <= 2 * depth, worst_incl
    assert worst_cons <= 3 * depth, worst_cons


def _write_earlier_layout(env: lmdb.Environment, leaves: list[bytes]) -> None:
    """The three databases of the layout before ``journal.tree``, written by its own rules (leaf index
    -> leaf; last leaf covered || level -> subtree hash; b"size" -> tree size)."""
    u64 = struct.Struct(">Q")
    with env.begin(write=True) as txn:
        ldb, ndb, mdb = (env.open_db(n, txn=txn) for n in (b"journal.leaves", b"journal.nodes", b"journal.meta"))
        for index, leaf in enumerate(leaves):
            txn.put(u64.pack(index), leaf, db=ldb)
            for level in range(record_slots(index)):
                first = index + 1 - (1 << level)
                txn.put(u64.pack(index) + bytes([level]), naive_root(leaves[first:index + 1]), db=ndb)
        txn.put(b"size", u64.pack(len(leaves)), db=mdb)


def test_earlier_layout_is_converted_on_open(tmp_path: Path) -> None:
    leaves = [b"leaf-%d" % i for i in range(45)]
    e = lmdb.open(str(tmp_path / "db"), max_dbs=8, map_size=1 << 26)
    _write_earlier_layout(e, leaves)
    e.close()
    # read-only (a backup's verification, another process): refused with what to do
    ro = lmdb.open(str(tmp_path / "db"), max_dbs=8, readonly=True)
    with pytest.raises(FailedPrecondition, match="start `vaultd serve` on this data folder once"):
        MerkleTree(ro)
    ro.close()
    e = lmdb.open(str(tmp_path / "db"), max_dbs=8, map_size=1 << 26)
    tree = MerkleTree(e)
    assert tree.size() == len(leaves)
    assert tree.root() == naive_root(leaves)
    assert [leaf for _, leaf in tree.leaves_from(0)] == leaves
    assert tree.audit() == []
    with e.begin() as txn:
        assert [txn.get(n) for n in (b"journal.leaves", b"journal.nodes", b"journal.meta")] == [None] * 3
    with e.begin(write=True) as txn:
        tree.append(txn, b"after")
    assert tree.root() == naive_root(leaves + [b"after"])
    assert MerkleTree(e).size() == len(leaves) + 1  # opened again: nothing left to convert
    e.close()


def test_earlier_layout_with_a_damaged_leaf_is_not_converted(tmp_path: Path) -> None:
    leaves = [b"leaf-%d" % i for i in range(9)]
    e = lmdb.open(str(tmp_path / "db"), max_dbs=8, map_size=1 << 26)
    _write_earlier_layout(e, leaves)
    with e.begin(write=True) as txn:
        txn.put(struct.pack(">Q", 4), b"forged", db=e.open_db(b"journal.leaves", txn=txn))
    with pytest.raises(IntegrityError, match="journal leaf 4: stored leaf does not match"):
        MerkleTree(e)
    with e.begin() as txn:  # all or nothing: the earlier layout is left as it was
        assert txn.get(b"journal.leaves") is not None and txn.get(b"journal.tree") is None
    e.close()


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, 2**40), leaf=st.binary(max_size=300), seed=st.binary(min_size=8, max_size=8))
def test_core_record_is_the_reference_record(index: int, leaf: bytes, seed: bytes) -> None:
    """The store writer's appends make their records in the core (crypto.journal_record): the same
    bytes, leaf hash and next border as the reference (_record_at), for any index, and the entries
    of the border it does not replace are kept as they are."""
    width = max(index.bit_length(), (index + 1).bit_length())
    border = tuple(hashlib.sha256(seed + bytes([level])).digest() for level in range(width))
    record, lh, nxt = crypto.journal_record(index, border, leaf)
    want, want_lh, h, level = _record_at(index, border.__getitem__, leaf)
    assert (record, lh) == (want, want_lh)
    assert nxt == border[:level] + (h,) + border[level + 1:]
    assert all(nxt[i] is border[i] for i in range(len(border)) if i != level)
    if level:  # an entry it reads that is not a hash, or missing, is refused
        with pytest.raises(InvalidArgument):
            crypto.journal_record(index, (b"\x00" * 31,) + border[1:], leaf)
        with pytest.raises(InvalidArgument):
            crypto.journal_record(index, border[:level - 1], leaf)
