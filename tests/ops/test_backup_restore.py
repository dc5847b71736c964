"""Backup while deposits run, restore into a fresh folder, then every object read back and every
receipt verified against the restored journal and the checkpoint the backup printed.

Real daemon (mTLS, LMDB, journal signing each group commit), real clients in threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from servers import RunningServer, new_vault_id, start_server
from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument, NotFound
from vaultd.journal.receipt import verify_consistency, verify_receipt
from vaultd.store.backup import (
    CHECKPOINT_FILE,
    MANIFEST,
    STORE_FILE,
    backup,
    checkpoint_size,
    journal_head_for,
    read_manifest,
    restore,
)

# keys kept apart from backups (escrow), handed to restore separately
SECRETS = ("keyring.json", "journal/journal.key", "session.key")


def take_backup(srv: RunningServer, dest: Path):  # noqa: ANN201
    return backup(srv.daemon.vaults.store, dest, head_for=journal_head_for(srv.daemon.journal),
                  copy_files={"journal/origin": srv.data_dir / "journal" / "origin"})


def test_backup_under_load_then_restore(tmp_path: Path) -> None:
    src = start_server(tmp_path / "a")
    try:
        client = src.client("permits")
        vault = new_vault_id()
        client.create_vault(vault)
        docs: dict[str, bytes] = {}
        receipts: dict[str, bytes] = {}
        for i in range(12):
            data = os.urandom(2000 + i * 7919) + b"shared tail" * 500
            receipt = client.deposit(vault, f"before-{i}", data)
            docs[f"before-{i}"], receipts[f"before-{i}"] = data, receipt.evidence or b""
        assert all(receipts.values())

        # deposits keep running in two threads while the backup is taken
        stop = threading.Event()
        during: list[str] = []
        errors: list[BaseException] = []

        def load(worker: int) -> None:
            c = src.client("permits")
            n = 0
            try:
                while not stop.is_set():
                    c.deposit(vault, f"during-{worker}-{n}", os.urandom(20_000))
                    during.append(f"during-{worker}-{n}")
                    n += 1
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        while len(during) < 4:
            threading.Event().wait(0.01)
        result = take_backup(src, tmp_path / "backup")
        acknowledged_during = len(during)
        stop.set()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert acknowledged_during >= 4
        after = client.deposit(vault, "after-backup", b"not in the backup")
        assert after.stat.version == 1
        public_key = src.daemon.journal.verifier
    finally:
        src.stop()

    # the backup: a manifest, a compacted store, the checkpoint it printed, no key material
    m = read_manifest(result.path)
    assert set(m["files"]) == {STORE_FILE, CHECKPOINT_FILE, "journal/origin"}
    assert (result.path / CHECKPOINT_FILE).read_bytes() == result.checkpoint
    assert result.tree_size == m["tree_size"] > 12
    names = {p.name for p in result.path.rglob("*")}
    assert not names & {"keyring.json", "journal.key", "session.key", "lock.mdb"}
    assert json.loads((result.path / MANIFEST).read_text())["format"] == "vaultd-backup/1"
    assert f"\n{result.tree_size}\n".encode() in result.checkpoint

    # restore into a fresh data folder, with the keys from escrow, checked against the checkpoint
    fresh = tmp_path / "b"
    restored = restore(result.path, fresh, expected_checkpoint=result.checkpoint,
                       secret_files={s: tmp_path / "a" / s for s in SECRETS})
    assert restored.tree_size == result.tree_size
    assert oct((fresh / "keyring.json").stat().st_mode & 0o777) == "0o600"

    dst = start_server(fresh)  # opening the journal checks its tree against the checkpoint
    try:
        # the restored journal starts from the backup's checkpoint (it may extend it at once:
        # deposits in flight at the snapshot are rolled back, and that is journaled)
        head = dst.daemon.journal.head()
        assert head.checkpoint.size >= result.tree_size
        grown = verify_consistency(result.checkpoint, head.note, dst.daemon.journal.consistency(
            result.tree_size, head.checkpoint.size), public_key)
        assert grown.ok, grown.report()
        c = dst.client("permits")
        for name, data in docs.items():
            assert c.read_bytes(vault, name) == data, name
            ok = verify_receipt(receipts[name], data, public_key)
            assert ok.ok, ok.report()
            # the receipt's checkpoint is extended by the backup's checkpoint (same history)
            old = json.loads(receipts[name])["checkpoint"].encode()
            old_size = int(old.split(b"\n")[1])
            proof = dst.daemon.journal.consistency(old_size, result.tree_size)
            cons = verify_consistency(old, result.checkpoint, proof, public_key)
            assert cons.ok, cons.report()
        # everything acknowledged before the backup started is there, the later deposit is not
        present = {o.name for o in c.list(vault)}
        assert set(docs) <= present
        assert "after-backup" not in present
        with pytest.raises(NotFound):
            c.stat(vault, "after-backup")
        # the restored daemon goes on: new deposits extend the restored journal
        r = c.deposit(vault, "after-restore", b"new life")
        assert verify_receipt(r.evidence or b"", b"new life", public_key).ok
        assert dst.daemon.journal.head().checkpoint.size > result.tree_size
    finally:
        dst.stop()


def test_restore_refuses_tampering_and_non_empty_folders(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a")
    try:
        c = srv.client("permits")
        vault = new_vault_id()
        c.create_vault(vault)
        c.deposit(vault, "doc", b"x" * 5000)
        result = take_backup(srv, tmp_path / "backup")
        with pytest.raises(FailedPrecondition):  # a destination in use
            take_backup(srv, tmp_path / "backup")
        with pytest.raises(InvalidArgument):  # never key material
            backup(srv.daemon.vaults.store, tmp_path / "b2", head_for=journal_head_for(srv.daemon.journal),
                   copy_files={"keyring.json": tmp_path / "a" / "keyring.json"})
        assert not (tmp_path / "b2").exists()
    finally:
        srv.stop()

    with pytest.raises(IntegrityError):  # not the checkpoint the operator wrote down
        restore(result.path, tmp_path / "r1", expected_checkpoint=result.checkpoint + b"x")
    # a data folder in use
    (tmp_path / "r2" / "store").mkdir(parents=True)
    (tmp_path / "r2" / "store" / "data.mdb").write_bytes(b"live data")
    with pytest.raises(FailedPrecondition):
        restore(result.path, tmp_path / "r2")
    assert (tmp_path / "r2" / "store" / "data.mdb").read_bytes() == b"live data"
    # one flipped byte in the store copy
    store = result.path / STORE_FILE
    raw = bytearray(store.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    store.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        restore(result.path, tmp_path / "r3")
    assert not (tmp_path / "r3" / STORE_FILE).exists()
    # the manifest's digest is what was checked
    assert hashlib.sha256(bytes(raw)).hexdigest() != read_manifest(result.path)["files"][STORE_FILE]["sha256"]


BACKUP_PROCESS = """
import sys
from vaultd.journal.tree import tree_size
from vaultd.store.backup import backup_data_dir

