"""The real daemon as a child process (``python -m vaultd.cli.daemon serve --dev``) and offline
structural checks of its LMDB store.

``DaemonProcess.start(data_dir)`` starts ``vaultd serve`` on an ephemeral loopback port, reads the
address it prints, and waits until it serves; ``kill()`` sends SIGKILL, ``stop()`` SIGTERM. Extra
environment (``LD_PRELOAD`` of a fault shim) and flags (``--map-size``) can be given.

``store_structure(data_dir)`` opens the store read-only (another process may be serving it: LMDB
readers in other processes see one consistent snapshot) and returns every structural fault: a
version without its manifest or the reverse, a manifest naming a chunk that is not stored, a
reference count that differs from the number of manifest entries (and staged parts) pointing at the
chunk, a stored chunk nobody references.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lmdb

from vaultd.client import VaultClient

REPO = Path(__file__).resolve().parents[2]
_ADDR = re.compile(rb"serving on (\S+)")
_ENTRY = struct.Struct(">32sI")
_Q = struct.Struct(">Q")


class DaemonProcess:
    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, args: list[str] | None = None,
                 log: Path | None = None, cwd: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.cwd = cwd or REPO
        self.extra_env = env or {}
        self.args = args or []
        self.log = log or self.data_dir.parent / f"{self.data_dir.name}-daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self._stderr: list[bytes] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vaultd.cli.daemon", "serve", "--dev", "--data-dir", str(self.data_dir),
             "--listen", "127.0.0.1:0", "--metrics-listen", "", "--grace-period", "1", *self.args],
            cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        got = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            with open(self.log, "ab") as out:
                for line in self.proc.stderr:
                    out.write(line)
                    out.flush()
                    self._stderr.append(line)
                    m = _ADDR.search(line)
                    if m and not got.is_set():
                        self.address = m.group(1).decode()
                        got.set()
            got.set()

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        if not got.wait(timeout) or not self.address:
            self.kill()
            raise RuntimeError("vaultd did not start:\n" + self.stderr())
        c = self.client("op-admin")
        try:
            c.wait_ready(timeout)
        finally:
            c.close()
        return self

    def client(self, identity: str = "permits", **kw: Any) -> VaultClient:
        return VaultClient.for_dev(self.address, self.data_dir, identity, server_name="localhost", **kw)

    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self._wait()

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self._wait()

    def _wait(self) -> int:
        if self.proc is None:
            return 0
        rc = self.proc.wait(30)
        if self._reader is not None:
            self._reader.join(10)
        return rc


def store_structure(data_dir: Path, env: lmdb.Environment | None = None) -> list[str]:
    """Every structural fault of the store at ``data_dir/store`` (empty when it is sound). ``env``:
    the environment when this process has it open already (LMDB allows one per process)."""
    own = env is None
    if env is None:
        env = lmdb.open(str(Path(data_dir) / "store"), readonly=True, lock=True, max_dbs=64, subdir=True)
    problems: list[str] = []
    try:
        dbs = {n: env.open_db(n.encode(), create=False) for n in
               ("versions", "manifests", "chunks", "refs", "pending", "objects")}
        with env.begin(buffers=False) as txn:
            versions = dict(txn.cursor(db=dbs["versions"]))
            manifests = dict(txn.cursor(db=dbs["manifests"]))
            chunks = set(txn.cursor(db=dbs["chunks"]).iternext(values=False))
            refs = {k: _Q.unpack(v)[0] for k, v in txn.cursor(db=dbs["refs"])}
            pending = dict(txn.cursor(db=dbs["pending"]))
            objects = dict(txn.cursor(db=dbs["objects"]))
        expected: Counter[bytes] = Counter()
        for k in versions.keys() - manifests.keys():
            problems.append(f"version {k!r} has no manifest")
        for k in manifests.keys() - versions.keys():
            problems.append(f"manifest {k!r} has no version record")
        for k, m in manifests.items():
            vault_prefix = k.split(b"\x00", 1)[0] + b"\x00"
            for cid, _n in _ENTRY.iter_unpack(m):
                expected[vault_prefix + cid] += 1
        for rec in pending.values():
            vault_b, _, ids = rec.partition(b"\x00")
            for i in range(0, len(ids), 32):
                expected[vault_b + b"\x00" + ids[i:i + 32]] += 1
        for key, n in expected.items():
            if key not in chunks:
                problems.append(f"chunk {key[-32:].hex()[:16]} is referenced {n} times but not stored")
            if refs.get(key) != n:
                problems.append(f"chunk {key[-32:].hex()[:16]} counts {refs.get(key)} references, {n} exist")
        for key in refs.keys() - expected.keys():
            problems.append(f"chunk {key[-32:].hex()[:16]} counts {refs[key]} references, none exist")
        for key in chunks - refs.keys():
            problems.append(f"chunk {key[-32:].hex()[:16]} is stored without a reference count")
        heads = {k for k in objects}
        for k in versions:
            if k[:-9] not in heads:
                problems.append(f"version {k!r} has no object head")
        for k, raw in versions.items():
            rec = json.loads(raw)
            total = sum(n for _, n in _ENTRY.iter_unpack(manifests.get(k, b"")))
            if k in manifests and total != rec["size"]:
                problems.append(f"version {k!r}: manifest covers {total} bytes, record says {rec['size']}")
    finally:
        if own:
            env.close()
    return problems


def pending_count(data_dir: Path) -> int:
    env = lmdb.open(str(Path(data_dir) / "store"), readonly=True, lock=True, max_dbs=64, subdir=True)
    try:
        db = env.open_db(b"pending", create=False)
        with env.begin() as txn:
            return int(txn.stat(db)["entries"])
    finally:
        env.close()


def vault_keys(data_dir: Path, vaults: list[str]) -> dict[str, tuple[bytes, bytes]]:
    """The unwrapped data and dedup keys of ``vaults``, read by opening the stopped daemon's folder
    in this process (for tests that look for key material where it must not be)."""
    from vaultd.cli.daemon import Daemon
    from vaultd.config import Config

    daemon = Daemon(Config(data_dir=Path(data_dir), listen="127.0.0.1:0", metrics_listen="", dev=True,
                           grace_period=1.0))
    daemon.start()
    try:
        out = {}
        for v in vaults:
            k = daemon.vaults._vault_keys(v)
            out[v] = (bytes(k.data_key), bytes(k.dedup_key))
        return out
    finally:
        daemon.stop(1.0)


def journal_audit(data_dir: Path) -> list[str]:
    """Open the stopped daemon's data folder in this process and audit the journal in full."""
    from vaultd.cli.daemon import Daemon
    from vaultd.config import Config

    daemon = Daemon(Config(data_dir=Path(data_dir), listen="127.0.0.1:0", metrics_listen="", dev=True,
                           grace_period=1.0))
    daemon.start()
    try:
        return list(daemon.journal.audit())
    finally:
        daemon.stop(1.0)
