"""The scheduled scrub over a real daemon's store: a clean pass, a pass that finds a flipped bit,
its pace, its metrics and its journal leaf, and the background schedule."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from servers import new_vault_id, start_server
from vaultd.journal.hook import leaf_factory
from vaultd.journal.leaf import Leaf
from vaultd.scrub import Scrubber, journal_pass


def last_leaf(journal) -> Leaf:  # type: ignore[no-untyped-def]
    size = journal.head().checkpoint.size
    (leaves, _) = journal.read(size - 1, limit=1)
    (_, leaf), = leaves
    assert isinstance(leaf, Leaf)
    return leaf


def test_scrub_passes_metrics_journal_and_damage(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a")
    try:
        d = srv.daemon
        c = srv.client("permits")
        v1, v2 = new_vault_id(), new_vault_id()
        c.create_vault(v1)
        c.create_vault(v2)
        sizes = {(v1, "a"): 300_000, (v1, "b"): 5_000, (v2, "c"): 1_200_000}
        for (vault, name), n in sizes.items():
            c.deposit(vault, name, os.urandom(n))
        c.deposit(v1, "a", os.urandom(1000))  # a second version of v1/a

        m = d.metrics
        scrub = Scrubber(d.vaults, metrics=m, bytes_per_second=None, page_size=1,
                         on_pass=journal_pass(d.vaults.store, leaf_factory))
        size_before = d.journal.head().checkpoint.size
        res = scrub.run_once()
        assert res.completed and res.clean, res.problems
        assert res.vaults == 2 and res.objects == 4
        assert res.bytes == sum(sizes.values()) + 1000
        assert m.registry.get_sample_value("vaultd_scrub_last_problems") == 0
        assert abs(m.registry.get_sample_value(
            "vaultd_scrub_last_success_timestamp_seconds") - time.time()) < 60
        assert m.registry.get_sample_value("vaultd_scrub_objects_checked_total") == 4
        # one journal leaf for the whole pass, with its counts
        head = d.journal.head().checkpoint
        assert head.size == size_before + 1
        leaf = last_leaf(d.journal)
        assert leaf.operation == "check" and leaf.outcome == "ok"
        assert leaf.actor_kind == "operator" and leaf.actor_name == "scrub"
        assert dict(leaf.extra)["objects"] in ("4", b"4")
        clean_at = m.registry.get_sample_value("vaultd_scrub_last_success_timestamp_seconds")

        # flip one bit of one sealed chunk of v2/c: the next pass finds it
        store = d.vaults.store
        with store.read() as r:
            cid = next(iter(r.iter_chunks(v2)))[0]

        def corrupt(t) -> None:  # type: ignore[no-untyped-def]
            sealed = bytearray(t.get_chunk(v2, cid))
            sealed[50] ^= 1
            t.raw.put(v2.encode() + b"\0" + cid, bytes(sealed), db=store._dbs["chunks"])

        store.write(corrupt)
        res = scrub.run_once()
        assert res.completed and not res.clean
        assert len(res.problems) == 1 and res.problems[0].vault == v2 and res.problems[0].name == "c"
        assert m.registry.get_sample_value("vaultd_scrub_last_problems") == 1
        assert m.registry.get_sample_value("vaultd_scrub_errors_total") == 1
        assert m.registry.get_sample_value("vaultd_integrity_errors_total", {"where": "scrub"}) == 1
        # a pass with problems is not a clean one: the success time stays
        assert m.registry.get_sample_value("vaultd_scrub_last_success_timestamp_seconds") == clean_at
        assert m.registry.get_sample_value("vaultd_scrub_runs_total", {"outcome": "completed"}) == 2
        leaf = last_leaf(d.journal)
        assert leaf.operation == "check" and leaf.outcome == "failed"
        assert dict(leaf.extra)["problems"] in ("1", b"1")
    finally:
        srv.stop()


def filled(srv: Any, n: int, size: int) -> tuple[Any, str]:
    """A ``permits`` client and a new vault in which it deposited ``n`` random documents of ``size``
    bytes (``doc-0``...)."""
    c = srv.client("permits")
    vault = new_vault_id()
    c.create_vault(vault)
    for i in range(n):
        c.deposit(vault, f"doc-{i}", os.urandom(size))
    return c, vault


def test_pace_and_schedule(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a")
    try:
        d = srv.daemon
        filled(srv, 4, 100_000)
        # 400 kB at 1 MB/s: at least 0.3 s (the last object's sleep included)
        paced = Scrubber(d.vaults, bytes_per_second=1_000_000)
        t0 = time.monotonic()
        assert paced.run_once().clean
        assert time.monotonic() - t0 >= 0.3

        # the background schedule: passes every 0.3 s; stop interrupts a pass cleanly
        runs = []
        sched = Scrubber(d.vaults, metrics=d.metrics, interval=0.3, initial_delay=0.0,
                         bytes_per_second=None, on_pass=runs.append)
        sched.start()
        deadline = time.monotonic() + 10
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        sched.stop()
        assert len(runs) >= 2 and all(r.clean for r in runs)
        slow = Scrubber(d.vaults, metrics=d.metrics, interval=10, initial_delay=0.0,
                        bytes_per_second=1000)  # would take minutes
        slow.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        slow.stop()
        assert time.monotonic() - t0 < 5
        assert slow.last is not None and not slow.last.completed
        assert d.metrics.registry.get_sample_value("vaultd_scrub_runs_total",
                                                   {"outcome": "failed"}) == 1
    finally:
        srv.stop()


def test_the_scrub_gives_way_to_calls(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a")
    try:
        d = srv.daemon
        c, vault = filled(srv, 6, 50_000)

        # the daemon counts every call from its start to its end: here an upload held open
        assert d.traffic.in_flight == 0
        go_on = threading.Event()

        def held() -> object:
            yield b"x" * 1000
            go_on.wait(30)
            yield b"y" * 1000

        upload = threading.Thread(target=c.deposit, args=(vault, "held", held()))
        upload.start()
        deadline = time.monotonic() + 10
        while d.traffic.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert d.traffic.in_flight == 1
        go_on.set()
        upload.join(30)
        assert d.traffic.in_flight == 0
        # ended just now: busy for a quiet time of a minute, idle for none
        assert d.traffic.busy(quiet=60) and not d.traffic.busy(quiet=0)

        # idle (no call within `quiet`): the scrub goes at its bytes pace and never gives way
        idle = Scrubber(d.vaults, bytes_per_second=None, traffic=d.traffic, busy_share=0.1,
                        quiet=0).run_once()
        assert idle.clean and idle.objects == 7 and idle.yielded_seconds == 0
        # serving calls: after each version it sleeps 9 times as long as the version took
        t0 = time.monotonic()
        busy = Scrubber(d.vaults, bytes_per_second=None, traffic=d.traffic, busy_share=0.1,
                        quiet=60).run_once()
        took = time.monotonic() - t0
        assert busy.clean and busy.objects == 7 and busy.worked_seconds > 0
        assert busy.yielded_seconds == pytest.approx(9 * busy.worked_seconds, rel=1e-9)
        assert took >= busy.worked_seconds + busy.yielded_seconds
        # a share of 1 never gives way
        whole = Scrubber(d.vaults, bytes_per_second=None, traffic=d.traffic, busy_share=1,
                         quiet=60).run_once()
        assert whole.clean and whole.yielded_seconds == 0
        with pytest.raises(ValueError):
            Scrubber(d.vaults, traffic=d.traffic, busy_share=0)
    finally:
        srv.stop()


def test_damaged_records_are_reported_and_the_schedule_survives_a_failure(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "a")
    try:
        d = srv.daemon
        c = srv.client("permits")
        vault = new_vault_id()
        c.create_vault(vault)
        for name in ("no-size", "bad-digest", "fine"):
            c.deposit(vault, name, name.encode())

        def damage(t) -> None:  # type: ignore[no-untyped-def]
            for name, change in (("no-size", lambda rec: rec.pop("size")),
                                 ("bad-digest", lambda rec: rec.update(sha256="zz" * 32))):
                rec = json.loads(t.get_version(vault, name, 1))
                change(rec)
                t.put_version(vault, name, 1, json.dumps(rec).encode(), t.get_manifest(vault, name, 1))

        d.vaults.store.write(damage)
        # over gRPC the damage is reported, not an internal error
        report = c.check(vault)
        assert sorted(p.name for p in report.problems) == ["bad-digest", "no-size"]
        assert all(p.what.startswith("record damaged") for p in report.problems)
        assert len(c.check(vault, "no-size", version=1).problems) == 1

        m = d.metrics
        res = Scrubber(d.vaults, metrics=m, bytes_per_second=None, list_vaults=lambda: [vault]).run_once()
        assert res.completed and res.objects == 3
        assert sorted(p.name for p in res.problems) == ["bad-digest", "no-size"]
        assert m.registry.get_sample_value("vaultd_scrub_last_problems") == 2

        # a pass that fails unexpectedly counts as failed; the next one runs as planned
        calls = []

        def listing() -> list[str]:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("unexpected")
            return [vault]

        runs = []
        failed_before = m.registry.get_sample_value("vaultd_scrub_runs_total", {"outcome": "failed"}) or 0
        sched = Scrubber(d.vaults, metrics=m, interval=0.2, initial_delay=0.0, bytes_per_second=None,
                         list_vaults=listing, on_pass=runs.append)
        sched.start()
        deadline = time.monotonic() + 10
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        sched.stop()
        assert len(runs) >= 2
        assert not runs[0].completed and runs[1].completed and runs[1].objects == 3
        assert m.registry.get_sample_value("vaultd_scrub_runs_total",
                                           {"outcome": "failed"}) == failed_before + 1
    finally:
        srv.stop()
