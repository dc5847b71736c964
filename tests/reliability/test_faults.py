"""I/O faults under the real daemon process: failed fsync, a full disk, a full LMDB map.

Faults come from two places: a small tmpfs mounted for the data folder (a real full disk; needs
the right to mount, else that case is skipped and the shim's ENOSPC case still runs) and an
``LD_PRELOAD`` shim (``faultshim/faultshim.c``, built here with the system C compiler) that fails
fsync/fdatasync/msync with EIO, or writes to regular files with ENOSPC, while a switch file exists.

In every case: the refused work gets a clear status (UNAVAILABLE for a failed fsync,
RESOURCE_EXHAUSTED for a full disk or map), reads keep working, nothing acknowledged is lost,
nothing refused is half-present, and deposits work again once the fault is gone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon_proc import DaemonProcess, pending_count, store_structure  # type: ignore[import-not-found]
from vaultd.errors import NotFound, ResourceExhausted, Unavailable, VaultError
from vaultd.journal.receipt import verify_receipt
from vaultd.v1 import journal_pb2 as jpb
from vaultd.v1 import journal_pb2_grpc as jpb_grpc

SHIM_SOURCE = Path(__file__).resolve().parent / "faultshim" / "faultshim.c"
VAULT = "citizen-faults"
MiB = 1 << 20


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the fault shim")
    out = tmp_path_factory.mktemp("shim") / "faultshim.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
                   check=True)
    return out


def _faulty(data: Path, shim: Path, switches: Path, **kw: object) -> DaemonProcess:
    switches.mkdir(parents=True, exist_ok=True)
    return DaemonProcess(data, env={"LD_PRELOAD": str(shim), "VAULTD_FAULT_DIR": str(switches)}, **kw)  # type: ignore[arg-type]


def _injected(switches: Path) -> int:
    f = switches / "count"
    return f.stat().st_size if f.exists() else 0


def _after_restart(data: Path, acked: dict[str, bytes], refused: set[str], evidence: dict[str, bytes]) -> None:
    """Restart without faults: everything acknowledged is there, nothing refused, the store is sound."""
    d = DaemonProcess(data).start()
    try:
        assert pending_count(data) == 0
        assert store_structure(data) == []
        with d.client("permits", timeout=30) as c:
            key = jpb_grpc.JournalServiceStub(c._channel).GetPublicKey(jpb.GetPublicKeyRequest()).verifier_key
            for name, doc in acked.items():
                assert c.read_bytes(VAULT, name) == doc
                res = verify_receipt(evidence[name], doc, key)
                assert res.ok, res.report()
            for name in refused - set(acked):
                with pytest.raises(NotFound):
                    c.stat(VAULT, name)
            assert c.check(VAULT).ok
    finally:
        d.kill()


def test_failed_fsync(tmp_path: Path, shim: Path) -> None:
    switches = tmp_path / "switches"
    data = tmp_path / "data"
    d = _faulty(data, shim, switches).start()
    acked: dict[str, bytes] = {}
    evidence: dict[str, bytes] = {}
    refused: set[str] = set()
    try:
        with d.client("permits", timeout=30) as c:
            c.create_vault(VAULT)
            for i in range(5):
                doc = os.urandom(50_000 + i)
                evidence[f"before{i}"] = c.deposit(VAULT, f"before{i}", doc).evidence or b""
                acked[f"before{i}"] = doc
            (switches / "fsync").touch()
            for i in range(5):
                with pytest.raises(Unavailable, match="could not make the transaction durable"):
                    c.deposit(VAULT, f"during{i}", os.urandom(70_000))
                refused.add(f"during{i}")
            with pytest.raises(Unavailable):
                c.destroy(VAULT, "before0")
            assert _injected(switches) >= 6
            # reads, stat, list and Check keep working while nothing can be made durable; the reads'
            # journal entries wait in memory and are committed once the disk works again
            reads_before = _journal_reads(c)
            for name, doc in acked.items():
                assert c.read_bytes(VAULT, name) == doc
            deferred_reads = len(acked)
            assert c.count(VAULT) == len(acked)
            assert c.check(VAULT).ok

            # a large deposit whose first staged part commits, then the disk starts failing: refused,
            # and its staged part is rolled back (here, or at the next start)
            (switches / "fsync").unlink()

            def pieces() -> Iterator[bytes]:
                for i in range(20):
                    if i == 12:
                        (switches / "fsync").touch()
                    yield os.urandom(MiB)

            with pytest.raises(VaultError):
                c.deposit(VAULT, "large", pieces(), size=20 * MiB)
            refused.add("large")
            (switches / "fsync").unlink()
            # the fault is gone: deposits work again
            for i in range(3):
                doc = os.urandom(60_000)
                evidence[f"after{i}"] = c.deposit(VAULT, f"after{i}", doc).evidence or b""
                acked[f"after{i}"] = doc
            assert c.read_bytes(VAULT, "before0") == acked["before0"]
            # the deferred entries went in with that read, keeping their order and their time
            assert _journal_reads(c) == reads_before + deferred_reads + 1
        assert '"level":"error"' in d.stderr()
        assert "journal entry deferred" in d.stderr()
    finally:
        d.kill()
    _after_restart(data, acked, refused, evidence)


def _journal_reads(c: object) -> int:
    """How many ``read`` entries the vault's journal holds."""
    n, start = 0, 0
    while True:
        page = c.read_journal(VAULT, start=start, page_size=500)  # type: ignore[attr-defined]
        n += sum(1 for e in page.entries if e.operation == "read")
        if page.next_index >= page.tree_size or not page.entries:
            return n
        start = page.next_index


