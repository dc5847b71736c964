"""SIGKILL the real daemon (a child process) at random moments while concurrent deposits, new
versions, destroys, key rotations and checkpoint reads run; restart it on the same data folder and
check every promise after every crash:

- every acknowledged deposit reads back byte for byte (unless its destruction was acknowledged);
- every acknowledged destruction stays done;
- every deposit and destroy receipt verifies offline against the published key;
- every checkpoint ever handed out (in receipts or by GetCheckpoint) is consistent with the new head;
- Check over the vault reports nothing;
- nothing unacknowledged is half-present (one depositor sends documents of several staged parts, so
  a crash can leave parts to roll back at the next start): every version listed reads whole, with the SHA-256 of one
  of the documents sent under its name; the store's structure is sound (every version has its
  manifest, every manifest's chunks are stored, reference counts equal the references, no chunk
  without references, no staged part left after recovery);
- at the end, an in-process audit of the journal recomputes every stored hash.

``pytest tests/reliability/test_crash.py`` runs a few cycles; ``--soak`` (or ``--kill-cycles N``,
``VAULTD_KILL_CYCLES``) many more. The seed of each run is printed to reproduce it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daemon_proc import DaemonProcess, journal_audit, pending_count, store_structure  # type: ignore[import-not-found]
from vaultd.errors import AlreadyExists, NotFound, VaultError
from vaultd.journal.receipt import verify_consistency, verify_receipt
from vaultd.store.backup import verify_backup
from vaultd.v1 import journal_pb2 as jpb
from vaultd.v1 import journal_pb2_grpc as jpb_grpc

VAULT = "citizen-crash"


@dataclass
class Ledger:
    """What the clients were told, across all cycles."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, set[bytes]] = field(default_factory=dict)  # name -> SHA-256 of every document sent
    docs: dict[bytes, bytes] = field(default_factory=dict)  # SHA-256 -> document
    acked: dict[tuple[str, int], tuple[bytes, bytes]] = field(default_factory=dict)  # -> (sha, evidence)
    destroyed: dict[tuple[str, int], bytes] = field(default_factory=dict)  # -> evidence
    destroying: set[tuple[str, int]] = field(default_factory=set)
    checkpoints: set[bytes] = field(default_factory=set)
    rotations: int = 0
    kills: int = 0
    pending_at_kill: int = 0  # staged parts a crash left, rolled back at the next start
    backups: list[tuple[Path, int, bytes]] = field(default_factory=list)  # (dest, exit code, stdout)
    backups_verified: int = 0

    def checkpoint_of(self, evidence: bytes) -> bytes:
        return str(json.loads(evidence)["checkpoint"]).encode()


def _document(rng: random.Random, ledger: Ledger, large: bool = False) -> bytes:
    if large:  # more than one staged part (8 MiB): a crash can leave pending parts to roll back
        return rng.randbytes(rng.randrange(9 << 20, 18 << 20))
    with ledger.lock:
        if ledger.docs and rng.random() < 0.15:  # the same content again: deduplicated chunks
            return rng.choice([d for d in ledger.docs.values() if len(d) < 1 << 20] or [b""])
    size = rng.choice([0, rng.randrange(1, 4096), rng.randrange(4096, 70_000), rng.randrange(200_000, 700_000)])
    return rng.randbytes(size)


