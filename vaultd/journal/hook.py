"""How the journal plugs into the store's single writer.

The composition root creates a :class:`JournalHook` before the store exists, passes ``hook`` as the
store's ``journal`` (its ``begin(txn)`` opens the batch's :class:`~vaultd.journal.journal.AppendBatch`,
through which the units' leaves are appended in the writer's transaction) and ``hook.after_commit`` as
the writer's after-commit callback, and ``leaf_factory`` to the core; once the store's LMDB
environment is open it binds the :class:`~vaultd.journal.journal.Journal` to the hook::

    hook = JournalHook()
    vaults = open_vaults(data_dir, ..., leaf_factory=leaf_factory, journal=hook,
                         after_commit=hook.after_commit)
    hook.bind(open_journal(vaults.store.env, data_dir / "journal", read=vaults.store.raw_read))

Each group commit gets one signed checkpoint for the whole batch (refusing one that is not consistent
with the last), and every unit that journaled a leaf gets its evidence: the receipt of its last leaf
(a deposit or destroy receipt; "event" for the others).

The signing and the receipts are computed before the commit: ``before_commit``, called by the writer
in the batch's transaction just before it commits, drafts the head from the batch's AppendBatch (the
hashes its appends wrote), checks it, signs it and makes the receipts from memory, in one call to the
Rust core for a key the core holds, and puts the signed note in the transaction. ``after_commit``,
once the commit is durable, makes that head current and attaches the receipts; what it returns (the
note handed to the checkpoint file, the metrics) the writer runs after the acknowledgements. A draft
whose commit fails is never installed. Where a draft cannot be made or fails its check,
``after_commit`` signs from storage (and refuses an inconsistent tree, naming what differs).

This work ran on a thread of its own, beside the commit's fsync, while it was Python that held the
GIL. Its hashing, checks and signature became calls to the Rust core, and the thread no longer paid
for itself: with it and without it, alternated, the daemon's deposits/s and CPU per deposit at 1, 16
and 64 clients differed by less than this machine's drift (in both directions, 2-8%;
benchmarks/results/peers-profile.md). Without it there is one thread, two queues and two hand-offs
per commit less. The writer's calls into the core keep the GIL (see ``WRITER_GIL_ITEMS`` in the core's
``python.rs``): letting it go for so little work made the writer wait to take it back.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaultd.errors import FailedPrecondition, Unavailable
from vaultd.journal.journal import AppendBatch, HeadDraft, Journal, SignedHead
from vaultd.journal.tree import Extension, ReadTxnOpener
from vaultd.journal.leaf import EncodedLeaf, Leaf, Outcome
from vaultd.journal.signer import Ed25519Signer, NoteSigner, Pkcs11EcdsaSigner

__all__ = ["JournalHook", "leaf_factory", "open_journal", "RECEIPT_KIND"]

log = logging.getLogger("vaultd.journal")

RECEIPT_KIND = {"deposit": "deposit", "destroy": "destroy", "read": "event"}


def leaf_factory(
    operation: str,
    *,
    actor: Any = None,
    vault: str = "",
    name: str = "",
    version: int | None = 0,
    sha256: bytes | None = None,
    outcome: str = "ok",
    time_ns: int | None = None,
    **extra: Any,
) -> bytes:
    """The canonical leaf bytes for one operation (the core's ``leaf_factory``). Extra keyword
    arguments (``size``, ``requester``, ``signature_sha256`` ...) go into the leaf's extra fields."""
    fields = {k: (v if isinstance(v, (bytes, str)) else str(v)) for k, v in extra.items() if v is not None}
    return Leaf.make_encoded(
        operation, vault=vault, name=name, version=version or 0, sha256=sha256, actor=actor,
        time_ns=time.time_ns() if time_ns is None else time_ns, outcome=outcome, extra=fields,
    )


class JournalHook:
    """The two hook points of the store writer, bound to a Journal once the store is open."""

    def __init__(self) -> None:
        self._journal: Journal | None = None
        self._bound = threading.Event()
        # The batch being committed: its units, its draft, their receipt items, and the draft signed
        # with its receipts (None: the draft's check failed) or the exception that signing raised.
        self._draft: tuple[list[Any], HeadDraft, list[tuple[str, int, bytes]], _Signed | Exception | None] | None = None
        self._batch: AppendBatch | None = None  # the appends of the batch being built (begin)

    def bind(self, journal: Journal) -> None:
        self._journal = journal
        self._bound.set()

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise Unavailable("the journal is not open yet")
        return self._journal

    def begin(self, txn: Any) -> AppendBatch | _NotOpen:
        """The writer's batch transaction begins: the journal appends of its units go through the
        batch returned (see :class:`~vaultd.journal.journal.AppendBatch`), closed by the writer.
        Before the journal is bound, a unit that journals a leaf fails (no journal, no change)."""
        journal = self._journal
        if journal is None:
            self._batch = None
            return _NOT_OPEN
        self._batch = journal.begin_batch(getattr(txn, "raw", txn))
        return self._batch

    def before_commit(self, txn: Any, batch: list[Any]) -> None:
        """In the batch's write transaction, just before the commit: sign its head and make its
        receipts (see the module documentation)."""
        self._draft = None
        appends, self._batch = self._batch, None
        journal = self._journal
        units = [c for c in batch if c.leaf_indexes]
        if journal is None or not units:
            return
        draft = journal.draft_head(getattr(txn, "raw", txn), appends)
        if draft is None:
            return
        items = _receipt_items(units)
        signed: _Signed | Exception | None
        try:
            signed = _sign_and_prove(journal, draft, items)
        except Exception as e:  # after_commit logs it and signs from storage
            signed = e
        self._draft = (units, draft, items, signed)
        if isinstance(signed, _Signed):
            # The note goes into the batch's own transaction: any snapshot holds its checkpoint. It
            # is a key of the main database, whose page the commit writes anyway: a full map here
            # (lmdb.MapFullError) is the one the commit would meet, and fails the batch as such.
            journal.record_head(getattr(txn, "raw", txn), signed.head)

    def after_commit(self, batch: list[Any]) -> Callable[[], None] | None:
        """Once the batch is durable: its signed head made current and each unit's evidence attached.
        Returns the rest (see :meth:`Journal.install_head_first`), which the writer runs once it has
        acknowledged the batch's units."""
        journal = self._journal
        drafted, self._draft = self._draft, None
        if journal is None:
            return None
        units = [c for c in batch if c.leaf_indexes]
        if not units:
            return None
        later = None
        signed = None
        items: list[tuple[str, int, bytes]] | None = None
        if drafted is not None:
            if isinstance(drafted[3], Exception):
                log.error("signing the journal head before the commit failed; signing from storage",
                          exc_info=drafted[3])
            else:
                signed = drafted[3]
            if len(drafted[0]) != len(units) or any(a is not b for a, b in zip(drafted[0], units)):
                signed = None  # not this batch's draft
            else:
                items = drafted[2]
        if items is None:
            items = _receipt_items(units)
        if signed is not None:
            assert drafted is not None
            head, later = journal.install_head_first(drafted[1], signed.head, signed.ext)
            receipts = signed.receipts
            if head is not signed.head:  # the same tree signed by another caller meanwhile
                receipts = journal.batch_receipts(head, items)
        else:
            head = journal.sign_head()
            receipts = journal.batch_receipts(head, items)
        for c, evidence, item in zip(units, receipts, items):
            # a receipt the draft could not make from memory is made from storage, now durable
            c.evidence = evidence if evidence is not None else _receipt_or_none(journal, head, item)
        return later


class _NotOpen:
    """The appends of a batch begun before the journal was bound: every one is refused."""

    def append(self, txn: Any, leaf: bytes) -> int:
        raise Unavailable("the journal is not open yet")

    def savepoint(self) -> None:
        return None

    def rollback(self, savepoint: None) -> None:
        pass

    def close(self, committed: bool) -> None:
        pass


_NOT_OPEN = _NotOpen()


class _Signed:
    __slots__ = ("head", "ext", "receipts")

    def __init__(self, head: SignedHead, ext: Extension, receipts: list[bytes | None]) -> None:
        self.head, self.ext, self.receipts = head, ext, receipts


def _sign_and_prove(journal: Journal, draft: HeadDraft, items: list[tuple[str, int, bytes]]) -> _Signed | None:
    """Before the commit, no storage read: the draft's signed head and its receipts (None: the draft's
    check failed)."""
    signed = journal.sign_draft_with_receipts(draft, items)
    return None if signed is None else _Signed(*signed)


def _receipt_items(units: list[Any]) -> list[tuple[str, int, bytes]]:
    items = []
    for c in units:
        leaf = bytes(c.leaves[-1])
        kind = RECEIPT_KIND.get(_operation(leaf), "event")
        if kind != "event" and _outcome(c.leaves[-1]) != Outcome.OK:
            kind = "event"  # a refused or failed deposit or destroy: evidence of the attempt only
        items.append((kind, c.leaf_indexes[-1], leaf))
    return items


def _receipt_or_none(journal: Journal, head: SignedHead, item: tuple[str, int, bytes]) -> bytes | None:
    kind, index, _ = item
    try:
        return journal.receipt(kind, index, head)
    except Exception:  # the change is durable; its evidence can be fetched again later
        log.exception("journal evidence for leaf %d failed", index)
        return None


def _outcome(leaf: bytes) -> str:
    """The outcome of a leaf, without decoding it again when it is an EncodedLeaf."""
    return leaf.outcome if isinstance(leaf, EncodedLeaf) else Leaf.decode(bytes(leaf)).outcome


def _operation(leaf: bytes) -> str:
    """The operation token of canonical leaf bytes (byte 1 is its length), without decoding the rest:
    the leaf was validated when it was made and when it was appended."""
    return leaf[2:2 + leaf[1]].decode("ascii", "replace") if len(leaf) > 2 else ""


def open_journal(
    env: Any,
    state_dir: Path | str,
    *,
    name: str | None = None,
    signer: NoteSigner | None = None,
    pkcs11: tuple[str, str, str] | None = None,
    fsync: bool = True,
    read: ReadTxnOpener | None = None,
) -> Journal:
    """Open the journal in ``env``. Its name (the checkpoint origin and signing key name) is kept in
    ``state_dir/origin``: ``name`` on first run, else ``vaultd/<host name>``. The signing key is
    ``signer`` if given; else, with ``pkcs11 = (module, token label, PIN)``, an ECDSA P-256 key on that
    token (made there on first run); else an Ed25519 key file ``state_dir/journal.key`` (mode 0600,
    made on first run). ``read`` opens the journal's read transactions: the store's ``raw_read`` when
    ``env`` is a running store's (growing the map must wait for them), ``env.begin`` by default."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    origin_file = state / "origin"
    if origin_file.exists():
        stored = origin_file.read_text().strip()
        if name is not None and name != stored:
            raise FailedPrecondition(f"this journal is named {stored!r}, not {name!r}")
        name = stored
    else:
        name = name or f"vaultd/{socket.gethostname() or 'localhost'}"
        origin_file.write_text(name + "\n")
    if signer is None:
        if pkcs11 is not None:
            module, token, pin = pkcs11
            signer = Pkcs11EcdsaSigner(name, module=module, token_label=token, pin=pin)
        else:
            signer = Ed25519Signer.load_or_create(state / "journal.key", name)
    return Journal(env, signer, origin=name, state_dir=state, fsync=fsync, read=read)
