"""The journal: leaves appended in the writer's transaction, one signed checkpoint per group commit,
evidence (receipts) and proof of delivery.

The simplest use::

    index = journal.append(txn, leaf)        # inside the write transaction of the change it records
    ...commit...
    note = journal.sign_head()               # after the commit: one checkpoint for the whole batch
    evidence = journal.receipt("deposit", index)   # leaf + inclusion proof + that checkpoint

The store writer goes the faster way (through :mod:`vaultd.journal.hook`): an :class:`AppendBatch` per
batch appends from a size and border kept in memory, and the head is drafted, checked, signed and its
receipts made before the commit (:meth:`Journal.draft_head`, :meth:`Journal.sign_draft_with_receipts`),
then made current once the commit is durable.

Before signing, the journal checks that the new tree head is consistent with the last one it signed
(an RFC 9162 consistency proof, verified); it refuses to sign otherwise. The last signed checkpoint is
also kept in a file outside LMDB (written atomically, at most once a second): on open, a journal that
holds fewer leaves than that checkpoint, or a different root at its size, is refused as rolled back or
altered.

Proof of delivery: a successful ``read`` leaf by a recipient (a citizen, or any identity other than the
depositor: the core marks such a read with the extra field ``depositor``) is indexed as the first read
of that object version, once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from vaultd import crypto as _crypto
from vaultd.errors import IntegrityError, InvalidArgument, NotFound, VaultError
from vaultd.journal import proofs
from vaultd.journal.checkpoint import Checkpoint, CheckpointError, open_checkpoint, sign_note
from vaultd.journal.leaf import EncodedLeaf, Leaf, Op, Outcome
from vaultd.journal.receipt import KINDS, RECEIPT_FORMAT, RECEIPT_VERSION, make_receipt
from vaultd.journal.signer import NoteSigner
from vaultd.journal.tree import Extension, MerkleTree, ReadTxnOpener, frontier_ranges

__all__ = ["Journal", "AppendBatch", "SignedHead", "HeadDraft", "DB_FIRST_READ", "DB_DEPOSITS"]

DB_FIRST_READ = b"journal.first_read"
DB_DEPOSITS = b"journal.deposits"
# The signed note of the tree, written in the transaction of the batch whose head was signed before
# its commit, so that any snapshot of the store (a backup's) finds the checkpoint of exactly its tree
# in itself. It is a key of LMDB's main database, whose keys are otherwise the names of the named
# databases (so it must never be a name opened as one): that database's page is written by every
# commit anyway (it holds each changed database's root), where a named database of its own cost
# every commit one more page to write and sync. A named database ``journal.head`` that held it
# before is dropped when the journal opens.
_HEAD_KEY = b"journal.signed-head"
_OLD_HEAD_DB = b"journal.head"
_U64 = struct.Struct(">Q")
log = logging.getLogger("vaultd.journal")

CHECKPOINT_FILE = "checkpoint"


@dataclass(frozen=True, slots=True)
class SignedHead:
    checkpoint: Checkpoint
    note: bytes


@dataclass(frozen=True)
class HeadDraft:
    """What signing the tree head of a batch needs, taken in its write transaction (see
    :meth:`Journal.draft_head`): the head it extends and the in-memory tree that head signed, the
    new size, the hashes of the leaves appended since, and the hashes written for the new tree's
    frontier ranges that hold new leaves (``stored``)."""

    prev: SignedHead
    base: Extension
    size: int
    hashes: list[bytes]
    stored: dict[tuple[int, int], bytes]


def _object_key(vault: str, name: str, version: int) -> bytes:
    """Index key of an object version: the name enters as its SHA-256, so that every name allowed
    (up to 1,024 bytes) gives a key well under LMDB's 511-byte bound."""
    return vault.encode() + b"\x00" + hashlib.sha256(name.encode()).digest() + _U64.pack(version)


def _verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: list[bytes], root: bytes) -> None:
    """The server's self-check of a proof it hands out, by the Rust core's verifier (several times
    faster than the pure-Python one, which offline verification uses)."""
    try:
        ok = _crypto.merkle_verify_inclusion(leaf_hash, index, size, proof, root)
    except (ValueError, TypeError, VaultError):
        ok = False
    if not ok:
        raise proofs.ProofError(f"inclusion: the proof for leaf {index} does not lead to the root of size {size}")


def _verify_consistency(old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes) -> None:
    try:
        ok = _crypto.merkle_verify_consistency(old, new, old_root, new_root, proof)
    except (ValueError, TypeError, VaultError):
        ok = False
    if not ok:
        raise proofs.ProofError(f"consistency: the proof does not lead from size {old} to size {new}")


