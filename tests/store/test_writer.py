"""The single writer: group commit, isolation of failing units, durability, a full map, map growth."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from vaultd.errors import ResourceExhausted, Unavailable
from vaultd.store import open_store, writer
from vaultd.store.interface import Committed

REPO = Path(__file__).resolve().parents[2]


def test_concurrent_units_share_batches(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s", map_size=64 << 20)
    try:
        n = 400
        futs = []
        barrier = threading.Barrier(8)

        def worker(k: int) -> None:
            barrier.wait()
            for i in range(n // 8):
                futs.append(s.submit(lambda t, k=k, i=i: t.put_vault(f"v{k}-{i}", b"x")))

        ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for f in futs:
            f.result()
        st = s.stats()
        assert st.units == n
        assert st.batches < n  # group commit: fewer commits (fsyncs) than units
        with s.read() as r:
            assert len(list(r.iter_vaults())) == n
    finally:
        s.close()


def test_failing_unit_does_not_spoil_its_batch(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s", map_size=8 << 20)
    try:
        gate = threading.Event()
        blocker = s.submit(lambda t: gate.wait(5))  # holds the writer so the next three batch together
        good1 = s.submit(lambda t: t.put_vault("a", b"1"))
        bad = s.submit(lambda t: (t.put_vault("b", b"2"), 1 / 0))
        good2 = s.submit(lambda t: t.put_vault("c", b"3"))
        gate.set()
        blocker.result()
        good1.result()
        good2.result()
        with pytest.raises(ZeroDivisionError):
            bad.result()
        with s.read() as r:
            assert [v for v, _ in r.iter_vaults()] == ["a", "c"]
    finally:
        s.close()


def test_journal_hook_runs_in_the_same_transaction(tmp_path: Path) -> None:
    appended: list[bytes] = []
    batches: list[list[Committed[object]]] = []

    drafted: list[list[bytes]] = []

    closed: list[bool] = []

    class Appends:
        def append(self, txn: object, leaf: bytes) -> int:
            txn.put(b"journal/" + leaf, b"1")  # type: ignore[attr-defined]  # in the unit's transaction
            appended.append(leaf)
            return len(appended) - 1

        def savepoint(self) -> int:
            return len(appended)

        def rollback(self, savepoint: int) -> None:  # the unit's transaction was aborted
            del appended[savepoint:]

        def close(self, committed: bool) -> None:
            closed.append(committed)

    class J:
        def begin(self, txn: object) -> Appends:
            return Appends()

        def before_commit(self, txn: object, batch: list[Committed[object]]) -> None:
            assert not batches or len(drafted) == len(batches)  # before the batch's after_commit
            drafted.append([leaf for c in batch for leaf in c.leaves])

    later: list[bool] = []

    def after(batch: list[Committed[object]]):  # type: ignore[no-untyped-def]
        batches.append(batch)
        for c in batch:
            c.evidence = b"proof-of-" + c.leaves[0]
        def after_ack() -> None:  # what after_commit leaves for once the units are acknowledged
            later.append(True)
        return after_ack

    s = open_store(tmp_path / "s", map_size=8 << 20, journal=J(), after_commit=after)
    try:
        c = s.write(lambda t: (t.put_vault("a", b"1"), t.journal(b"leaf-a"))[0])
        assert c.leaves == [b"leaf-a"] and c.leaf_indexes == [0] and c.evidence == b"proof-of-leaf-a"
        with pytest.raises(ValueError):
            s.write(lambda t: (t.journal(b"leaf-bad"), int("x")))
        with s.env.begin() as r:  # a failed unit's leaf went with its transaction
            assert r.get(b"journal/leaf-a") == b"1" and r.get(b"journal/leaf-bad") is None
        assert len(batches) == 1
        assert drafted == [[b"leaf-a"]]  # a batch with nothing committed is not drafted
        assert appended == [b"leaf-a"]  # the failed unit's append was rolled back
        c = s.write(lambda t: (t.put_vault("b", b"2"), t.journal(b"leaf-b"))[0])
        assert c.leaf_indexes == [1]  # and its index given to the next leaf
        assert closed == [True, True, True]  # every batch closed, committed (the failed one had no unit)
        deadline = time.monotonic() + 2
        while len(later) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert later == [True, True]  # after_commit's later work ran for each batch that committed
    finally:
        s.close()


def test_full_map_refuses_writes_but_reads_work(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s", map_size=2 << 20)
    try:
        s.write(lambda t: t.put_vault("keep", b"ok"))

        def fill(t) -> None:  # type: ignore[no-untyped-def]
            for i in range(100):
                t.add_chunk_ref("v", i.to_bytes(32, "big"), os.urandom(64 << 10))

        with pytest.raises(ResourceExhausted, match="map is full.*reads still work"):
            s.write(fill)
        with s.read() as r:
            assert r.get_vault("keep") == b"ok"
            assert list(r.iter_chunks("v")) == []  # nothing half-written
        s.write(lambda t: t.put_vault("small", b"still fits"))  # small writes still go through
    finally:
        s.close()


def test_map_grows_when_allowed(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s", map_size=2 << 20, max_map_size=32 << 20)
    try:
        stop = threading.Event()
        reads = 0

        def reader() -> None:  # reads run during growth; growth waits for them
            nonlocal reads
            while not stop.is_set():
                with s.read() as r:
                    r.get_vault("x")
                reads += 1

        th = threading.Thread(target=reader)
        th.start()

        def fill(t) -> None:  # type: ignore[no-untyped-def]
            for i in range(100):
                t.add_chunk_ref("v", i.to_bytes(32, "big"), os.urandom(64 << 10))

        s.write(fill)
        stop.set()
        th.join()
        assert s.stats().map_size > 2 << 20
        assert reads > 0
        with s.read() as r:
            assert len(list(r.iter_chunks("v"))) == 100
    finally:
        s.close()


def test_raw_reads_share_the_gate_with_growth(tmp_path: Path) -> None:
    """raw_read (the journal's and the scrape's reads) holds the gate that growing the map waits for;
    a read opened inside another read of the same thread does not wait for a pending growth (which
    waits for the outer read: that would never end)."""
    s = open_store(tmp_path / "s", map_size=2 << 20, max_map_size=32 << 20)
    try:
        def fill(t) -> None:  # type: ignore[no-untyped-def]
            for i in range(100):
                t.add_chunk_ref("v", i.to_bytes(32, "big"), os.urandom(64 << 10))

        with s.raw_read() as outer:
            before = s.env.info()["map_size"]
            f = s.submit(fill)
            deadline = time.monotonic() + 30
            while not s._gate._exclusive and time.monotonic() < deadline:  # the writer waits to grow
                time.sleep(0.01)
            assert s._gate._exclusive
            with s.read() as r, s.raw_read() as inner:  # nested: served at once
                assert r.get_vault("x") is None and inner.stat()["entries"] >= 0
            assert outer.stat()["entries"] >= 0  # still valid: the map did not move under it
            assert not f.done() and s.env.info()["map_size"] == before
        f.result(timeout=30)  # grown once the outer read ended
        assert s.stats().map_size > 2 << 20
    finally:
        s.close()


def test_a_unit_submitted_as_the_store_stops_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submit that passed the shutting-down check while stop() ran must not be queued after the
    writer's last drain (its future would never resolve): here it is held, after the check, while
    its item is made, and stop() starts meanwhile."""
    s = open_store(tmp_path / "s", map_size=8 << 20)
    made, release = threading.Event(), threading.Event()

    class HeldItem(writer._Item):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            if self.size == 4242:  # the unit under test: held between the check and the put
                made.set()
                release.wait(10)

    monkeypatch.setattr(writer, "_Item", HeldItem)
    futures: list[Future[Committed[None]]] = []
    submitter = threading.Thread(target=lambda: futures.append(s.submit(lambda t: None, 4242)))
    submitter.start()
    assert made.wait(10)
    stopper = threading.Thread(target=s.close)
    stopper.start()
    stopper.join(0.5)  # time for a stop that does not wait for the submit to drain the queue and end
    release.set()
    submitter.join(10)
    stopper.join(10)
    assert not stopper.is_alive() and len(futures) == 1
    try:
        futures[0].result(timeout=10)  # committed, or refused as the store stopped: never left waiting
    except Unavailable:
        pass