r = backup_data_dir(sys.argv[1], sys.argv[2], tree_size=tree_size)
sys.stdout.buffer.write(r.checkpoint)
"""


def test_backup_from_another_process_while_serving(tmp_path: Path) -> None:
    """What ``vaultctl backup`` does on the daemon's host: a separate process, the daemon busy."""
    import subprocess
    import sys

    src = start_server(tmp_path / "a")
    try:
        client = src.client("permits")
        vault = new_vault_id()
        client.create_vault(vault)
        docs = {f"d{i}": os.urandom(30_000 + i) for i in range(6)}
        for name, data in docs.items():
            client.deposit(vault, name, data)
        stop = threading.Event()

        def load() -> None:
            c = src.client("permits")
            n = 0
            while not stop.is_set():
                c.deposit(vault, f"load-{n}", os.urandom(10_000))
                n += 1

        t = threading.Thread(target=load)
        t.start()
        try:
            src.daemon.journal.flush()
            done = subprocess.run([sys.executable, "-c", BACKUP_PROCESS, str(src.data_dir),
                                   str(tmp_path / "backup")], capture_output=True, timeout=120)
        finally:
            stop.set()
            t.join(30)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        printed = done.stdout
        public_key = src.daemon.journal.verifier
    finally:
        src.stop()
    m = read_manifest(tmp_path / "backup")
    assert printed == (tmp_path / "backup" / CHECKPOINT_FILE).read_bytes()
    assert f"\n{m['tree_size']}\n".encode() in printed
    restore(tmp_path / "backup", tmp_path / "b", expected_checkpoint=printed,
            secret_files={s: tmp_path / "a" / s for s in SECRETS})
    dst = start_server(tmp_path / "b")
    try:
        head = dst.daemon.journal.head()
        size = checkpoint_size(printed)
        assert head.checkpoint.size >= size
        grown = verify_consistency(printed, head.note, dst.daemon.journal.consistency(
            size, head.checkpoint.size), public_key)
        assert grown.ok, grown.report()
        c = dst.client("permits")
        for name, data in docs.items():
            assert c.read_bytes(vault, name) == data
    finally:
        dst.stop()
