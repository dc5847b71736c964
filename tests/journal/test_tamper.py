"""Tampering with the journal directly in LMDB is detected, with a message naming what broke."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lmdb
import pytest

from vaultd.errors import IntegrityError, NotFound
from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import encode_consistency_proof, verify_consistency, verify_receipt
from vaultd.journal.signer import Ed25519Signer

from stored_tree import delete_record, put_hash, put_leaf

NAME = "vaultd.test/journal"


def _build(tmp: Path, n: int = 13) -> tuple[lmdb.Environment, Journal]:
    env = lmdb.open(str(tmp / "db"), max_dbs=16, map_size=1 << 26)
    j = Journal(env, Ed25519Signer.load_or_create(tmp / "k.pem", NAME), state_dir=tmp / "state")
    with env.begin(write=True) as txn:
        for i in range(n):
            j.append(txn, Leaf.make("deposit", vault="v", name=f"o{i}", version=1,
                                    sha256=hashlib.sha256(b"%d" % i).digest(), actor_kind="service",
                                    actor_name="permits", time_ns=i))
    j.sign_head()
    return env, j


def test_changed_leaf(tmp_path: Path) -> None:
    env, j = _build(tmp_path)
    good = j.receipt("deposit", 5)
    forged = Leaf.make("deposit", vault="v", name="o5", version=1, sha256=hashlib.sha256(b"forged").digest(),
                       actor_kind="service", actor_name="permits", time_ns=5)
    with env.begin(write=True) as txn:
        put_leaf(txn, j.tree, 5, forged.encode())
    with pytest.raises(IntegrityError, match="leaf 5 or the stored hashes on its path were altered"):
        j.receipt("deposit", 5)
    assert j.audit() == ["journal leaf 5: stored leaf does not match its stored leaf hash"]
    assert verify_receipt(good, b"5", j.verifier.vkey()).ok  # evidence already handed out stays valid
    env.close()


def test_changed_node_hash(tmp_path: Path) -> None:
    env, j = _build(tmp_path)
    with env.begin(write=True) as txn:
        put_hash(txn, j.tree, 1, 1, b"\x00" * 32)  # subtree of leaves 2..3
    with pytest.raises(IntegrityError, match="leaf 0 or the stored hashes on its path were altered"):
        j.receipt("deposit", 0)
    assert "journal node (level 1, index 1) does not match the hash of its children" in j.audit()
    env.close()


def test_changed_root_side_node_refuses_signing(tmp_path: Path) -> None:
    env, j = _build(tmp_path)
    with env.begin(write=True) as txn:
        put_hash(txn, j.tree, 3, 0, b"\x00" * 32)  # leaves 0..7, on every later root
        j.append(txn, Leaf.make("read", vault="v", name="o1", version=1, actor_kind="service",
                                actor_name="permits", time_ns=99))
    with pytest.raises(IntegrityError, match="not consistent with the signed checkpoint of size 13"):
        j.sign_head()
    assert any("journal root at the signed size 13 differs" in p for p in j.audit())
    env.close()


def test_missing_node_is_named(tmp_path: Path) -> None:
    env, j = _build(tmp_path)
    with env.begin(write=True) as txn:
        delete_record(txn, j.tree, 11)  # leaf 11, with the hash of leaves 8..11
    with pytest.raises(IntegrityError, match=r"stored node hash missing \(level 2, index 2\)"):
        j.receipt("deposit", 12)
    env.close()


def test_rolled_back_journal_fails_consistency_with_held_checkpoint(tmp_path: Path) -> None:
    env, j = _build(tmp_path, 6)
    (tmp_path / "copy").mkdir()
    env.copy(str(tmp_path / "copy"))
    with env.begin(write=True) as txn:
        for i in range(4):
            j.append(txn, Leaf.make("read", vault="v", name="o1", version=1, actor_kind="service",
                                    actor_name="permits", time_ns=100 + i))
    held = j.sign_head().note  # an auditor holds this checkpoint of size 10
    j.close()
    env.close()
    # The operator restores the older copy and discards the checkpoint file: the daemon cannot know ...
    (tmp_path / "state" / "checkpoint").unlink()
    old_env = lmdb.open(str(tmp_path / "copy"), max_dbs=16, map_size=1 << 26)
    old = Journal(old_env, Ed25519Signer.load_or_create(tmp_path / "k.pem", NAME), state_dir=tmp_path / "state")
    # ... but it cannot prove consistency with what the auditor holds, and a rewritten history is caught.
    with pytest.raises(NotFound, match="larger than the journal"):
        old.consistency(10, 10)
    with old_env.begin(write=True) as txn:
        for i in range(4):
            old.append(txn, Leaf.make("read", vault="v", name="o2", version=1, actor_kind="service",
                                      actor_name="permits", time_ns=200 + i))
    rewritten = old.sign_head().note
    res = verify_consistency(held, rewritten, encode_consistency_proof(10, 10, []), old.verifier.vkey())
    assert not res.ok and res.failed == "consistency-proof" and "two different roots" in res.checks[-1][2]
    old_env.close()