def test_acknowledged_write_survives_a_crash(tmp_path: Path) -> None:
    """A child process acknowledges a write then dies without closing; the data is there after."""
    code = (
        "import os,sys; from pathlib import Path; from vaultd.store import open_store\n"
        "s = open_store(Path(sys.argv[1]), map_size=8 << 20)\n"
        "s.write(lambda t: t.put_vault('durable', b'yes'))\n"
        "print('acked', flush=True)\n"
        "os._exit(0)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "acked", out.stderr
    s = open_store(tmp_path / "s", map_size=8 << 20)
    try:
        with s.read() as r:
            assert r.get_vault("durable") == b"yes"
    finally:
        s.close()


def test_files_are_private(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s", map_size=8 << 20)
    s.close()
    assert (tmp_path / "s" / "data.mdb").stat().st_mode & 0o077 == 0


def test_fresh_pages_are_zero_filled(tmp_path: Path) -> None:
    """LMDB writes pages from malloc'd buffers; without MDB's memory initialisation the unused part
    of a fresh page carries whatever the process's heap held there before (a document's plaintext,
    a key) into the data file. tests/reliability/test_secrets.py found document bytes in data.mdb
    that way, in 4 of 6 runs, before the store turned it on."""
    s = open_store(tmp_path / "s", map_size=8 << 20)
    try:
        assert s.env.flags()["meminit"] is True
    finally:
        s.close()
