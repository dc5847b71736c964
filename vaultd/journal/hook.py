"""How the journal plugs into the store's single writer.

The composition root creates a :class:`JournalHook` before the store exists, passes ``hook`` as the
store's ``journal`` (its ``append(txn, leaf)`` runs in the writer's transaction) and
``hook.after_commit`` as the writer's after-commit callback, and ``leaf_factory`` to the core; once the
store's LMDB environment is open it binds the :class:`~vaultd.journal.journal.Journal` to the hook::

    hook = JournalHook()
    vaults = open_vaults(data_dir, ..., leaf_factory=leaf_factory, journal=hook,
                         after_commit=hook.after_commit)
    hook.bind(open_journal(vaults.store.env, data_dir / "journal"))

After each group commit ``after_commit`` signs one checkpoint for the whole batch (refusing one that is
not consistent with the last) and attaches to every unit that journaled a leaf its evidence: the
receipt of its last leaf (a deposit or destroy receipt; "event" for the others).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

from vaultd.errors import FailedPrecondition, Unavailable
from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf
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

    def bind(self, journal: Journal) -> None:
        self._journal = journal
        self._bound.set()

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise Unavailable("the journal is not open yet")
        return self._journal

    def append(self, txn: Any, leaf: bytes) -> int:
        """In the writer's transaction: no journal, no change (the unit fails and nothing is kept)."""
        return self.journal.append(getattr(txn, "raw", txn), leaf)

    def after_commit(self, batch: list[Any]) -> None:
        journal = self._journal
        if journal is None:
            return
        units = [c for c in batch if c.leaf_indexes]
        if not units:
            return
        head = journal.sign_head()
        items = []
        for c in units:
            leaf = bytes(c.leaves[-1])
            items.append((RECEIPT_KIND.get(_operation(leaf), "event"), c.leaf_indexes[-1], leaf))
        for c, evidence in zip(units, journal.batch_receipts(head, items)):
            c.evidence = evidence


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
) -> Journal:
    """Open the journal in ``env``. Its name (the checkpoint origin and signing key name) is kept in
    ``state_dir/origin``: ``name`` on first run, else ``vaultd/<host name>``. The signing key is
    ``signer`` if given; else, with ``pkcs11 = (module, token label, PIN)``, an ECDSA P-256 key on that
    token (made there on first run); else an Ed25519 key file ``state_dir/journal.key`` (mode 0600,
    made on first run)."""
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
    return Journal(env, signer, origin=name, state_dir=state, fsync=fsync)
