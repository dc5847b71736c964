"""The signed checkpoint travels inside the store: the journal writes the note of each batch it signs
before the commit into that batch's transaction, so any snapshot (a backup's) holds the checkpoint of
exactly its own tree, and ``vaultctl backup`` needs no luck with the checkpoint file's timing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lmdb
import pytest

from vaultd.journal.hook import JournalHook
from vaultd.journal.journal import Journal, stored_head
from vaultd.journal.leaf import Leaf
from vaultd.journal.signer import Ed25519Signer
from vaultd.journal.tree import tree_size
from vaultd.store.backup import backup_data_dir, checkpoint_size, verify_backup
from vaultd.store.interface import Committed

NAME = "vaultd.test/stored-head"


def _leaf(i: int) -> bytes:
    return Leaf.make("deposit", vault="permits", name=f"doc-{i}", version=1,
                     sha256=hashlib.sha256(b"doc %d" % i).digest(), actor_kind="service",
                     actor_name="permits", time_ns=1000 + i).encode()


def _batch(env: lmdb.Environment, j: Journal, hook: JournalHook, leaves: range) -> None:
    with env.begin(write=True) as txn:
        units = [Committed(None, [_leaf(i)], [j.append(txn, _leaf(i))]) for i in leaves]
        hook.before_commit(txn, units)
    hook.after_commit(units)


def test_each_snapshot_holds_the_checkpoint_of_its_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "store").mkdir(parents=True)
    env = lmdb.open(str(data / "store"), max_dbs=16, map_size=1 << 26)
    j = Journal(env, Ed25519Signer.load_or_create(tmp_path / "journal.key", NAME), state_dir=data / "journal",
                background=False)
    hook = JournalHook()
    hook.bind(j)
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(0))
    j.sign_head()  # the first head is signed from storage, after its commit: nothing stored yet
    with env.begin() as txn:
        assert stored_head(env, txn) is None
    for k, leaves in enumerate((range(1, 4), range(4, 5), range(5, 9))):
        _batch(env, j, hook, leaves)
        with env.begin() as txn:
            note = stored_head(env, txn)
            assert note is not None and note == j.head().note == j.stored_note(txn)
            assert checkpoint_size(note) == tree_size(env, txn) == leaves[-1] + 1
    # a batch whose signing fails before the commit is signed after it, from storage: its snapshot
    # holds the previous note, which a backup must not take for its own
    monkeypatch.setattr(j, "sign_draft_with_receipts",
                        lambda draft, items: (_ for _ in ()).throw(RuntimeError("no signer")))
    _batch(env, j, hook, range(9, 11))
    with env.begin() as txn:
        assert checkpoint_size(stored_head(env, txn) or b"") == 9 != tree_size(env, txn) == 11
    monkeypatch.undo()
    _batch(env, j, hook, range(11, 12))
    env.close()

    # a backup from another process's point of view (the environment opened read-only), with no
    # checkpoint file at all: the snapshot's own note is the backup's checkpoint
    (data / "journal" / "checkpoint").unlink(missing_ok=True)
    r = backup_data_dir(data, tmp_path / "backup", tree_size=tree_size, stored_head=stored_head, timeout=2)
    assert r.tree_size == 12 and checkpoint_size(r.checkpoint) == 12
    verify_backup(tmp_path / "backup")
    # without the stored note, and without the file, nothing matches: the backup says so and leaves nothing
    with pytest.raises(Exception, match="no signed checkpoint matched"):
        backup_data_dir(data, tmp_path / "backup2", tree_size=tree_size, timeout=0.2)
    assert not (tmp_path / "backup2").exists()


def test_note_is_in_the_main_database_and_the_old_one_is_dropped(tmp_path: Path) -> None:
    """The note is a key of LMDB's main database (whose page every commit writes anyway); the named
    database that held it in stores written before is dropped when the journal opens."""
    env = lmdb.open(str(tmp_path / "store"), max_dbs=16, map_size=1 << 26)
    old = env.open_db(b"journal.head")
    with env.begin(write=True) as txn:
        txn.put(b"signed", b"a note of an earlier layout", db=old)
    j = Journal(env, Ed25519Signer.load_or_create(tmp_path / "k.pem", NAME), state_dir=tmp_path / "state")
    hook = JournalHook()
    hook.bind(j)
    with env.begin() as txn:
        assert txn.get(b"journal.head") is None  # the named database is gone
        assert stored_head(env, txn) is None
    j.sign_head()
    _batch(env, j, hook, range(3))
    with env.begin() as txn:
        note = stored_head(env, txn)
        assert note is not None and note == j.head().note and checkpoint_size(note) == tree_size(env, txn) == 3
        with pytest.raises(lmdb.Error):  # a key of the main database, never a database name
            env.open_db(b"journal.signed-head", txn=txn, create=False)
    j.close()
    env.close()
