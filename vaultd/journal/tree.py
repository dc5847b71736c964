"""The journal's Merkle tree (RFC 6962 / RFC 9162), stored in LMDB beside the data it records.

One named database of the shared Environment, ``journal.tree``: key the leaf index (u64 big-endian),
value the hashes of every complete subtree that ends at that leaf, by level from 0 (the leaf hash)
up, 32 bytes each, followed by the leaf's canonical bytes. Leaf ``i`` ends ``1 + t`` complete subtrees,
``t`` the number of trailing one bits of ``i``: amortised two hashes per leaf, at most log2(n) + 1. The
hash of the subtree of ``2^level`` leaves at position ``p`` on its level is found in the record of its
last leaf, ``((p + 1) << level) - 1``. The tree size is the last key plus one.

An append is one put at the end of one B-tree (MDB_APPEND), so a commit writes the rightmost path of
that one tree and nothing else: on this kind of disk each separate page a commit writes costs about
0.1 ms of fsync, and the earlier layout (leaves, node hashes and the size in three databases) wrote
about three more pages per commit. A database in that layout is converted when the store opens.
Roots and proofs read O(log n) stored hashes; nothing rehashes the tree.

``append(txn, leaf)`` takes the caller's write transaction: the change and the leaf recording it commit
together or not at all. Reads without the caller's transaction open one through ``read`` (the store's
``raw_read`` in the daemon, so that growing the map waits for them; ``env.begin`` by default).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import lmdb

from vaultd import crypto as _crypto
from vaultd.crypto import MerkleExtension
from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument, NotFound
from vaultd.journal.proofs import EMPTY_ROOT, leaf_hash, node_hash

__all__ = ["MerkleTree", "Extension", "DB_TREE", "frontier_ranges", "record_slots", "tree_size"]

DB_TREE = b"journal.tree"
# The layout before journal.tree (converted on open): leaf index -> leaf; last leaf covered || level ->
# hash; b"size" -> tree size.
_OLD_LEAVES, _OLD_NODES, _OLD_META = b"journal.leaves", b"journal.nodes", b"journal.meta"
_U64 = struct.Struct(">Q")
_H = 32

# Opens a read transaction of the environment (``env.begin``, or a store's gated ``raw_read``).
ReadTxnOpener = Callable[[], AbstractContextManager[lmdb.Transaction]]


def record_slots(index: int) -> int:
    """How many hashes the record of leaf ``index`` holds: 1 + its trailing one bits."""
    return ((index + 1) & ~index).bit_length()


def tree_size(env: lmdb.Environment, txn: lmdb.Transaction) -> int:
    """The journal's tree size in ``txn``, for a reader that only opens the environment (read-only,
    another process): 0 when there is no journal yet."""
    try:
        db = env.open_db(DB_TREE, txn=txn, create=False)
    except lmdb.NotFoundError:
        return 0
    with txn.cursor(db=db) as cur:
        return int(_U64.unpack(cur.key())[0]) + 1 if cur.last() else 0


def frontier_ranges(size: int) -> list[tuple[int, int]]:
    """The complete subtrees ``[start, end)`` whose concatenation is the tree of ``size`` leaves, largest
    first (the binary decomposition of ``size``): their hashes determine the root and every later root."""
    out = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if (size >> level) & 1:
            out.append((start, start + (1 << level)))
            start += 1 << level
    return out


def _leaf_of(index: int, record: bytes | memoryview) -> bytes:
    """The leaf bytes of the record of leaf ``index`` (after its hashes)."""
    skip = _H * record_slots(index)
    if len(record) < skip:
        raise IntegrityError(f"journal: the record of leaf {index} is too short for its hashes")
    return bytes(record[skip:])


def _record_at(index: int, left: Callable[[int], bytes], leaf: bytes) -> tuple[bytes, bytes, bytes, int]:
    """The record of leaf ``index``: its bytes, the leaf hash, and the hash of the largest complete
    subtree the leaf completes with the level of that subtree (the border's new entry). ``left(level)``
    gives the right border's entry at ``level`` (see :meth:`MerkleTree.border`): the hash of the
    complete subtree of ``2^level`` leaves just left of the one the leaf completes at that level."""
    h = lh = leaf_hash(leaf)
    hashes = [h]
    level, i = 0, index
    while i & 1:
        h = node_hash(left(level), h)
        hashes.append(h)
        level += 1
        i >>= 1
    hashes.append(leaf)
    return b"".join(hashes), lh, h, level


def _largest_pow2_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Append-only Merkle tree over LMDB. Thread-safe for readers; writes happen in the caller's txn."""

    def __init__(self, env: lmdb.Environment, *, read: ReadTxnOpener | None = None) -> None:
        self.env = env
        self._read: ReadTxnOpener = read or env.begin
        _convert_old_layout(env, self._read)
        self.db = env.open_db(DB_TREE)

    # -- writing ------------------------------------------------------------------------------------
    def size(self, txn: lmdb.Transaction | None = None) -> int:
        if txn is None:
            with self._read() as rtxn:
                return self.size(rtxn)
        with txn.cursor(db=self.db) as cur:
            return int(_U64.unpack(cur.key())[0]) + 1 if cur.last() else 0

    def append(self, txn: lmdb.Transaction, leaf: bytes) -> int:
        """Append one leaf inside the caller's write transaction; return its index."""
        return self.append_hashed(txn, leaf)[0]

    def append_hashed(self, txn: lmdb.Transaction, leaf: bytes) -> tuple[int, bytes]:
        """Append one leaf inside the caller's write transaction; return its index and leaf hash."""
        index = self.size(txn)
        return index, self._append_at(txn, index, bytes(leaf))

    def border(self, txn: lmdb.Transaction, size: int) -> tuple[bytes, ...]:
        """The right border of the stored tree of ``size`` leaves, for :meth:`append_at_border`:
        where bit ``level`` of ``size`` is set, entry ``level`` is the stored hash of the tree's
        frontier range of ``2^level`` leaves (see :func:`frontier_ranges`); other entries are
        meaningless."""
        return tuple(self._node(txn, level, (size >> level) - 1) if (size >> level) & 1 else b""
                     for level in range(size.bit_length()))

    def append_at_border(self, txn: lmdb.Transaction, size: int, border: tuple[bytes, ...],
                         leaf: bytes) -> tuple[bytes, tuple[bytes, ...]]:
        """Append ``leaf`` as leaf ``size`` of a tree whose right border the caller holds (see
        :meth:`border`), in the caller's write transaction: no storage read, one put. Returns the
        leaf hash and the border of the tree of ``size + 1`` leaves. The caller answers for
        ``size`` and ``border`` being those of the tree in ``txn``. The record is made by the core
        (every deposit's append on the store writer's thread; :func:`_record_at` is the reference)."""
        record, lh, border = _crypto.journal_record(size, border, leaf)
        self._put_record(txn, size, record)
        return lh, border

    def append_many(self, txn: lmdb.Transaction, leaves: Iterable[bytes]) -> list[int]:
        index = self.size(txn)
        out = []
        for leaf in leaves:
            self._append_at(txn, index, bytes(leaf))
            out.append(index)
            index += 1
        return out

    def _append_at(self, txn: lmdb.Transaction, index: int, leaf: bytes) -> bytes:
        """Append leaf ``index``, the hashes its record needs read from ``txn``; return its hash."""
        record, lh, _, _ = _record_at(index, lambda level: self._node(txn, level, (index >> level) - 1), leaf)
        self._put_record(txn, index, record)
        return lh

    def _put_record(self, txn: lmdb.Transaction, index: int, record: bytes) -> None:
        """Put the record of leaf ``index`` at the end of the tree (MDB_APPEND)."""
        if not txn.put(_U64.pack(index), record, db=self.db, append=True):
            raise IntegrityError(f"journal: leaf {index} cannot be appended: the tree holds a later leaf")

    def bulk_load(self, leaves: Iterable[bytes], *, batch: int = 100_000) -> int:
        """Fast path for building large trees (benchmarks, imports): MDB_APPEND writes, one write
        transaction per ``batch`` leaves, the right border kept in memory. Only on an empty or
        bulk-loaded tree; produces exactly the same records as :meth:`append`."""
        with self._read() as rtxn:
            index = self.size(rtxn)
            # the right border of the existing tree from stored hashes, one entry per level
            border = list(self.border(rtxn, index)) + [b""] * (64 - index.bit_length())
        it = iter(leaves)
        done = False
        while not done:
            items: list[tuple[bytes, bytes]] = []
            for _ in range(batch):
                try:
                    leaf = bytes(next(it))
                except StopIteration:
                    done = True
                    break
                record, _, h, level = _record_at(index, border.__getitem__, leaf)
                border[level] = h
                items.append((_U64.pack(index), record))
                index += 1
            if not items:
                break
            with self.env.begin(write=True) as txn:
                with txn.cursor(db=self.db) as cur:
                    cur.putmulti(items, append=True)
        return index

    # -- reading ------------------------------------------------------------------------------------
    def _node(self, txn: lmdb.Transaction, level: int, index: int) -> bytes:
        last = ((index + 1) << level) - 1
        raw = txn.get(_U64.pack(last), db=self.db)
        if raw is None:
            raise IntegrityError(f"journal: stored node hash missing (level {level}, index {index})")
        if len(raw) < _H * record_slots(last):
            raise IntegrityError(f"journal: stored node hash (level {level}, index {index}) is cut short")
        return bytes(raw[_H * level:_H * (level + 1)])

    def subtree(self, start: int, end: int, txn: lmdb.Transaction) -> bytes:
        """The stored hash of the complete subtree of leaves ``[start, end)`` (a power of two long, aligned)."""
        level = (end - start).bit_length() - 1
        return self._node(txn, level, start >> level)

    def _mth(self, txn: lmdb.Transaction, start: int, end: int) -> bytes:
        """Merkle tree hash of leaves [start, end) where start is aligned on a power of two >= end-start,
        as every range in RFC 9162 recursions is. Reads O(log n) stored complete-subtree hashes."""
        n = end - start
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self._node(txn, level, start >> level)
        k = _largest_pow2_below(n)
        return node_hash(self._mth(txn, start, start + k), self._mth(txn, start + k, end))

    def _txn(self, txn: lmdb.Transaction | None) -> Any:
        return _Borrowed(txn) if txn is not None else self._read()

    def _check_size(self, txn: lmdb.Transaction, size: int) -> None:
        current = self.size(txn)
        if size > current:
            raise NotFound(f"journal: tree size {size} is larger than the journal ({current} leaves)")

    def root(self, size: int | None = None, txn: lmdb.Transaction | None = None) -> bytes:
        with self._txn(txn) as t:
            if size is None:
                size = self.size(t)
            if size < 0:
                raise InvalidArgument("journal: negative tree size")
            self._check_size(t, size)
            return EMPTY_ROOT if size == 0 else self._mth(t, 0, size)

    def leaf(self, index: int, txn: lmdb.Transaction | None = None) -> bytes:
        with self._txn(txn) as t:
            raw = t.get(_U64.pack(index), db=self.db) if index >= 0 else None
            if raw is None:
                raise NotFound(f"journal: no leaf {index}")
            return _leaf_of(index, raw)

    def leaf_hash(self, index: int, txn: lmdb.Transaction | None = None) -> bytes:
        with self._txn(txn) as t:
            return self._node(t, 0, index)

    def leaves_from(self, start: int, txn: lmdb.Transaction | None = None) -> Iterable[tuple[int, bytes]]:
        """Yield (index, leaf bytes) from ``start`` inside one read transaction (a generator)."""
        with self._txn(txn) as t:
            with t.cursor(db=self.db) as cur:
                if not cur.set_range(_U64.pack(max(0, start))):
                    return
                for k, v in cur:
                    idx = int(_U64.unpack(k)[0])
                    yield idx, _leaf_of(idx, v)

    def inclusion_proof(self, index: int, size: int, txn: lmdb.Transaction | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size]) from stored hashes."""
        if not 0 <= index < size:
            raise InvalidArgument(f"journal: leaf index {index} is not inside a tree of size {size}")
        with self._txn(txn) as t:
            self._check_size(t, size)
            proof: list[bytes] = []
            start, end, m = 0, size, index
            # Walk down from the root, collecting siblings top-down; reverse at the end.
            while end - start > 1:
                k = _largest_pow2_below(end - start)
                if m < k:
                    proof.append(self._mth(t, start + k, end))
                    end = start + k
                else:
                    proof.append(self._mth(t, start, start + k))
                    start += k
                    m -= k
            proof.reverse()
            return proof

    def consistency_proof(self, old: int, new: int, txn: lmdb.Transaction | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old, D[0:new]) from stored hashes."""
        if not 0 < old <= new:
            raise InvalidArgument(f"journal: no consistency proof from size {old} to size {new}")
        with self._txn(txn) as t:
            self._check_size(t, new)
            proof: list[bytes] = []
            start, end, m, whole = 0, new, old, True
            while True:
                n = end - start
                if m == n:
                    if not whole:
                        proof.append(self._mth(t, start, end))
                    break
                k = _largest_pow2_below(n)
                if m <= k:
                    proof.append(self._mth(t, start + k, end))
                    end = start + k
                else:
                    proof.append(self._mth(t, start, start + k))
                    start += k
                    m -= k
                    whole = False
            proof.reverse()
            return proof

    def audit(self, txn: lmdb.Transaction | None = None, *, start: int = 0) -> list[str]:
        """Recompute every stored hash from the leaves (O(n)); return one message per mismatch.

        Used by the integrity check: it names the leaf or node that differs from what its content says.
        """
        problems: list[str] = []
        with self._txn(txn) as t:
            size = self.size(t)
            border: list[bytes] = []
            with t.cursor(db=self.db) as cur:
                expected = 0
                for k, v in cur:
                    index = int(_U64.unpack(k)[0])
                    if index != expected:
                        problems.append(f"journal leaf {expected} is missing")
                        return problems
                    expected += 1
                    slots = record_slots(index)
                    if len(v) < _H * slots:
                        problems.append(f"journal leaf {index}: its record is too short for its hashes")
                        return problems
                    stored_hashes = [bytes(v[_H * s:_H * (s + 1)]) for s in range(slots)]
                    # Each stored hash is checked against its own stored children, so a change is
                    # reported where it is, not again at every ancestor.
                    h = leaf_hash(bytes(v[_H * slots:]))
                    if stored_hashes[0] != h:
                        problems.append(f"journal leaf {index}: stored leaf does not match its stored leaf hash")
                    h = stored_hashes[0]
                    level, i = 0, index
                    while i & 1:
                        computed = node_hash(border[level], h)
                        level += 1
                        i >>= 1
                        h = stored_hashes[level]
                        if h != computed:
                            problems.append(
                                f"journal node (level {level}, index {i}) does not match the hash of its children"
                            )
                    if level == len(border):
                        border.append(h)
                    else:
                        border[level] = h
                    if len(problems) > 100:
                        break
            if expected != size and not problems:
                problems.append(f"journal: {expected} leaves read, tree size {size}")
        return problems


