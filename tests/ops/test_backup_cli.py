"""`vaultctl backup` and `vaultd restore` as an operator runs them (separate processes, as in the
runbook): a backup beside a daemon busy with deposits, a restore into a fresh folder with the keys
from escrow, then a daemon on it serves every object, every receipt verifies and the journal
extends the checkpoint the backup printed. And the refusals, each with its exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from servers import new_vault_id, start_server
from vaultd.journal.receipt import verify_consistency, verify_receipt
from vaultd.store.backup import CHECKPOINT_FILE, checkpoint_size, read_manifest

ROOT = Path(__file__).resolve().parents[2]
ESCROW = ("keyring.json", "journal/journal.key", "session.key")


def run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, cwd=ROOT, env=env,
                          timeout=timeout)


def vaultctl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run("vaultd.cli.vaultctl", *args)


def vaultd(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run("vaultd.cli.daemon", *args)


def test_backup_while_depositing_then_restore_with_the_cli(tmp_path: Path) -> None:
    src = start_server(tmp_path / "a")
    try:
        client = src.client("permits")
        vault = new_vault_id()
        client.create_vault(vault)
        docs: dict[str, bytes] = {}
        receipts: dict[str, bytes] = {}
        for i in range(8):
            data = os.urandom(1000 + i * 37_000) + b"common" * 300
            docs[f"before-{i}"] = data
            receipts[f"before-{i}"] = client.deposit(vault, f"before-{i}", data).evidence or b""

        stop = threading.Event()
        lock = threading.Lock()
        errors: list[BaseException] = []

        def load(worker: int) -> None:
            c = src.client("permits")
            n = 0
            try:
                while not stop.is_set():
                    name, data = f"during-{worker}-{n}", os.urandom(8_000 + n)
                    r = c.deposit(vault, name, data)
                    with lock:
                        docs[name], receipts[name] = data, r.evidence or b""
                    n += 1
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        while len(docs) < 12 and not errors:
            threading.Event().wait(0.01)
        with lock:
            acknowledged_before = set(docs)
        done = vaultctl("backup", str(tmp_path / "backup"), "--data-dir", str(src.data_dir))
        with lock:
            during_backup = len(docs) - len(acknowledged_before)
        stop.set()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        public_key = src.daemon.journal.verifier
        late = client.deposit(vault, "after-backup", b"not in the backup")
        assert late.stat.version == 1
    finally:
        src.stop()
    assert all(receipts.values())

    # stdout is exactly the checkpoint of the copy; stderr a summary
    printed = done.stdout
    backup = tmp_path / "backup"
    assert printed == (backup / CHECKPOINT_FILE).read_bytes()
    size = checkpoint_size(printed)
    assert read_manifest(backup)["tree_size"] == size
    assert b"journal tree size" in done.stderr
    assert not {p.name for p in backup.rglob("*")} & {"keyring.json", "journal.key", "session.key"}

    # the operator's catalogue and escrow, kept apart from the backup
    catalogue = tmp_path / "catalogue" / "backup.checkpoint"
    catalogue.parent.mkdir()
    catalogue.write_bytes(printed)
    escrow = tmp_path / "escrow"
    for name in ESCROW:
        (escrow / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tmp_path / "a" / name, escrow / name)

    fresh = tmp_path / "b"
    r = vaultd("restore", str(backup), "--data-dir", str(fresh), "--expect-checkpoint", str(catalogue),
               "--keys-from", str(escrow))
    assert r.returncode == 0, r.stderr.decode()
    assert f"journal tree size {size}".encode() in r.stderr
    assert oct((fresh / "keyring.json").stat().st_mode & 0o777) == "0o600"

    dst = start_server(fresh)
    try:
        journal = dst.daemon.journal
        head = journal.head()
        assert head.checkpoint.size >= size
        grown = verify_consistency(printed, head.note, journal.consistency(size, head.checkpoint.size),
                                   public_key)
        assert grown.ok, grown.report()
        c = dst.client("permits")
        present = {o.name for o in c.list(vault)}
        assert acknowledged_before <= present  # everything acknowledged before the backup began
        assert "after-backup" not in present
        in_backup = [n for n in docs if n in present]
        assert len(in_backup) >= len(acknowledged_before)
        for name in in_backup:
            assert c.read_bytes(vault, name) == docs[name], name
            ok = verify_receipt(receipts[name], docs[name], public_key)
            assert ok.ok, ok.report()
            # the receipt's checkpoint is extended by the printed one: the same history
            old = json.loads(receipts[name])["checkpoint"].encode()
            old_size = checkpoint_size(old)
            if old_size <= size:
                cons = verify_consistency(old, printed, journal.consistency(old_size, size), public_key)
                assert cons.ok, cons.report()
        assert journal.audit() == []
    finally:
        dst.stop()
    print(f"backup during load: {len(acknowledged_before)} deposits before, {during_backup} acknowledged "
          f"while it ran, {len(in_backup)} in the backup, tree size {size}")

    # refusals, each with its documented exit code, and nothing overwritten
    again = vaultd("restore", str(backup), "--data-dir", str(fresh), "--expect-checkpoint", str(catalogue),
                   "--keys-from", str(escrow))
    assert again.returncode == 8 and b"not empty" in again.stderr, again.stderr
    other = tmp_path / "other.checkpoint"
    other.write_bytes(printed.replace(b"\n", b"\n\n", 1))
    wrong = vaultd("restore", str(backup), "--data-dir", str(tmp_path / "c"), "--expect-checkpoint",
                   str(other), "--keys-from", str(escrow))
    assert wrong.returncode == 11 and b"not the expected one" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "c" / "store").exists()
    empty = tmp_path / "empty-escrow"
    empty.mkdir()
    nokeys = vaultd("restore", str(backup), "--data-dir", str(tmp_path / "c"), "--expect-checkpoint",
                    str(catalogue), "--keys-from", str(empty))
    assert nokeys.returncode == 1 and b"holds none of" in nokeys.stderr
    notbackup = vaultd("restore", str(escrow), "--data-dir", str(tmp_path / "c"), "--expect-checkpoint",
                       str(catalogue), "--keys-from", str(escrow))
    assert notbackup.returncode == 7 and b"not a vaultd backup" in notbackup.stderr
    again_backup = vaultctl("backup", str(backup), "--data-dir", str(fresh))
    assert again_backup.returncode == 8 and b"not empty" in again_backup.stderr
    nostore = vaultctl("backup", str(tmp_path / "x"), "--data-dir", str(tmp_path / "nowhere"))
    assert nostore.returncode == 1 and b"holds no vaultd store" in nostore.stderr


def test_help_documents_exit_codes() -> None:
    restore_help = vaultd("restore", "--help")
    backup_help = vaultctl("backup", "--help")
    assert restore_help.returncode == backup_help.returncode == 0
    for code in (b"  0  restored", b"  8  DIR is not empty", b"  11  integrity", b"  7  SRC is not"):
        assert code in restore_help.stdout, code
    assert b"exit codes" in backup_help.stdout and b"FAILED_PRECONDITION" in backup_help.stdout
    assert b"--keys-from ESCROW" in restore_help.stdout