def _traffic(d: DaemonProcess, ledger: Ledger, rng: random.Random, stop: threading.Event) -> list[threading.Thread]:
    def depositor(w: int, seed: int) -> None:
        r = random.Random(seed)
        with d.client("permits", timeout=20) as c:
            while not stop.is_set():
                name = f"w{w}/doc{r.randrange(6)}"
                doc = _document(r, ledger, large=w == 3)
                sha = hashlib.sha256(doc).digest()
                with ledger.lock:
                    ledger.sent.setdefault(name, set()).add(sha)
                    ledger.docs[sha] = doc
                try:
                    rc = c.deposit(VAULT, name, doc, metadata={"w": str(w)})
                except VaultError:
                    if not d.alive():
                        return
                    continue
                assert rc.stat.sha256 == sha and rc.evidence
                with ledger.lock:
                    ledger.acked[(name, rc.stat.version)] = (sha, rc.evidence)

    def destroyer(seed: int) -> None:
        r = random.Random(seed)
        with d.client("permits", timeout=20) as c:
            while not stop.is_set():
                with ledger.lock:
                    live = [k for k in ledger.acked if k not in ledger.destroyed and k not in ledger.destroying]
                    key = r.choice(live) if len(live) > 8 else None
                    if key is not None:
                        ledger.destroying.add(key)
                if key is None:
                    time.sleep(0.02)
                    continue
                try:
                    rc = c.destroy(VAULT, key[0], version=key[1])
                except VaultError:
                    if not d.alive():
                        return
                    continue
                assert rc.evidence
                with ledger.lock:
                    ledger.destroyed[key] = rc.evidence

    def rotator(seed: int) -> None:
        r = random.Random(seed)
        with d.client("op-admin", timeout=20) as c:
            while not stop.wait(r.uniform(0.05, 0.3)):
                try:
                    c.rotate_keys()
                except VaultError:
                    if not d.alive():
                        return
                    continue
                with ledger.lock:
                    ledger.rotations += 1

    def watcher() -> None:
        with d.client("permits", timeout=5) as c:
            stub = jpb_grpc.JournalServiceStub(c._channel)
            while not stop.wait(0.03):
                try:
                    note = stub.GetCheckpoint(jpb.GetCheckpointRequest()).note
                except Exception:
                    if not d.alive():
                        return
                    continue
                with ledger.lock:
                    ledger.checkpoints.add(bytes(note))

    def backer(seed: int) -> None:
        """``vaultctl backup`` beside the daemon, from another process, as an operator runs it."""
        r = random.Random(seed)
        n = 0
        while not stop.wait(r.uniform(0.05, 0.4)):  # one after the other: the kill lands in one
            dest = d.data_dir.parent / "backups" / f"b{seed}-{n}"
            n += 1
            p = subprocess.run([sys.executable, "-m", "vaultd.cli.vaultctl", "backup", str(dest), "--data-dir",
                                str(d.data_dir), "--timeout", "5"], capture_output=True, timeout=120,
                               stdin=subprocess.DEVNULL)
            with ledger.lock:
                ledger.backups.append((dest, p.returncode, p.stdout))

    threads = [threading.Thread(target=depositor, args=(w, rng.getrandbits(32))) for w in range(4)]
    threads.append(threading.Thread(target=backer, args=(rng.getrandbits(32),)))
    threads += [threading.Thread(target=destroyer, args=(rng.getrandbits(32),)),
                threading.Thread(target=rotator, args=(rng.getrandbits(32),)),
                threading.Thread(target=watcher)]
    for t in threads:
        t.start()
    return threads


def _sample(items: list[Any], keep: set[Any], rng: random.Random, full: bool, n: int = 400) -> list[Any]:
    """All of ``items`` when ``full``; else those in ``keep`` (the last cycle's) and ``n`` others."""
    if full or len(items) <= n:
        return items
    if not keep:
        return rng.sample(items, n)
    others = [i for i in items if i not in keep]
    return [i for i in items if i in keep] + rng.sample(others, min(n, len(others)))


def _verify_backups(ledger: Ledger) -> None:
    """A backup either completed (its files match its manifest, its store is sound, its checkpoint
    joins those that must stay consistent) or left nothing behind."""
    for dest, rc, out in ledger.backups[ledger.backups_verified:]:
        if rc == 0:
            verify_backup(dest)
            assert store_structure(dest) == [], dest
            ledger.checkpoints.add(out)
            shutil.rmtree(dest)  # verified: its checkpoint is kept, its bytes need not be
        else:
            assert not dest.exists(), f"a failed backup (exit {rc}) left {dest} behind"
    ledger.backups_verified = len(ledger.backups)