def _fill(c: object, acked: dict[str, bytes], evidence: dict[str, bytes], prefix: str, limit: int = 200) -> str:
    """Deposit 1 MiB documents until refused; return the refusal's message."""
    for i in range(limit):
        doc = os.urandom(MiB)
        name = f"{prefix}{i}"
        try:
            r = c.deposit(VAULT, name, doc)  # type: ignore[attr-defined]
        except ResourceExhausted as e:
            return str(e)
        acked[name] = doc
        evidence[name] = r.evidence or b""
    raise AssertionError(f"{limit} MiB stored without the disk or map filling up")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the shim's ENOSPC case covers a full disk")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_tmpfs(small_tmpfs: Path, tmp_path: Path) -> None:
    data = small_tmpfs / "data"
    d = DaemonProcess(data, args=["--map-size", str(1 << 30)], log=tmp_path / "daemon.log").start()
    acked: dict[str, bytes] = {}
    evidence: dict[str, bytes] = {}
    try:
        with d.client("permits", timeout=30) as c:
            c.create_vault(VAULT)
            msg = _fill(c, acked, evidence, "d")
            assert "disk holding the store is full" in msg
            assert len(acked) >= 4
            with pytest.raises(ResourceExhausted):  # still full: refused again, clearly
                c.deposit(VAULT, "again", os.urandom(MiB))
            for name, doc in acked.items():
                assert c.read_bytes(VAULT, name) == doc
            assert c.check(VAULT).ok
            # space returns: the same daemon accepts deposits again
            subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
            for i in range(3):
                doc = os.urandom(MiB)
                evidence[f"after{i}"] = c.deposit(VAULT, f"after{i}", doc).evidence or b""
                acked[f"after{i}"] = doc
    finally:
        d.kill()
    _after_restart(data, acked, {"again"}, evidence)


def test_full_disk_shim(tmp_path: Path, shim: Path) -> None:
    switches = tmp_path / "switches"
    data = tmp_path / "data"
    d = _faulty(data, shim, switches).start()
    acked: dict[str, bytes] = {}
    evidence: dict[str, bytes] = {}
    try:
        with d.client("permits", timeout=30) as c:
            c.create_vault(VAULT)
            for i in range(3):
                doc = os.urandom(100_000)
                evidence[f"d{i}"] = c.deposit(VAULT, f"d{i}", doc).evidence or b""
                acked[f"d{i}"] = doc
            (switches / "enospc").touch()
            with pytest.raises(ResourceExhausted, match="disk holding the store is full"):
                c.deposit(VAULT, "full", os.urandom(100_000))
            assert _injected(switches) >= 1
            for name, doc in acked.items():
                assert c.read_bytes(VAULT, name) == doc
            (switches / "enospc").unlink()
            doc = os.urandom(100_000)
            evidence["after"] = c.deposit(VAULT, "after", doc).evidence or b""
            acked["after"] = doc
    finally:
        d.kill()
    _after_restart(data, acked, {"full"}, evidence)


def test_full_map_then_a_larger_map(tmp_path: Path) -> None:
    data = tmp_path / "data"
    d = DaemonProcess(data, args=["--map-size", str(8 * MiB)]).start()
    acked: dict[str, bytes] = {}
    evidence: dict[str, bytes] = {}
    try:
        with d.client("permits", timeout=30) as c:
            c.create_vault(VAULT)
            msg = _fill(c, acked, evidence, "d")
            assert "storage map is full" in msg
            for name, doc in acked.items():
                assert hashlib.sha256(c.read_bytes(VAULT, name)).digest() == hashlib.sha256(doc).digest()
            assert c.check(VAULT).ok
    finally:
        d.kill()
    assert store_structure(data) == []
    # restarted with more room, the daemon accepts deposits and has lost nothing
    d = DaemonProcess(data, args=["--map-size", str(64 * MiB)]).start()
    try:
        with d.client("permits", timeout=30) as c:
            doc = os.urandom(MiB)
            evidence["after"] = c.deposit(VAULT, "after", doc).evidence or b""
            acked["after"] = doc
    finally:
        d.kill()
    _after_restart(data, acked, set(), evidence)


def test_full_map_grows_up_to_max_map_size(tmp_path: Path) -> None:
    """With max_map_size the daemon grows a full map (doubling) instead of refusing deposits, up to
    that bound: past it, deposits are refused as with a map that never grows, and reads still work."""
    data = tmp_path / "data"
    d = DaemonProcess(data, args=["--map-size", str(8 * MiB), "--max-map-size", str(32 * MiB)]).start()
    acked: dict[str, bytes] = {}
    evidence: dict[str, bytes] = {}
    try:
        with d.client("permits", timeout=30) as c:
            c.create_vault(VAULT)
            msg = _fill(c, acked, evidence, "g")
            assert "storage map is full" in msg and "max_map_size" in msg
            assert len(acked) > 16  # an 8 MiB map holds fewer than eight of them
            for name, doc in acked.items():
                assert hashlib.sha256(c.read_bytes(VAULT, name)).digest() == hashlib.sha256(doc).digest()
            assert c.check(VAULT).ok
    finally:
        d.kill()
    assert store_structure(data) == []
    _after_restart(data, acked, set(), evidence)

