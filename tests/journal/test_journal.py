"""The journal facade on a real LMDB environment: append in the caller's transaction, one signed
checkpoint per commit, refusal to sign an inconsistent head, receipts, delivery proof, reading."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lmdb
import pytest

from vaultd.errors import IntegrityError
from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import verify_receipt
from vaultd.journal.signer import Ed25519Signer

from stored_tree import put_hash
NAME = "vaultd.test/journal"


def _leaf(i: int, op: str = "deposit", vault: str = "permits", actor: str = "service") -> Leaf:
    return Leaf.make(op, vault=vault, name=f"doc-{i}", version=1, sha256=hashlib.sha256(b"doc %d" % i).digest(),
                     actor_kind=actor, actor_name="permits" if actor == "service" else "alice", time_ns=1000 + i)


def _open(tmp: Path) -> tuple[lmdb.Environment, Journal]:
    env = lmdb.open(str(tmp / "db"), max_dbs=16, map_size=1 << 26)
    signer = Ed25519Signer.load_or_create(tmp / "journal.key", NAME)
    return env, Journal(env, signer, state_dir=tmp / "state")


def test_append_sign_receipt(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    indexes = []
    for batch in range(3):
        with env.begin(write=True) as txn:
            indexes += [j.append(txn, _leaf(batch * 10 + k)) for k in range(batch + 1)]
        head = j.sign_head()
        assert head.checkpoint.size == len(indexes)
    assert indexes == list(range(6))
    assert j.sign_head() is j.head()  # no growth, no new signature
    rec = j.receipt("deposit", 4)
    res = verify_receipt(rec, b"doc 21", j.verifier.vkey())
    assert res.ok, res.report()
    bad = verify_receipt(rec, b"doc 22", j.verifier.vkey())
    assert not bad.ok and bad.failed == "document-sha256"
    env.close()


def test_aborted_transaction_leaves_no_leaf(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(0))
    with pytest.raises(RuntimeError):
        with env.begin(write=True) as txn:
            j.append(txn, _leaf(1))
            raise RuntimeError("the change failed")
    assert j.tree.size() == 1
    env.close()


def test_refuses_to_sign_inconsistent_head(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        for i in range(5):
            j.append(txn, _leaf(i))
    j.sign_head()
    # Rewrite history: replace the stored hash of the subtree of leaves 0..3, then append.
    with env.begin(write=True) as txn:
        put_hash(txn, j.tree, 2, 0, b"\x11" * 32)
        j.append(txn, _leaf(9))
    with pytest.raises(IntegrityError, match="not consistent with the signed checkpoint of size 5"):
        j.sign_head()
    env.close()


def test_rollback_to_earlier_copy_is_refused(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        for i in range(3):
            j.append(txn, _leaf(i))
    j.sign_head()
    (tmp_path / "old-copy").mkdir()
    env.copy(str(tmp_path / "old-copy"))
    with env.begin(write=True) as txn:
        for i in range(3, 7):
            j.append(txn, _leaf(i))
    j.sign_head()
    j.close()  # the last checkpoint is in the state file
    env.close()
    old = lmdb.open(str(tmp_path / "old-copy"), max_dbs=16, map_size=1 << 26)
    signer = Ed25519Signer.load_or_create(tmp_path / "journal.key", NAME)
    with pytest.raises(IntegrityError, match="journal rolled back: it holds 3 leaves but a checkpoint of size 7"):
        Journal(old, signer, state_dir=tmp_path / "state")
    old.close()


def test_delivery_proof_first_read_only(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(0, vault="citizen-alice"))
    assert j.delivery_receipt("citizen-alice", "doc-0", 1) is None
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(0, op="read", vault="citizen-alice", actor="service"))  # not the recipient
    assert j.delivery_receipt("citizen-alice", "doc-0", 1) is None
    with env.begin(write=True) as txn:
        first = j.append(txn, _leaf(0, op="read", vault="citizen-alice", actor="citizen"))
        j.append(txn, _leaf(0, op="read", vault="citizen-alice", actor="citizen"))
    rec = j.delivery_receipt("citizen-alice", "doc-0", 1)
    assert rec is not None
    res = verify_receipt(rec, None, j.verifier.vkey())
    assert res.ok, res.report()
    assert res.leaf is not None and res.leaf.operation == "read" and j.first_read_index("citizen-alice", "doc-0", 1) == first
    env.close()


def test_read_journal_filter_and_pages(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        for i in range(30):
            j.append(txn, _leaf(i, vault="a" if i % 3 else "b"))
    got, nxt = j.read(0, vault="b", limit=4)
    assert [i for i, _ in got] == [0, 3, 6, 9] and nxt == 10
    got, nxt = j.read(nxt, vault="b", limit=100)
    assert [i for i, _ in got] == [12, 15, 18, 21, 24, 27] and nxt == 30
    got, nxt = j.read(0, limit=100, scan_limit=7)
    assert len(got) == 7 and nxt == 7
    env.close()