def _leaf_parts(leaf: Leaf | bytes) -> tuple[bytes, Leaf | EncodedLeaf]:
    """A leaf's canonical bytes and what they encode (a :class:`Leaf`, or the :class:`EncodedLeaf`
    itself, which carries its fields)."""
    if isinstance(leaf, Leaf):
        return leaf.encode(), leaf
    if type(leaf) is EncodedLeaf:  # made by Leaf.make_encoded: its fields come with it
        return bytes(leaf), leaf
    return bytes(leaf), Leaf.decode(leaf)


_INDEXED = frozenset((Op.DEPOSIT, Op.DESTROY, Op.READ))


class AppendBatch:
    """The journal appends of one batch of the store writer (:meth:`Journal.begin_batch`), in the
    batch's write transaction and the nested transaction of each unit.

    Every LMDB call releases the GIL (py-lmdb does so around each get and put) and must take it back
    from whichever gRPC thread took it meanwhile; under load each one cost the writer, which
    serialises every commit, several times the call itself (an append that read the tree's size and
    a neighbour's hash before its put took 15 us alone and 70 us beside eight threads wanting the
    GIL). Here the size and the right border are kept in memory: an append is one put. The writer
    takes a :meth:`savepoint` before each unit and rolls back to it when the unit's transaction is
    aborted, and :meth:`close` says whether the batch committed: only then does its border serve the
    next batch."""

    __slots__ = ("_journal", "size", "_border", "_refused")

    def __init__(self, journal: Journal, size: int, border: tuple[bytes, ...]) -> None:
        self._journal = journal
        self.size = size
        self._border = border
        self._refused = False

    def append(self, txn: lmdb.Transaction, leaf: Leaf | bytes) -> int:
        """Append a leaf in ``txn`` (the batch's transaction or a child of it); return its index."""
        raw, decoded = _leaf_parts(leaf)
        index = self.size
        try:
            h, self._border = self._journal.tree.append_at_border(txn, index, self._border, raw)
        except IntegrityError:  # the tree is not the one kept in memory: the next batch reads it
            self._refused = True
            raise
        self.size = index + 1
        self._journal._recorded(txn, index, h, decoded)
        return index

    def frontier(self, since: int) -> dict[tuple[int, int], bytes]:
        """The hashes this batch's appends wrote for the frontier ranges of the tree that end after
        leaf ``since``: the border's entries (for each range of ``2^level`` leaves, entry
        ``level``), each the hash the record that completed that range holds."""
        size, border = self.size, self._border
        out = {}
        for start, end in frontier_ranges(size):
            if end > since:
                out[(start, end)] = border[(end - start).bit_length() - 1]
        return out

    def savepoint(self) -> tuple[int, tuple[bytes, ...]]:
        return self.size, self._border

    def rollback(self, savepoint: tuple[int, tuple[bytes, ...]]) -> None:
        """The appends since ``savepoint`` were undone (their transaction was aborted)."""
        self.size, self._border = savepoint

    def close(self, committed: bool) -> None:
        if self._refused:
            self._journal._tip = None
        elif committed:
            self._journal._tip = (self.size, self._border)