def _verify(d: DaemonProcess, ledger: Ledger, fresh: set[Any], rng: random.Random, full: bool) -> dict[str, int]:
    problems = store_structure(d.data_dir)
    assert problems == [], problems
    _verify_backups(ledger)
    assert pending_count(d.data_dir) == 0
    with d.client("permits", timeout=30) as c:
        jstub = jpb_grpc.JournalServiceStub(c._channel)
        key = jstub.GetPublicKey(jpb.GetPublicKeyRequest()).verifier_key
        head = jstub.GetCheckpoint(jpb.GetCheckpointRequest())
        # acknowledged deposits read back byte for byte; acknowledged destructions stay done
        for name, version in _sample(list(ledger.acked), fresh, rng, full):
            sha, evidence = ledger.acked[(name, version)]
            res = verify_receipt(evidence, ledger.docs[sha], key)
            assert res.ok, res.report()
            ledger.checkpoints.add(ledger.checkpoint_of(evidence))
            if (name, version) in ledger.destroyed:
                with pytest.raises(NotFound):
                    c.stat(VAULT, name, version=version)
                continue
            try:
                got = c.read_bytes(VAULT, name, version=version)
            except NotFound:
                # only an unacknowledged destroy (killed before its answer) may have taken it
                assert (name, version) in ledger.destroying, f"acknowledged {name} v{version} is lost"
                ledger.destroyed[(name, version)] = b""
                continue
            assert hashlib.sha256(got).digest() == sha and got == ledger.docs[sha], f"{name} v{version} differs"
        for evidence in ledger.destroyed.values():
            if evidence:
                res = verify_receipt(evidence, None, key)
                assert res.ok, res.report()
                ledger.checkpoints.add(ledger.checkpoint_of(evidence))
        # nothing half-present: every listed version is whole and one of the documents sent
        listed = list(c.list(VAULT, versions=True))
        for st in _sample(listed, set(), rng, full):
            assert st.sha256 in ledger.sent.get(st.name, set()), f"{st.name} v{st.version} was never sent"
            got = c.read_bytes(VAULT, st.name, version=st.version)
            assert hashlib.sha256(got).digest() == st.sha256 and len(got) == st.size
            assert (st.name, st.version) not in ledger.destroyed or not ledger.destroyed[(st.name, st.version)]
        report = c.check(VAULT, timeout=120)
        assert report.ok, report.problems
        assert report.objects == len(listed)
        # every checkpoint handed out is consistent with the head after the restart
        proofs: dict[int, bytes] = {}
        for note in _sample(sorted(ledger.checkpoints), set(), rng, full, 200):
            size = int(note.split(b"\n")[1])
            assert size <= head.tree_size, "the journal lost signed leaves"
            if size not in proofs:
                proofs[size] = jstub.GetConsistencyProof(
                    jpb.GetConsistencyProofRequest(old_size=size, new_size=head.tree_size)).proof_file
            res = verify_consistency(note, head.note, proofs[size], key)
            assert res.ok, res.report()
    return {"listed": len(listed), "checkpoints": len(ledger.checkpoints)}


def test_sigkill_cycles(tmp_path: Path, kill_cycles: int) -> None:
    seed = int(os.environ.get("VAULTD_CRASH_SEED", random.randrange(1 << 32)))
    print(f"crash test seed {seed} (VAULTD_CRASH_SEED to replay), {kill_cycles} cycles")
    rng = random.Random(seed)
    data = tmp_path / "data"
    ledger = Ledger()
    d = DaemonProcess(data).start()
    with d.client("permits") as c:
        try:
            c.create_vault(VAULT)
        except AlreadyExists:
            pass
    started = time.monotonic()
    try:
        for cycle in range(kill_cycles):
            stop = threading.Event()
            before = set(ledger.acked)
            threads = _traffic(d, ledger, rng, stop)
            time.sleep(rng.uniform(0.3, 1.6))
            d.kill()
            ledger.kills += 1
            stop.set()
            for t in threads:
                t.join(60)
                assert not t.is_alive()
            ledger.destroying -= set(ledger.destroyed)
            ledger.pending_at_kill += pending_count(data)
            fresh = set(ledger.acked) - before
            d = DaemonProcess(data).start()
            # in long runs every tenth cycle (and the last) checks everything, the others a sample
            figures = _verify(d, ledger, fresh, rng, full=cycle % 10 == 9 or cycle == kill_cycles - 1)
            print(f"cycle {cycle}: {len(ledger.acked)} deposits and {len(ledger.destroyed)} destroys acknowledged, "
                  f"{ledger.rotations} rotations, {figures}")
        d.stop()
    finally:
        d.kill()
    # the journal's stored hashes, recomputed in full, and the store once more, offline
    assert store_structure(data) == []
    assert journal_audit(data) == []
    assert ledger.kills == kill_cycles
    assert len(ledger.acked) > 0 and ledger.rotations > 0
    assert any(rc == 0 for _, rc, _ in ledger.backups), "no backup completed"
    print(f"{kill_cycles} SIGKILL cycles in {time.monotonic() - started:.1f} s: {len(ledger.acked)} deposits, "
          f"{len(ledger.destroyed)} destroys, {ledger.rotations} rotations, {len(ledger.checkpoints)} checkpoints, "
          f"{ledger.pending_at_kill} staged parts left by the kills and rolled back, "
          f"{sum(rc == 0 for _, rc, _ in ledger.backups)} of {len(ledger.backups)} backups completed")