# The tree of ``size`` leaves held in memory as the frontier of an earlier tree of ``old_size`` leaves
# (its complete-subtree hashes, see :func:`frontier_ranges`) and the leaf hashes appended since. Every
# hash of a proof for a leaf at ``old_size`` or later, and every hash of a consistency proof from
# ``old_size``, is one of those or is computed from them: a whole batch of receipts costs about one hash
# per leaf of the batch, with no storage read. It lives in the Rust core (``MerkleExtension``: its
# ``receipts`` proves, checks and encodes a batch's receipts in one call), since it runs for every
# group commit; tests check it against the stored tree and the RFC definition.
Extension = MerkleExtension


class _Borrowed:
    """Context manager that hands out the caller's transaction without ending it."""

    __slots__ = ("txn",)

    def __init__(self, txn: lmdb.Transaction) -> None:
        self.txn = txn

    def __enter__(self) -> lmdb.Transaction:
        return self.txn

    def __exit__(self, *exc: object) -> None:
        return None


def naive_root(leaves: Sequence[bytes]) -> bytes:
    """Reference MTH by definition (tests and self-checks only; O(n))."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _largest_pow2_below(len(leaves))
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def _convert_old_layout(env: lmdb.Environment, read: ReadTxnOpener) -> None:
    """Move a journal kept in the earlier three-database layout into ``journal.tree`` (one write
    transaction: all or nothing), each leaf checked against its stored leaf hash on the way, then drop
    the old databases. The other stored hashes are carried as they are: the audit checks them."""
    with read() as txn:
        if txn.get(_OLD_LEAVES) is None:  # named databases are keys of the main database
            return
    if env.flags().get("readonly"):
        raise FailedPrecondition("the journal is in the layout of an earlier vaultd: start `vaultd serve` on "
                                 "this data folder once to convert it")
    with env.begin(write=True) as txn:
        leaves = env.open_db(_OLD_LEAVES, txn=txn)
        nodes = env.open_db(_OLD_NODES, txn=txn)
        meta = env.open_db(_OLD_META, txn=txn)
        tree = env.open_db(DB_TREE, txn=txn)
        raw = txn.get(b"size", db=meta)
        size = 0 if raw is None else int(_U64.unpack(raw)[0])
        with txn.cursor(db=tree) as cur:
            if cur.first():
                raise IntegrityError("the journal is in both the earlier and the current layout")
        with txn.cursor(db=tree) as out:
            for index in range(size):
                key = _U64.pack(index)
                leaf = txn.get(key, db=leaves)
                if leaf is None:
                    raise IntegrityError(f"journal: leaf {index} is missing (converting the earlier layout)")
                hashes = []
                for level in range(record_slots(index)):
                    h = txn.get(key + bytes([level]), db=nodes)
                    if h is None or len(h) != _H:
                        raise IntegrityError(f"journal: stored node hash missing (level {level}, "
                                             f"index {index >> level}) (converting the earlier layout)")
                    hashes.append(bytes(h))
                if hashes[0] != leaf_hash(bytes(leaf)):
                    raise IntegrityError(f"journal leaf {index}: stored leaf does not match its stored leaf hash")
                out.put(key, b"".join(hashes) + bytes(leaf), append=True)
        for db in (leaves, nodes, meta):
            txn.drop(db, delete=True)