class Journal:
    def __init__(
        self,
        env: lmdb.Environment,
        signer: NoteSigner,
        *,
        origin: str | None = None,
        state_dir: Path | str | None = None,
        fsync: bool = True,
        background: bool = True,
        persist_interval: float = 1.0,
        metrics: Any = None,
        read: ReadTxnOpener | None = None,
    ) -> None:
        self.env = env
        # Every read transaction the journal opens comes from here: in the daemon the store's gated
        # ``raw_read``, which growing the map waits for (it ends any transaction opened otherwise).
        self._read: ReadTxnOpener = read or env.begin
        # vaultd.metrics.Metrics (or None; the composition root may also set it after opening):
        # checkpoints signed, leaves appended, integrity errors found by the journal
        self.metrics = metrics
        self.tree = MerkleTree(env, read=self._read)
        self.first_read = env.open_db(DB_FIRST_READ)
        self.deposits = env.open_db(DB_DEPOSITS)
        self.main_db = env.open_db(None)
        _drop_old_head_db(env, self._read)
        # Where the core keeps the index of each version's deposit leaf (in the version's own record,
        # written in the same unit): (vault, name, version) -> index or None. When set, deposits are
        # not indexed again in journal.deposits: that index's random-key insert cost each commit
        # about 250 us of LMDB commit time (pages of one more B-tree written and synced), the
        # largest single part of the journal's cost on a small deposit.
        self.deposit_index: Callable[[str, str, int], int | None] | None = None
        self.signer = signer
        self.verifier = signer.verifier()
        # The Rust core's key object, for a signer whose key it holds (Ed25519 from the key file):
        # sign_draft_with_receipts then checks, signs, lays out the note and makes the receipts in one call.
        self._core_key = getattr(signer, "core_key", None)
        self.origin = origin or signer.name
        self._state = Path(state_dir) if state_dir is not None else None
        self._fsync = fsync
        # The latest signed note is written to the state file by a background thread (latest wins), so
        # the writer does not wait for a second fsync per group commit. After a crash the file may hold
        # an older checkpoint, which the durable tree still extends: the rollback check stays sound.
        # The thread writes at most once per ``persist_interval`` seconds (and at once on flush and
        # close). The file serves the rollback check on open, and backups of a batch signed after its
        # commit (every other snapshot holds its own note: record_head). It was rewritten every
        # 0.05 s while backups had no other source of a checkpoint matching their snapshot; at that
        # rate its open, write, fsync and rename cost a lone client's daemon about 100 us of CPU per
        # deposit and one more fsync on the store's disk every 50 ms. A rollback of the store to a
        # state less than ``persist_interval`` old can go unnoticed by the file; every receipt and
        # checkpoint handed out in that time still proves it.
        self._pending: bytes | None = None
        self._interval = max(0.0, persist_interval)
        self._urgent = False  # flush or close asked: no waiting out the interval
        self._resting = False  # the background writer waits out the interval: a new note needs no wake-up
        self._cond = threading.Condition()
        self._closed = False
        self._persister: threading.Thread | None = None
        if background and state_dir is not None:
            self._persister = threading.Thread(target=self._persist_loop, name="vaultd-journal-checkpoint",
                                               daemon=True)
            self._persister.start()
        self._lock = threading.Lock()
        self._file_lock = threading.Lock()
        self._head: SignedHead | None = None
        # The in-memory view of the tree signed last (its frontier: complete-subtree hashes shown to
        # hash to its root; set with every head), and the hashes of leaves appended since (by index;
        # written on the writer thread, read when signing).
        self._extension: Extension | None = None
        self._leaf_hashes: dict[int, bytes] = {}
        self._hashes_from = 0  # every index in _leaf_hashes is at least this (the last signed size)
        # The tree's size and right border after the last batch the writer committed (AppendBatch).
        self._tip: tuple[int, tuple[bytes, ...]] | None = None
        self._load_head()
        # Leaves committed after the last persisted checkpoint (a crash between commit and signing, or
        # before the file was written) are signed now, once shown consistent with that checkpoint.
        if self.tree.size() > (self._head.checkpoint.size if self._head else 0):
            self.sign_head()

    # -- state ------------------------------------------------------------------------------------
    def _load_head(self) -> None:
        if self._state is None:
            return
        path = self._state / CHECKPOINT_FILE
        try:
            note = path.read_bytes()
        except FileNotFoundError:
            return
        try:
            cp = open_checkpoint(note, self.verifier)
        except (CheckpointError, InvalidArgument) as e:
            raise IntegrityError(f"journal: the last signed checkpoint file is not valid: {e}") from None
        if cp.origin != self.origin:
            raise IntegrityError(f"journal: the last checkpoint belongs to journal {cp.origin!r}")
        size = self.tree.size()
        if size < cp.size:
            raise IntegrityError(
                f"journal rolled back: it holds {size} leaves but a checkpoint of size {cp.size} was signed"
            )
        with self._read() as txn:
            ext = self._extension_from_storage(cp.size, txn)
        if not hmac.compare_digest(ext.root(), cp.root):
            raise IntegrityError(
                f"journal altered: its root at size {cp.size} differs from the signed checkpoint of that size"
            )
        self._head = SignedHead(cp, note)
        self._extension = ext

    def _persist_loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                note, self._pending = self._pending, None
                closed = self._closed
            if note is not None:
                try:
                    self._persist(note)
                except OSError:
                    log.exception("writing the journal checkpoint file failed")
                if self._interval:
                    with self._cond:
                        self._resting = True
                        self._cond.wait_for(lambda: self._closed or self._urgent, self._interval)
                        self._resting = False
            if closed and note is None:
                return

    def flush(self) -> None:
        """Wait until the latest signed checkpoint is in the state file."""
        if self._persister is None:
            return
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            while self._pending is not None:
                self._cond.wait(0.01)
            self._urgent = False
        with self._file_lock:  # the note the loop took may still be being written
            pass

    def close(self) -> None:
        """Write the last checkpoint and stop the background writer."""
        if self._persister is not None:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._persister.join()
            self._persister = None

    def _publish(self, note: bytes) -> None:
        if self._persister is None:
            self._persist(note)
            return
        with self._cond:
            self._pending = note
            if not self._resting:  # a resting writer takes it when the interval ends
                self._cond.notify_all()

    def _persist(self, note: bytes) -> None:
        if self._state is None:
            return
        with self._file_lock:
            self._state.mkdir(parents=True, exist_ok=True)
            tmp = self._state / (CHECKPOINT_FILE + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, note)
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._state / CHECKPOINT_FILE)

    # -- writing (inside the writer's transaction) -------------------------------------------------
    def append(self, txn: lmdb.Transaction, leaf: Leaf | bytes) -> int:
        """Append a leaf in the caller's write transaction; return its index. The tree's size and
        the hashes the new record needs are read from the transaction (the store writer appends
        through :meth:`begin_batch` instead, which reads nothing per leaf)."""
        self._tip = None  # a border kept from the writer's batches may no longer be the tree's
        raw, decoded = _leaf_parts(leaf)
        index, h = self.tree.append_hashed(txn, raw)
        self._recorded(txn, index, h, decoded)
        return index

    def begin_batch(self, txn: lmdb.Transaction) -> AppendBatch:
        """The store writer's batch transaction begins: its appends go through the returned
        :class:`AppendBatch`, which keeps the tree's size and right border in memory, so that an
        append is one put and no read. The size and border kept from the last batch that committed
        serve; without them (the first batch, an append made through :meth:`append`, a batch whose
        append was refused) they are read from ``txn`` (log2(n) reads). A tree that grew meanwhile
        by another way than this object (another process writing the store) refuses the next
        append: a put at the end of the tree fails on a key that is not past its last one, and
        the batch after it reads the tree again."""
        tip = self._tip
        if tip is None:
            size = self.tree.size(txn)
            tip = (size, self.tree.border(txn, size))
        return AppendBatch(self, *tip)

    def _recorded(self, txn: lmdb.Transaction, index: int, h: bytes, decoded: Leaf | EncodedLeaf) -> None:
        """What follows a leaf's append in the same transaction: its hash remembered for signing and
        receipts, and the indexes of deposits, destructions and recipients' first reads."""
        # An index appended again after an aborted transaction overwrites its entry, and signing
        # checks the hashes it uses against storage.
        self._leaf_hashes[index] = h
        op = decoded.operation
        if decoded.outcome != Outcome.OK or op not in _INDEXED or (op == Op.DEPOSIT and self.deposit_index is not None):
            return  # most leaves: a deposit's index is kept in its version's record
        leaf = decoded.leaf if isinstance(decoded, EncodedLeaf) else decoded
        if op == Op.READ:
            if leaf.actor_kind == "citizen" or any(k == "depositor" for k, _ in leaf.extra):
                txn.put(_object_key(leaf.vault, leaf.name, leaf.version), _U64.pack(index),
                        db=self.first_read, overwrite=False)
            return
        key = bytes([0 if op == Op.DEPOSIT else 1]) + _object_key(leaf.vault, leaf.name, leaf.version)
        txn.put(key, _U64.pack(index), db=self.deposits)

    # -- after the commit ---------------------------------------------------------------------------
    def sign_head(self) -> SignedHead:
        """Sign a checkpoint of the current tree (once per group commit), after checking that it is
        consistent with the last signed one. Returns the latest head if the tree has not grown.

        The check runs from memory: the frontier of the last signed tree (its complete-subtree hashes,
        shown to hash to its signed root) extended with the hashes of the leaves appended since gives
        the new tree's frontier and root; every stored hash of that new frontier (what later proofs and
        roots are read from) must equal it, and an RFC 9162 consistency proof built from those hashes
        must verify, or nothing is signed. A proof of the leaves appended since costs no storage read
        (see :meth:`batch_receipts`)."""
        with self._lock:
            with self._read() as txn:
                size = self.tree.size(txn)
                prev = self._head
                if prev is not None and prev.checkpoint.size == size:
                    return prev
                if prev is None or self._extension is None:
                    ext = self._extension_from_storage(size, txn)
                else:
                    old = prev.checkpoint
                    if size < old.size:
                        self._integrity_error()
                        raise IntegrityError(
                            f"journal rolled back: size {size} is smaller than the signed size {old.size}; not signing"
                        )
                    ext = self._extend(old.size, old.root, size, txn)
            cp = Checkpoint(self.origin, size, ext.root())
            head = SignedHead(cp, sign_note(cp.body(), self.signer))
            self._make_current(head, ext, prev.checkpoint.size if prev else 0)
            return head

    def _extension_from_storage(self, size: int, txn: lmdb.Transaction) -> Extension:
        """The tree of ``size`` leaves as its stored frontier (no signed head to extend)."""
        frontier = {r: self.tree.subtree(r[0], r[1], txn) for r in frontier_ranges(size)}
        return Extension(frontier, size, size, [])

    def _extend(self, old_size: int, old_root: bytes, size: int, txn: lmdb.Transaction) -> Extension:
        """The signed tree of ``old_size`` extended to ``size`` leaves, checked against storage."""
        assert self._extension is not None
        frontier = self._extension.frontier()
        cached = [self._leaf_hashes.get(i) for i in range(old_size, size)]
        for stored in (False, True):
            if stored:
                # The leaf hashes stored in the transactions, when some were not appended through this
                # object (or one remembered from an aborted transaction is stale): storage has the last word.
                hashes = [self.tree.subtree(i, i + 1, txn) for i in range(old_size, size)]
            elif any(h is None for h in cached):
                continue
            else:
                hashes = cached  # type: ignore[assignment]
            ext = Extension(frontier, old_size, size, hashes)
            bad = [r for r in frontier_ranges(size)
                   if not hmac.compare_digest(self.tree.subtree(r[0], r[1], txn), ext.mth(*r))]
            if not bad:
                break
            if stored:
                self._integrity_error()
                s, e = bad[0]
                raise IntegrityError(
                    f"journal: the tree of size {size} is not consistent with the signed checkpoint of size "
                    f"{old_size}; not signing (the stored hash of leaves {s}..{e - 1} differs from the signed "
                    "tree extended with the leaves appended since)"
                )
        if old_size:
            proof = ext.consistency_proof()
            try:
                _verify_consistency(old_size, size, proof, old_root, ext.root())
            except proofs.ProofError as e:
                self._integrity_error()
                raise IntegrityError(
                    f"journal: the tree of size {size} is not consistent with the signed checkpoint "
                    f"of size {old_size}; not signing ({e})"
                ) from None
        return ext

    # -- signing before the commit ------------------------------------------------------------------
    # The store writer (through vaultd.journal.hook) splits sign_head so that signing and the batch's
    # receipts need no storage read: draft_head, in the batch's write transaction before the commit,
    # takes the hashes the batch's appends wrote; sign_draft_with_receipts (storage not asked) extends
    # the signed tree in memory, checks it against those hashes and the consistency proof, signs and
    # makes the receipts (one call to the Rust core for a key it holds); install_head_first, once the
    # commit is durable, makes the new head current and leaves its publishing for later. A draft of a
    # commit that fails is dropped unpublished: no checkpoint of a tree that was never durable is ever
    # handed out or written.
    def draft_head(self, txn: lmdb.Transaction, appends: AppendBatch | None = None) -> HeadDraft | None:
        """In the batch's write transaction, before its commit: what signing its tree head needs, or
        None when the synchronous :meth:`sign_head` must decide (no head yet, a leaf not appended
        through this object, a tree that did not grow or shrank). With ``appends``, the batch's
        AppendBatch, the tree's size and the hashes its appends wrote come from it, not from
        ``txn``."""
        prev = self._head
        base = self._extension
        if prev is None or base is None or base.size != prev.checkpoint.size:
            return None
        size = appends.size if appends is not None else self.tree.size(txn)
        old = prev.checkpoint.size
        if size <= old:
            return None
        hashes = [self._leaf_hashes.get(i) for i in range(old, size)]
        if any(h is None for h in hashes):
            return None
        # Only the frontier ranges holding new leaves: one that ends at or before the signed size
        # lies in the signed tree, so it is one of the signed frontier's ranges (the binary
        # decompositions of the two sizes share their high bits), already shown to hash to the
        # signed root. The new ranges are where this batch's appends wrote hashes: those the
        # AppendBatch computed from the border it holds (each is the record it put), else those
        # storage holds. Checked against the signed tree extended with the leaves' own hashes,
        # they show that what was written continues the signed tree; a stored hash altered since
        # it was signed is found by the check of any proof that passes through it (every proof
        # handed out is checked against the signed root).
        if appends is not None:
            stored = appends.frontier(old)
        else:
            stored = {r: self.tree.subtree(r[0], r[1], txn) for r in frontier_ranges(size) if r[1] > old}
        return HeadDraft(prev, base, size, hashes, stored)  # type: ignore[arg-type]

    def sign_draft(self, draft: HeadDraft) -> tuple[SignedHead, Extension] | None:
        """Any thread, no storage access: the signed head of a draft and the in-memory tree it signs,
        or None when the check fails (then :meth:`sign_head` reads storage after the commit and
        refuses, naming what differs)."""
        signed = self.sign_draft_with_receipts(draft, [])
        return None if signed is None else (signed[0], signed[1])

    def sign_draft_with_receipts(self, draft: HeadDraft, items: list[tuple[str, int, bytes]],
                                 ) -> tuple[SignedHead, Extension, list[bytes | None]] | None:
        """:meth:`sign_draft`, and the receipts of ``items`` under the head signed (as
        :meth:`batch_receipts` makes them from the draft's tree). With a key the core holds, the check,
        the signature, the note and the receipts are one call to the core."""
        old = draft.prev.checkpoint
        ext = draft.base.extended(draft.hashes)
        key = self._core_key
        if key is not None and all(kind in KINDS for kind, _, _ in items):
            signed = ext.sign_checkpoint(old.root, draft.stored, self.origin, key, self.signer.name,
                                         self.signer.key_id, RECEIPT_FORMAT, RECEIPT_VERSION, items)
            if signed is None:
                return None
            root, note, receipts = signed
            self._report_unproven(items, receipts, draft.size)
            return SignedHead(Checkpoint(self.origin, draft.size, root), note), ext, receipts
        # the stored frontier is this tree's and the tree extends the signed one
        if not ext.consistent_with(old.root, draft.stored):
            return None
        cp = Checkpoint(self.origin, draft.size, ext.root())
        head = SignedHead(cp, sign_note(cp.body(), self.signer))
        return head, ext, self.batch_receipts(head, items, ext=ext) if items else []

    def record_head(self, txn: lmdb.Transaction, head: SignedHead) -> None:
        """In the write transaction of the leaves ``head`` signs, before its commit: the note, for
        whoever reads that snapshot later (:func:`stored_head`)."""
        txn.put(_HEAD_KEY, head.note, db=self.main_db)

    def stored_note(self, txn: lmdb.Transaction) -> bytes | None:
        """The note :meth:`record_head` left in ``txn``'s snapshot (see :func:`stored_head`)."""
        return stored_head(self.env, txn)

    def install_head(self, draft: HeadDraft, head: SignedHead, ext: Extension) -> SignedHead:
        """Once the draft's commit is durable: its head becomes the current one and is published.
        Returns the current head (the same tree, signed by another caller meanwhile, stays)."""
        head, later = self.install_head_first(draft, head, ext)
        if later is not None:
            later()
        return head

    def install_head_first(self, draft: HeadDraft, head: SignedHead, ext: Extension,
                           ) -> tuple[SignedHead, Callable[[], None] | None]:
        """:meth:`install_head` in two steps for the store writer: the head becomes current now, and
        the returned callable (None when there is nothing to do) does the rest (the signed leaves'
        remembered hashes dropped, the note published to the checkpoint file, the metrics counted)
        once the batch's deposits are acknowledged. Call it on the same thread, before the next
        batch."""
        with self._lock:
            cur = self._head
            if cur is not draft.prev:
                if cur is not None and cur.checkpoint.size >= head.checkpoint.size:
                    return cur, None
                raise IntegrityError("journal: the signed head moved while a batch was committed")
            self._head = head
            self._extension = ext
        prev_size = draft.prev.checkpoint.size
        return head, lambda: self._made_current(head, prev_size)

    def _make_current(self, head: SignedHead, ext: Extension, prev_size: int) -> None:
        """Under the lock: ``head`` (with ``ext``, the in-memory tree it signs) becomes the current
        head, its leaves' remembered hashes are dropped, and it is published and counted."""
        self._head = head
        self._extension = ext
        self._made_current(head, prev_size)

    def _made_current(self, head: SignedHead, prev_size: int) -> None:
        """What follows a head becoming current: the remembered hashes of the leaves it signs dropped,
        its note published, the leaves and the checkpoint counted."""
        size = head.checkpoint.size
        self._forget_leaf_hashes(size)
        self._publish(head.note)
        if self.metrics is not None:
            self.metrics.journal_appended_leaves(size - prev_size)
            self.metrics.checkpoint_signed()

    def _forget_leaf_hashes(self, size: int) -> None:
        """Drop the remembered hashes of the leaves below ``size``, now signed. Leaves are appended at
        the tree size or above, so they are the run from the last signed size: dropped by range, not by
        scanning the dict, which keeps the table of the largest size it ever had (a burst of appends
        would otherwise make every later commit pay for it); an emptied dict is replaced."""
        hashes = self._leaf_hashes
        for i in range(self._hashes_from, size):
            hashes.pop(i, None)
        self._hashes_from = max(self._hashes_from, size)
        if not hashes:
            self._leaf_hashes = {}

    def _integrity_error(self) -> None:
        if self.metrics is not None:
            self.metrics.integrity_error("journal")

    def head(self) -> SignedHead:
        """The latest signed checkpoint (signing one first if none exists yet)."""
        head = self._head
        return head if head is not None else self.sign_head()

    # -- evidence -----------------------------------------------------------------------------------
    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self.tree.inclusion_proof(index, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return self.tree.consistency_proof(old, new)

    def receipt(self, kind: str, index: int, head: SignedHead | None = None) -> bytes:
        """Evidence for the leaf at ``index``: the leaf, its inclusion proof and a signed checkpoint that
        includes it. The proof is checked against the signed root before it is handed out."""
        head = head or self.head()
        size = head.checkpoint.size
        if index >= size:
            head = self.sign_head()
            size = head.checkpoint.size
            if index >= size:
                raise NotFound(f"journal: no leaf {index}")
        with self._read() as txn:
            leaf = self.tree.leaf(index, txn)
            proof = self.tree.inclusion_proof(index, size, txn)
        try:
            _verify_inclusion(index, size, proofs.leaf_hash(leaf), proof, head.checkpoint.root)
        except proofs.ProofError:
            self._integrity_error()
            raise IntegrityError(
                f"journal: leaf {index} or the stored hashes on its path were altered: its inclusion proof "
                f"does not lead to the signed root of size {size}"
            ) from None
        return make_receipt(kind, leaf, index, size, proof, head.note)

    def batch_receipts(self, head: SignedHead, items: list[tuple[str, int, bytes]],
                       ext: Extension | None = None) -> list[bytes | None]:
        """Receipts for leaves appended since the previous head, right after ``head`` was signed:
        ``items`` are (kind, index, leaf bytes as appended). The proofs come from the in-memory view of
        the signed tree (``ext``, by default the current head's; hashes shared by the whole batch
        computed once); each receipt's proof is checked against the signed root, from the leaf bytes it
        carries, before it is returned. Without ``ext``, an item outside that view (another head, an
        earlier leaf) gets its receipt from storage, as :meth:`receipt` does; with ``ext`` (before the
        batch is durable: storage must not be asked) it gets None, as does one that cannot be made
        (its evidence can be fetched later)."""
        given = ext is not None
        if ext is None:
            ext = self._extension if self._head is head else None
        size = head.checkpoint.size
        out: list[bytes | None] = [None] * len(items)
        in_view: list[int] = []
        for i, (kind, index, leaf) in enumerate(items):
            if kind not in KINDS:
                log.error("journal evidence for leaf %d failed: receipt kind %r", index, kind)
            elif ext is not None and ext.size == size and ext.old_size <= index < size:
                in_view.append(i)
            elif not given:
                out[i] = self._stored_receipt(kind, index, leaf, head)
        if in_view:
            # one call to the core: each proof made from memory, checked against the signed root
            # from the leaf bytes it carries, and its receipt encoded
            proven = [items[i] for i in in_view]
            made = ext.receipts(head.checkpoint.root, head.note.decode("utf-8"),  # type: ignore[union-attr]
                                RECEIPT_FORMAT, RECEIPT_VERSION, proven)
            self._report_unproven(proven, made, size)
            for i, receipt in zip(in_view, made):
                out[i] = receipt
        return out

    def _report_unproven(self, items: list[tuple[str, int, bytes]], receipts: list[bytes | None],
                         size: int) -> None:
        """Count and log each item the core gave no receipt: its proof from memory did not lead to the
        signed root of ``size`` leaves."""
        for (_, index, _), receipt in zip(items, receipts):
            if receipt is None:
                self._integrity_error()
                log.error("journal evidence for leaf %d failed: its proof does not lead to the signed "
                          "root of size %d", index, size)

    def _stored_receipt(self, kind: str, index: int, leaf: bytes, head: SignedHead) -> bytes | None:
        """The receipt of a leaf outside the in-memory tree, from storage (None when it cannot be made:
        the change is durable; its evidence can be fetched again later)."""
        try:
            if not hmac.compare_digest(self.tree.leaf(index), leaf):
                raise IntegrityError(f"journal: leaf {index} is not the leaf this receipt was asked for")
            return self.receipt(kind, index, head)
        except Exception:
            log.exception("journal evidence for leaf %d failed", index)
            return None

    def object_receipt(self, vault: str, name: str, version: int, *, destroyed: bool = False) -> bytes:
        """The evidence of an object version's deposit (or destruction), fetched again later."""
        if not destroyed and self.deposit_index is not None:
            index = self.deposit_index(vault, name, version)
            if index is not None:
                leaf = Leaf.decode(self.tree.leaf(index))
                if (leaf.operation, leaf.vault, leaf.name, leaf.version) != (Op.DEPOSIT, vault, name, version):
                    self._integrity_error()
                    raise IntegrityError(f"journal: leaf {index} is not the deposit of {vault}/{name} "
                                         f"version {version} that the object's record points to")
                return self.receipt("deposit", index)
        key = bytes([1 if destroyed else 0]) + _object_key(vault, name, version)
        with self._read() as txn:
            raw = txn.get(key, db=self.deposits)
        if raw is None:
            what = "destruction" if destroyed else "deposit"
            raise NotFound(f"journal: no {what} of {vault}/{name} version {version}")
        return self.receipt("destroy" if destroyed else "deposit", int(_U64.unpack(raw)[0]))

    def first_read_index(self, vault: str, name: str, version: int) -> int | None:
        with self._read() as txn:
            raw = txn.get(_object_key(vault, name, version), db=self.first_read)
        return None if raw is None else int(_U64.unpack(raw)[0])

    def delivery_receipt(self, vault: str, name: str, version: int) -> bytes | None:
        """Evidence of the recipient's first read of this version, or None if it was not read yet."""
        index = self.first_read_index(vault, name, version)
        return None if index is None else self.receipt("delivery", index)

    def read(self, start: int = 0, *, vault: str | None = None, limit: int = 100,
             scan_limit: int = 10_000) -> tuple[list[tuple[int, Leaf]], int]:
        """Leaves from ``start`` (optionally only those of ``vault``), at most ``limit``; returns them and
        the index to continue from (the journal size when there is nothing more). At most
        ``scan_limit`` leaves are examined per call, so a sparse filter cannot make one call unbounded."""
        if start < 0 or limit <= 0:
            raise InvalidArgument("journal read: start >= 0 and limit > 0")
        out: list[tuple[int, Leaf]] = []
        nxt = start
        it = self.tree.leaves_from(start)
        try:
            nxt = self._scan(it, out, nxt, vault, limit, scan_limit)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        return out, nxt

    def _scan(self, it: Iterable[tuple[int, bytes]], out: list[tuple[int, Leaf]], nxt: int,
              vault: str | None, limit: int, scan_limit: int) -> int:
        scanned = 0
        for index, raw in it:
            nxt = index + 1
            scanned += 1
            leaf = Leaf.decode(raw)
            if vault is None or leaf.vault == vault:
                out.append((index, leaf))
                if len(out) >= limit:
                    break
            if scanned >= scan_limit:
                break
        else:
            nxt = max(nxt, self.tree.size())
        return nxt

    def audit(self) -> list[str]:
        """Full integrity check of the journal: every stored hash recomputed from the leaves, and the
        root at the last signed size compared with that checkpoint."""
        problems = self.tree.audit()
        head = self._head
        if head is not None:
            size = self.tree.size()
            if size < head.checkpoint.size:
                problems.append(f"journal rolled back: {size} leaves, signed size {head.checkpoint.size}")
            elif self.tree.root(head.checkpoint.size) != head.checkpoint.root:
                problems.append(f"journal root at the signed size {head.checkpoint.size} differs from the checkpoint")
        return problems


def stored_head(env: lmdb.Environment, txn: lmdb.Transaction) -> bytes | None:
    """The signed note stored in ``txn`` with the last batch signed before its commit (None: none
    yet, or a store from before this record), for a reader that only opens the environment
    (read-only, another process). Its tree size is the snapshot's when that batch was the last
    one committed; the caller compares."""
    raw = txn.get(_HEAD_KEY, db=env.open_db(None))  # the main database (see _HEAD_KEY)
    return None if raw is None else bytes(raw)


def _drop_old_head_db(env: lmdb.Environment, read: ReadTxnOpener) -> None:
    """Drop the named database that held the signed note before it moved to the main database."""
    with read() as txn:
        if txn.get(_OLD_HEAD_DB, db=env.open_db(None)) is None:
            return
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(_OLD_HEAD_DB, txn=txn, create=False), delete=True)
