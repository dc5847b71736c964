"""The journal wired into the real core and store: every deposit and destroy commits with its leaf,
one checkpoint is signed per group commit, and the receipts verify offline."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vaultd.core.policy import Policy
from vaultd.core.vaults import Vaults, open_vaults
from vaultd.journal.hook import JournalHook, leaf_factory, open_journal
from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import verify_receipt
from vaultd.keys.file import FileKeyProvider
from vaultd.types import DepositHeader, Identity

SVC = Identity("service", "permits")
POLICY = {"rule": [{"identity": "service:permits", "vaults": ["permits"],
                    "verbs": ["create", "deposit", "read", "stat", "destroy", "journal"]}]}


@contextmanager
def _journalled(tmp_path: Path, *, deposit_index: bool = False) -> Iterator[tuple[Vaults, Journal]]:
    """Vaults with a journal bound to its writer, in ``tmp_path``; with ``deposit_index`` the
    journal finds deposit leaves through the version records, as ``vaultd serve`` wires it."""
    hook = JournalHook()
    vaults = open_vaults(tmp_path, policy=Policy.from_dict(POLICY), key_provider=FileKeyProvider(tmp_path / "keys"),
                         map_size=1 << 26, leaf_factory=leaf_factory, journal=hook, after_commit=hook.after_commit)
    try:
        journal = open_journal(vaults.store.env, tmp_path / "journal", name="vaultd.test/journal")
        if deposit_index:
            journal.deposit_index = vaults.deposit_leaf_index
        hook.bind(journal)
        yield vaults, journal
    finally:
        vaults.close()


def test_deposits_and_destroy_carry_verifiable_evidence(tmp_path: Path) -> None:
    with _journalled(tmp_path) as (vaults, journal):
        vkey = journal.verifier.vkey()
        vaults.create_vault(SVC, "permits")
        docs = {f"doc-{i}": b"permit number %d " % i * (i + 1) for i in range(12)}
        receipts = {}

        def put(name: str) -> None:
            receipts[name] = vaults.deposit(SVC, DepositHeader("permits", name), [docs[name]])

        threads = [threading.Thread(target=put, args=(n,)) for n in docs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(receipts) == len(docs)
        for name, r in receipts.items():
            assert r.evidence is not None
            res = verify_receipt(r.evidence, docs[name], vkey)
            assert res.ok, res.report()
            assert res.leaf is not None and res.leaf.name == name and res.leaf.version == r.stat.version
            assert res.leaf.sha256 == hashlib.sha256(docs[name]).digest() == r.stat.sha256
        gone = vaults.destroy(SVC, "permits", "doc-3")
        assert gone.evidence is not None
        res = verify_receipt(gone.evidence, None, vkey)
        assert res.ok, res.report()
        assert res.leaf is not None and res.leaf.operation == "destroy" and res.leaf.name == "doc-3"
        # the journal holds exactly: create_vault, 12 deposits, 1 destroy; audit clean
        entries, _ = journal.read(0, limit=100)
        ops = [leaf.operation for _, leaf in entries]
        assert ops[0] == "create_vault" and ops.count("deposit") == 12 and ops[-1] == "destroy"
        assert journal.audit() == []
        assert journal.head().checkpoint.size == len(ops)
        assert isinstance(Leaf.decode(journal.tree.leaf(0)), Leaf)


def test_the_version_record_points_to_its_deposit_leaf(tmp_path: Path) -> None:
    """Wired as vaultd serve wires it (journal.deposit_index = vaults.deposit_leaf_index), each
    version's record keeps the index of its deposit leaf, the journal writes no second index of it,
    GetReceipt's path finds the evidence through it, and a record pointing to another leaf is refused."""
    import json

    import pytest

    from vaultd.errors import IntegrityError
    from vaultd.journal.journal import _object_key

    with _journalled(tmp_path, deposit_index=True) as (vaults, journal):
        vaults.create_vault(SVC, "permits")
        r1 = vaults.deposit(SVC, DepositHeader("permits", "a"), [b"first"])
        r2 = vaults.deposit(SVC, DepositHeader("permits", "b"), [b"second"])
        index = vaults.deposit_leaf_index("permits", "a", 1)
        assert index is not None and Leaf.decode(journal.tree.leaf(index)).name == "a"
        with vaults.store.env.begin() as txn:  # no entry in the journal's own index for deposits
            assert txn.get(b"\x00" + _object_key("permits", "a", 1), db=journal.deposits) is None
        res = verify_receipt(journal.object_receipt("permits", "a", 1), b"first", journal.verifier.vkey())
        assert res.ok and res.leaf is not None and res.leaf.name == "a", res.report()
        assert r1.evidence is not None and r2.evidence is not None
        # a record made to point to another deposit's leaf: the evidence is refused, not handed out
        other = vaults.deposit_leaf_index("permits", "b", 1)

        def repoint(t) -> None:  # type: ignore[no-untyped-def]
            rec = json.loads(t.get_version("permits", "a", 1))
            rec["journal_index"] = other
            t.put_version("permits", "a", 1, json.dumps(rec).encode(), t.get_manifest("permits", "a", 1))

        vaults.store.write(repoint)
        with pytest.raises(IntegrityError, match="not the deposit of permits/a version 1"):
            journal.object_receipt("permits", "a", 1)


def test_a_refused_deposit_commits_with_an_event_receipt(tmp_path: Path) -> None:
    """The evidence a commit hands back for a deposit leaf whose outcome is not "ok" is an event
    receipt: it proves the attempt is journaled, never that a deposit was made."""
    import json

    with _journalled(tmp_path) as (vaults, journal):
        leaf = leaf_factory("deposit", actor=SVC, vault="permits", name="x", outcome="denied")
        committed = vaults.store.write(lambda t: t.journal(leaf))
        assert json.loads(committed.evidence)["kind"] == "event"
        res = verify_receipt(committed.evidence, None, journal.verifier.vkey())
        assert res.ok, res.report()
        vaults.create_vault(SVC, "permits")
        done = vaults.deposit(SVC, DepositHeader("permits", "y"), [b"y"])
        assert json.loads(done.evidence)["kind"] == "deposit"
