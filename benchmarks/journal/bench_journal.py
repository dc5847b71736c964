"""Journal benchmarks: appends per second, proofs per second, proof generation cost at 10^3, 10^5 and
10^7 leaves, and the journal's share of small-deposit latency through the core.

    .venv/bin/python benchmarks/journal/bench_journal.py [--max-leaves 10000000] [--quick]
    .venv/bin/python benchmarks/journal/bench_journal.py --overhead   # journal off/on in the core
    .venv/bin/python benchmarks/journal/bench_journal.py --daemon     # journal off/on through gRPC

Writes benchmarks/results/journal.json and benchmarks/results/journal.md. Trees of 10^5 and more
leaves are built with the bulk path (MerkleTree.bulk_load: MDB_APPEND, same records as append).

``--daemon`` measures the journal's cost where the issue sets its target, on the small-deposit latency
of the daemon benchmark: two real daemons over mutual TLS with durable commits, ``vaultd serve`` and
the same daemon with its journal unplugged from the store (``unjournalled_daemon.py``), fed 16 KiB
deposits by the daemon benchmark's client processes (1, 16 and 64 clients), in rounds alternating
off/on/on/off so that other load falls on both alike. ``--overhead`` and ``--daemon`` carry the other
sections over from the previous results file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import lmdb

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vaultd.journal import proofs  # noqa: E402
from vaultd.journal.journal import Journal  # noqa: E402
from vaultd.journal.leaf import Leaf  # noqa: E402
from vaultd.journal.receipt import verify_receipt  # noqa: E402
from vaultd.journal.signer import Ed25519Signer  # noqa: E402
from vaultd.journal.tree import MerkleTree  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def _leaf(i: int) -> bytes:
    return Leaf.make("deposit", vault="citizen-0001", name=f"doc-{i}", version=1,
                     sha256=hashlib.sha256(i.to_bytes(8, "big")).digest(), actor_kind="service",
                     actor_name="permits", time_ns=1_700_000_000_000_000_000 + i).encode()


class CountingTree(MerkleTree):
    reads = 0

    def _node(self, txn: Any, level: int, index: int) -> bytes:
        self.reads += 1
        return super()._node(txn, level, index)


def bench_appends(tmp: Path, batch: int, batches: int) -> dict[str, Any]:
    """Group-commit appends: ``batch`` leaves per durable write transaction, one signed checkpoint
    after each commit (consistency-checked against the previous one), receipts for every leaf."""
    env = lmdb.open(str(tmp / f"append-{batch}"), max_dbs=8, map_size=1 << 30, sync=True)
    j = Journal(env, Ed25519Signer.load_or_create(tmp / f"k-{batch}.pem", "bench/journal"),
                state_dir=tmp / f"state-{batch}")
    leaves = [_leaf(i) for i in range(batch * batches)]
    t0 = time.perf_counter()
    t_sign = t_receipt = 0.0
    k = 0
    for _ in range(batches):
        with env.begin(write=True) as txn:
            idx = [j.append(txn, leaves[k + i]) for i in range(batch)]
        k += batch
        s = time.perf_counter()
        head = j.sign_head()
        t_sign += time.perf_counter() - s
        s = time.perf_counter()
        for i in idx:
            j.receipt("deposit", i, head)
        t_receipt += time.perf_counter() - s
    total = time.perf_counter() - t0
    env.close()
    n = batch * batches
    return {"name": f"append+sign+receipt[batch={batch}]", "leaves": n, "seconds": total,
            "appends_per_s": n / total, "sign_ms_per_commit": 1000 * t_sign / batches,
            "receipt_us_per_leaf": 1e6 * t_receipt / n}


def bench_size(tmp: Path, n: int, samples: int) -> dict[str, Any]:
    path = tmp / f"tree-{n}"
    path.mkdir()
    env = lmdb.open(str(path), max_dbs=8, map_size=max(1 << 30, n * 400), sync=False, writemap=True)
    tree = CountingTree(env)
    t0 = time.perf_counter()
    tree.bulk_load((_leaf(i) for i in range(n)), batch=200_000)
    env.sync(True)
    build = time.perf_counter() - t0
    root = tree.root(n)
    import random

    rnd = random.Random(n)
    idx = [rnd.randrange(n) for _ in range(samples)]
    tree.reads = 0
    t0 = time.perf_counter()
    ps = [tree.inclusion_proof(i, n) for i in idx]
    incl_s = time.perf_counter() - t0
    incl_reads = tree.reads / samples
    t0 = time.perf_counter()
    for i, p in zip(idx, ps):
        proofs.verify_inclusion(i, n, proofs.leaf_hash(tree.leaf(i)), p, root)
    verify_s = time.perf_counter() - t0
    olds = [rnd.randrange(1, n) for _ in range(samples)]
    tree.reads = 0
    t0 = time.perf_counter()
    cs = [tree.consistency_proof(m, n) for m in olds]
    cons_s = time.perf_counter() - t0
    cons_reads = tree.reads / samples
    for m, p in zip(olds[:50], cs[:50]):
        proofs.verify_consistency(m, n, p, tree.root(m), root)
    size_bytes = sum(f.stat().st_blocks * 512 for f in path.iterdir())  # allocated, not the map size
    env.close()
    shutil.rmtree(path)
    return {
        "name": f"proofs[{n}]", "leaves": n, "build_seconds": build, "db_bytes": size_bytes,
        "inclusion_us": 1e6 * incl_s / samples, "inclusion_per_s": samples / incl_s,
        "inclusion_reads": incl_reads, "inclusion_hashes": statistics.mean(len(p) for p in ps),
        "verify_us": 1e6 * verify_s / samples,
        "consistency_us": 1e6 * cons_s / samples, "consistency_per_s": samples / cons_s,
        "consistency_reads": cons_reads, "log2_n": n.bit_length(),
    }


def bench_core_deposits(tmp: Path, count: int, threads: int) -> list[dict[str, Any]]:
    """Small (1 KiB) deposits through the real core and store, with and without the journal."""
    from vaultd.types import DepositHeader, Identity

    svc = Identity("service", "permits")
    out = []
    for journaled in (False, True):
        v, hook = _open_core(tmp / f"core-{journaled}", journaled)
        lat: list[float] = []
        for i in range(count):  # sequential: latency
            data = os.urandom(1024)
            s = time.perf_counter()
            r = v.deposit(svc, DepositHeader("permits", f"seq-{i}"), [data])
            lat.append(time.perf_counter() - s)
            assert (r.evidence is not None) == journaled
        done = [0]

        def worker(w: int) -> None:
            for i in range(count // threads):
                v.deposit(svc, DepositHeader("permits", f"par-{w}-{i}"), [os.urandom(1024)])
                done[0] += 1

        ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
        s = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        par = time.perf_counter() - s
        if journaled:
            rec = r.evidence
            assert rec is not None and verify_receipt(rec, data, hook.journal.verifier.vkey()).ok
        v.close()
        lat.sort()
        out.append({"name": f"core.deposit[1KiB, journal={'on' if journaled else 'off'}]",
                    "sequential_median_ms": 1000 * statistics.median(lat),
                    "sequential_p90_ms": 1000 * lat[int(0.9 * len(lat))],
                    "concurrent_threads": threads, "concurrent_deposits_per_s": done[0] / par})
    return out


def _open_core(d: Path, journaled: bool) -> tuple[Any, Any]:
    from vaultd.core.policy import Policy
    from vaultd.core.vaults import open_vaults
    from vaultd.journal.hook import JournalHook, leaf_factory, open_journal
    from vaultd.keys.file import FileKeyProvider
    from vaultd.types import Identity

    policy = Policy.from_dict({"rule": [{"identity": "service:permits", "vaults": ["permits"],
                                         "verbs": ["create", "deposit"]}]})
    kw: dict[str, Any] = {}
    hook = JournalHook()
    if journaled:
        kw = dict(leaf_factory=leaf_factory, journal=hook, after_commit=hook.after_commit)
    v = open_vaults(d, policy=policy, key_provider=FileKeyProvider(d / "keys"), map_size=1 << 30, **kw)
    if journaled:
        journal = open_journal(v.store.env, d / "journal", name="bench/journal")
        journal.deposit_index = v.deposit_leaf_index  # as vaultd serve wires it
        hook.bind(journal)
    v.create_vault(Identity("service", "permits"), "permits")
    return v, hook


class WriterMeter:
    """CPU time of the writer thread: whole commits, journal appends (inside the transaction) and the
    after-commit hook (signing and receipts), measured with time.thread_time on that thread, so other
    load on the machine does not count. With ``profile``, cProfile runs on the writer thread too."""

    def __init__(self, vaults: Any, profile: bool = False) -> None:
        import cProfile

        self.writer = vaults.store._writer
        self.commits = self.units = 0
        self.commit_cpu = self.append_cpu = self.after_cpu = self.before_cpu = 0.0
        self.commit_wall = self.after_wall = 0.0
        self.prof = cProfile.Profile(time.thread_time) if profile else None
        self.on = False
        w = self.writer
        commit, after, journal = w._commit, w._after_commit, w._journal

        def timed_commit(batch: list[Any]) -> None:
            if not self.on:
                return commit(batch)
            if self.prof is not None:
                self.prof.enable()
            t = time.thread_time()
            w = time.perf_counter()
            try:
                return commit(batch)
            finally:
                self.commit_cpu += time.thread_time() - t
                self.commit_wall += time.perf_counter() - w
                if self.prof is not None:
                    self.prof.disable()
                self.commits += 1
                self.units += len(batch)

        w._commit = timed_commit
        if after is not None:
            def timed_after(batch: list[Any]) -> None:
                t = time.thread_time()
                w = time.perf_counter()
                try:
                    after(batch)
                finally:
                    if self.on:
                        self.after_cpu += time.thread_time() - t
                        self.after_wall += time.perf_counter() - w
            w._after_commit = timed_after
        if journal is not None:
            inner = journal

            class TimedAppends:
                def __init__(_self, appends: Any) -> None:
                    _self.appends = appends

                def append(_self, txn: Any, leaf: bytes) -> int:
                    t = time.thread_time()
                    try:
                        return _self.appends.append(txn, leaf)
                    finally:
                        if self.on:
                            self.append_cpu += time.thread_time() - t

                def savepoint(_self) -> Any:
                    return _self.appends.savepoint()

                def rollback(_self, savepoint: Any) -> None:
                    _self.appends.rollback(savepoint)

                def close(_self, committed: bool) -> None:
                    _self.appends.close(committed)

            class TimedJournal:
                def begin(_self, txn: Any) -> TimedAppends:
                    t = time.thread_time()
                    try:
                        return TimedAppends(inner.begin(txn))
                    finally:
                        if self.on:
                            self.append_cpu += time.thread_time() - t

                def before_commit(_self, txn: Any, batch: list[Any]) -> None:
                    t = time.thread_time()
                    try:
                        inner.before_commit(txn, batch)
                    finally:
                        if self.on:
                            self.before_cpu += time.thread_time() - t

            w._journal = TimedJournal()

    def row(self) -> dict[str, Any]:
        c = max(self.commits, 1)
        return {"commits": self.commits, "units_per_commit": self.units / c,
                "writer_cpu_us_per_commit": 1e6 * self.commit_cpu / c,
                "writer_wall_us_per_commit": 1e6 * self.commit_wall / c,
                "journal_after_commit_wall_us_per_commit": 1e6 * self.after_wall / c,
                "journal_append_cpu_us_per_commit": 1e6 * self.append_cpu / c,
                "journal_before_commit_cpu_us_per_commit": 1e6 * self.before_cpu / c,
                "journal_after_commit_cpu_us_per_commit": 1e6 * self.after_cpu / c}

    def top(self, n: int = 14) -> list[str]:
        """The writer's functions by own time (cProfile), most expensive first."""
        if self.prof is None:
            return []
        import pstats

        st = pstats.Stats(self.prof)
        rows = []
        for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
            rows.append((tt, ct, nc, f"{Path(file).name}:{line}({fn})"))
        rows.sort(reverse=True)
        return [f"{tt * 1e6 / max(self.commits, 1):8.1f} us/commit own, {ct * 1e6 / max(self.commits, 1):8.1f} "
                f"cumulative, {nc:7d} calls  {name}" for tt, ct, nc, name in rows[:n]]


def bench_overhead(tmp: Path, count: int, threads: int, sizes: tuple[int, ...] = (1024, 4096, 16384),
                   profile: bool = False) -> dict[str, Any]:
    """The journal's cost on small deposits, journal off and on side by side in one process: both
    cores are open at once and their deposits alternate (ABBA), so load on the shared machine falls on
    both alike. Sequential median latency per size; concurrent throughput (``threads`` threads) in
    alternating rounds; the writer thread's CPU per commit; the ratio on/off of each."""
    from vaultd.journal.receipt import verify_receipt
    from vaultd.types import DepositHeader, Identity

    svc = Identity("service", "permits")
    cores = {False: _open_core(tmp / "ovh-off", False), True: _open_core(tmp / "ovh-on", True)}
    meters = {j: WriterMeter(cores[j][0], profile=profile and j) for j in cores}
    out: dict[str, Any] = {"count": count, "threads": threads, "rows": []}
    try:
        seq = 0
        for size in sizes:
            lat: dict[bool, list[float]] = {False: [], True: []}
            for m in meters.values():
                m.on = True
            for i in range(count):
                order = (False, True) if i % 4 in (0, 3) else (True, False)
                for j in order:
                    v = cores[j][0]
                    data = os.urandom(size)
                    s = time.perf_counter()
                    r = v.deposit(svc, DepositHeader("permits", f"seq-{seq}"), [data])
                    lat[j].append(time.perf_counter() - s)
                    seq += 1
                    assert (r.evidence is not None) == j
            for m in meters.values():
                m.on = False
            rec = r.evidence if r.evidence is not None else None
            if rec is not None:
                hook = cores[True][1]
                assert verify_receipt(rec, data, hook.journal.verifier.vkey()).ok
            row: dict[str, Any] = {"name": f"core.deposit[{size // 1024}KiB]", "size": size}
            for j in (False, True):
                la = sorted(lat[j])
                tag = "on" if j else "off"
                row[f"seq_median_ms_{tag}"] = 1000 * statistics.median(la)
                row[f"seq_p90_ms_{tag}"] = 1000 * la[int(0.9 * len(la))]
            row["seq_median_ratio"] = row["seq_median_ms_on"] / row["seq_median_ms_off"]
            out["rows"].append(row)
        # concurrent: rounds alternate off/on/on/off
        size = 4096
        per_round = max(threads, count // 2)
        elapsed = {False: 0.0, True: 0.0}
        done = {False: 0, True: 0}
        for m in meters.values():
            m.on = True
        rnd = 0
        for j in (False, True, True, False) * 2:
            v = cores[j][0]
            rnd += 1

            def worker(w: int, v: Any = v, rnd: int = rnd) -> None:
                for i in range(per_round // threads):
                    v.deposit(svc, DepositHeader("permits", f"par-{rnd}-{w}-{i}"), [os.urandom(size)])

            ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
            s = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            elapsed[j] += time.perf_counter() - s
            done[j] += (per_round // threads) * threads
        for m in meters.values():
            m.on = False
        out["concurrent"] = {
            "name": f"core.deposit[4KiB, {threads} threads]",
            "deposits_per_s_off": done[False] / elapsed[False], "deposits_per_s_on": done[True] / elapsed[True],
        }
        out["concurrent"]["throughput_ratio"] = (out["concurrent"]["deposits_per_s_on"]
                                                 / out["concurrent"]["deposits_per_s_off"])
        out["writer"] = {("on" if j else "off"): meters[j].row() for j in meters}
        out["profile"] = meters[True].top()
    finally:
        for v, _ in cores.values():
            v.close()
    return out


def paired_worker(args: tuple[list[tuple[str, str]], int, str]) -> list[list[float]]:
    """One client process, one connection to each daemon, depositing to them in turn (off, on, on,
    off, ...): each pair of deposits sees the same moment of the machine. Latencies per daemon."""
    sys.path.insert(0, str(REPO / "benchmarks" / "daemon"))
    import bench_daemon as bd

    daemons, pairs, vault = args
    body = os.urandom(16 << 10)
    cs = [bd.client(address, data_dir) for address, data_dir in daemons]
    lat: list[list[float]] = [[] for _ in cs]
    try:
        for c in cs:
            c.wait_ready()
            for j in range(20):  # warm-up: connections, handler caches, first pages
                c.deposit(vault, f"warm-{os.getpid()}-{j}", body + j.to_bytes(4, "big"))
        for j in range(pairs):
            for k in ((0, 1) if j % 2 == 0 else (1, 0)):
                t = time.perf_counter()
                cs[k].deposit(vault, f"p{os.getpid()}-{j}", body + j.to_bytes(4, "big"))
                lat[k].append(time.perf_counter() - t)
    finally:
        for c in cs:
            c.close()
    return lat


def bench_daemon_overhead(tmp: Path, clients: tuple[int, ...] = (1, 16, 64), repeats: int = 8,
                          quick: bool = False) -> dict[str, Any]:
    """Small deposits through two daemons, journal off and on. One client: one client process
    alternating its deposits between the two daemons (paired: both see the same machine at the same
    time). More clients: rounds alternating (ABBA, ``repeats`` times per client count), since two
    concurrent loads would compete for the 2 CPUs. p50/p99 latency, deposits/s and daemon CPU per
    deposit of each."""
    import multiprocessing as mp

    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO / "benchmarks" / "daemon"))
    import bench_daemon as bd  # the daemon benchmark's client processes and percentiles
    from vaultd_daemon import Daemon

    per_round = {1: 60, 16: 320, 64: 640} if quick else {1: 200, 16: 480, 64: 960}
    ctx = mp.get_context("spawn")
    daemons = {True: Daemon(tmp / "daemon-on"),
               False: Daemon(tmp / "daemon-off", program=[str(Path(__file__).with_name("unjournalled_daemon.py"))])}
    rows = []
    try:
        for j, d in daemons.items():
            with bd.client(d.address, str(d.data_dir)) as c:
                c.create_vault("supplier-small")
                r = c.deposit("supplier-small", "probe", b"probe")
                assert (r.evidence is not None) == j, "the unjournalled daemon must give no evidence"
        for n in clients:
            lat: dict[bool, list[float]] = {False: [], True: []}
            wall = {False: 0.0, True: 0.0}
            cpu = {False: 0.0, True: 0.0}
            # CPU seconds (user, system) of each daemon thread over the measured deposits, by thread id
            threads: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}

            def count_threads(j: bool, before: dict[str, tuple[float, float]]) -> None:
                for tid, (user, system) in daemons[j].thread_cpu().items():
                    u0, s0 = before.get(tid, (0.0, 0.0))
                    acc = threads[j].setdefault(tid, [0.0, 0.0])
                    acc[0] += user - u0
                    acc[1] += system - s0

            procs = min(4, n)
            per_thread = max(1, per_round[n] // n)
            if n == 1:
                pairs = 300 if quick else 1500
                with ctx.Pool(1) as pool:
                    cpu0 = {j: d.cpu_seconds() for j, d in daemons.items()}
                    t0 = {j: d.thread_cpu() for j, d in daemons.items()}
                    off, on = pool.map(paired_worker, [([(daemons[j].address, str(daemons[j].data_dir))
                                                         for j in (False, True)], pairs, "supplier-small")])[0]
                    for j, xs in ((False, off), (True, on)):
                        lat[j], wall[j] = xs, sum(xs)
                        cpu[j] = daemons[j].cpu_seconds() - cpu0[j]
                        count_threads(j, t0[j])
            blocks: list[dict[bool, list[float]]] = []  # each ABBA block's latencies, for its own ratio
            with ctx.Pool(procs) as pool:
                for i, j in enumerate((False, True, True, False) * repeats if n > 1 else ()):
                    if i % 4 == 0:
                        blocks.append({False: [], True: []})
                    d = daemons[j]
                    start_at = time.time() + 1.5
                    cpu0 = d.cpu_seconds()
                    t0 = d.thread_cpu()
                    out = pool.map(bd.small_worker, [(d.address, str(d.data_dir), n // procs, per_thread, start_at,
                                                      "supplier-small")] * procs)
                    wall[j] += time.time() - start_at
                    cpu[j] += d.cpu_seconds() - cpu0
                    count_threads(j, t0)
                    lat[j] += [x for xs in out for x in xs]
                    blocks[-1][j] += [x for xs in out for x in xs]
            row: dict[str, Any] = {"clients": n, "deposits_per_mode": len(lat[True]),
                                   "method": "paired" if n == 1 else "rounds"}
            if blocks:  # the spread of the p50 ratio from one ABBA block to the next: the machine's drift
                ratios = sorted(bd.pct(b[True], 50) / bd.pct(b[False], 50) for b in blocks)
                row["p50_ratio_blocks"] = [ratios[0], bd.pct(ratios, 50), ratios[-1]]
            for j in (False, True):
                tag = "on" if j else "off"
                row[f"p50_ms_{tag}"] = 1000 * bd.pct(lat[j], 50)
                row[f"p99_ms_{tag}"] = 1000 * bd.pct(lat[j], 99)
                row[f"per_s_{tag}"] = len(lat[j]) / wall[j]
                row[f"cpu_ms_{tag}"] = 1000 * cpu[j] / len(lat[j])
                names = daemons[j].thread_names()
                if names:  # CPU per deposit of each (kind of) thread, µs: user and system
                    per: dict[str, list[float]] = {}
                    for tid, (user, system) in threads[j].items():
                        acc = per.setdefault(names.get(tid, "native (gRPC core)"), [0.0, 0.0])
                        acc[0] += 1e6 * user / len(lat[j])
                        acc[1] += 1e6 * system / len(lat[j])
                    row[f"threads_{tag}"] = per
            row["p50_ratio"] = row["p50_ms_on"] / row["p50_ms_off"]
            row["p99_ratio"] = row["p99_ms_on"] / row["p99_ms_off"]
            row["rate_ratio"] = row["per_s_on"] / row["per_s_off"]
            rows.append(row)
            print(f"daemon overhead, {n} clients: p50 {row['p50_ms_off']:.2f} -> {row['p50_ms_on']:.2f} ms "
                  f"({100 * (row['p50_ratio'] - 1):+.1f}%), {row['per_s_off']:.0f} -> {row['per_s_on']:.0f}/s",
                  flush=True)
    finally:
        for d in daemons.values():
            d.stop()
    return {"rows": rows, "size": 16 << 10, "repeats": repeats, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg": os.getloadavg()}


def render_daemon_overhead(o: dict[str, Any] | None) -> list[str]:
    if not o:
        return []
    lines = ["", f"## Journal cost on the daemon's small-deposit latency ({o['when']}, load average "
             f"{o['loadavg'][0]:.1f} at the end)", "",
             "`bench_journal.py --daemon`: `vaultd serve` against the same daemon with its journal unplugged "
             "(`unjournalled_daemon.py`), both over mutual TLS with durable commits, 16 KiB deposits from the "
             "daemon benchmark's client processes. One client (paired): one client process alternates its "
             "deposits between the two daemons (off, on, on, off, ...), so each pair of deposits sees the same "
             "moment of the machine, whose disk and CPUs drift by more than the effect measured here from one "
             "round to the next; deposits/s is then 1 / mean latency. 16 and 64 clients: rounds alternating "
             f"off/on/on/off ({o['repeats']} times per row). Target: the journal adds at most 10% to the latency.",
             "",
             "| clients | p50 ms off | p50 ms on | p50 on/off | p99 ms off | p99 ms on | p99 on/off "
             "| deposits/s off | on | on/off | daemon CPU ms/deposit off | on |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in o["rows"]:
        lines.append(
            f"| {r['clients']} | {r['p50_ms_off']:.2f} | {r['p50_ms_on']:.2f} | {100 * (r['p50_ratio'] - 1):+.1f}% "
            f"| {r['p99_ms_off']:.1f} | {r['p99_ms_on']:.1f} | {100 * (r['p99_ratio'] - 1):+.1f}% "
            f"| {r['per_s_off']:,.0f} | {r['per_s_on']:,.0f} | {100 * (r['rate_ratio'] - 1):+.1f}% "
            f"| {r['cpu_ms_off']:.2f} | {r['cpu_ms_on']:.2f} |")
    spread = [r for r in o["rows"] if r.get("p50_ratio_blocks")]
    if spread:
        lines += ["", "The p50 ratio on/off of each off/on/on/off block alone (lowest, median, highest), "
                  "against the pooled ratio above: how far the machine drifts within one row. " + "; ".join(
                      f"{r['clients']} clients: " + ", ".join(f"{100 * (x - 1):+.1f}%" for x in r["p50_ratio_blocks"])
                      for r in spread) + "."]
    rows = [r for r in o["rows"] if r.get("threads_on") and r.get("threads_off")]
    if rows:
        lines += ["", "Where the journal's CPU goes: each daemon thread's CPU per deposit over the same deposits "
                  "(user + system, µs; system in brackets), thread names from `py-spy dump` (the gRPC pool's "
                  "threads summed; CPU time is counted in ticks of 10 ms).", "",
                  "| clients | thread | off | on | on - off |", "|---:|---|---:|---:|---:|"]
        for r in rows:
            names = sorted(set(r["threads_on"]) | set(r["threads_off"]),
                           key=lambda k: -sum(r["threads_on"].get(k, [0, 0])))
            for k in names:
                off = r["threads_off"].get(k, [0.0, 0.0])
                on = r["threads_on"].get(k, [0.0, 0.0])
                if sum(off) < 5 and sum(on) < 5:
                    continue
                lines.append(f"| {r['clients']} | {k} | {sum(off):.0f} ({off[1]:.0f}) | {sum(on):.0f} ({on[1]:.0f}) "
                             f"| {sum(on) - sum(off):+.0f} |")
            lines.append(f"| {r['clients']} | all | {1000 * r['cpu_ms_off']:.0f} | {1000 * r['cpu_ms_on']:.0f} "
                         f"| {1000 * (r['cpu_ms_on'] - r['cpu_ms_off']):+.0f} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-leaves", type=int, default=10_000_000)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    ap.add_argument("--overhead", action="store_true",
                    help="only the journal-off/on comparison of small deposits (other sections carried over "
                         "from the previous results file)")
    ap.add_argument("--daemon", action="store_true",
                    help="only the journal-off/on comparison through two real daemons (other sections carried over "
                         "from the previous results file)")
    ap.add_argument("--profile", action="store_true", help="cProfile the writer thread in the overhead mode")
    ap.add_argument("--repeats", type=int, default=8,
                    help="off/on/on/off blocks of rounds per client count beyond one (daemon mode)")
    ap.add_argument("--count", type=int, default=300, help="sequential deposits per size and mode (overhead)")
    ap.add_argument("--keep-larger", action="store_true",
                    help="carry over proof rows of sizes above --max-leaves from the previous results file")
    a = ap.parse_args()
    sizes = [n for n in (1_000, 100_000, 10_000_000) if n <= a.max_leaves]
    if a.quick:
        sizes = [1_000, 10_000]
    tmp = Path(tempfile.mkdtemp(prefix="vaultd-bench-journal-"))
    previous = RESULTS / "journal.json"
    if a.overhead or a.daemon:
        res0 = json.loads(previous.read_text()) if previous.exists() else {}
        try:
            if a.overhead:
                res0["overhead"] = bench_overhead(tmp, a.count, 16, profile=a.profile)
                res0["overhead"]["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                res0["overhead"]["loadavg"] = os.getloadavg()
            if a.daemon:
                res0["daemon_overhead"] = bench_daemon_overhead(tmp, repeats=a.repeats, quick=a.quick)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        res0.setdefault("machine", {"python": sys.version.split()[0], "platform": platform.platform(),
                                    "cpus": os.cpu_count(), "lmdb": lmdb.version()})
        res0.setdefault("when", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for k in ("appends", "core_deposits", "proofs"):
            res0.setdefault(k, [])
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "journal.json").write_text(json.dumps(res0, indent=2) + "\n")
        (RESULTS / "journal.md").write_text(render(res0))
        print(render(res0))
        return 0
    res: dict[str, Any] = {"machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                                       "cpus": os.cpu_count(), "lmdb": lmdb.version()},
                           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        res["appends"] = [bench_appends(tmp, b, 20 if b > 1 else 200) for b in (1, 64, 512)]
        try:
            res["core_deposits"] = bench_core_deposits(tmp, 200 if a.quick else 600, 16)
        except Exception as e:  # the core may be mid-change; the journal figures still stand
            res["core_deposits"] = []
            res["core_deposits_error"] = f"{type(e).__name__}: {e}"
        res["overhead"] = bench_overhead(tmp, 100 if a.quick else a.count, 16, profile=a.profile)
        res["overhead"]["when"] = res["when"]
        res["overhead"]["loadavg"] = os.getloadavg()
        res["proofs"] = []
        for n in sizes:
            print(f"building and measuring {n} leaves ...", flush=True)
            res["proofs"].append(bench_size(tmp, n, a.samples))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.keep_larger and previous.exists():
        for row in json.loads(previous.read_text()).get("proofs", []):
            if row["leaves"] > max(sizes):
                row.setdefault("from_run", json.loads(previous.read_text()).get("when"))
                res["proofs"].append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "journal.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "journal.md").write_text(render(res))
    print(render(res))
    return 0


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"# Journal benchmark ({res['when']}; Python {m['python']}, {m['cpus']} CPUs, {m['platform']})", "",
             "## Appends (durable group commits, one signed checkpoint per commit, a receipt per leaf)", "",
             "| operation | leaves | appends/s | sign ms/commit | receipt µs/leaf |", "|---|---:|---:|---:|---:|"]
    for r in res["appends"]:
        lines.append(f"| {r['name']} | {r['leaves']} | {r['appends_per_s']:,.0f} | {r['sign_ms_per_commit']:.2f} "
                     f"| {r['receipt_us_per_leaf']:.0f} |")
    lines += ["", "## Small deposits through the core and store (1 KiB, journal off vs on)", "",
              "| operation | sequential median ms | p90 ms | concurrent deposits/s |", "|---|---:|---:|---:|"]
    if res.get("core_deposits_error"):
        lines.append(f"| not measured: {res['core_deposits_error']} | | | |")
    for r in res["core_deposits"]:
        lines.append(f"| {r['name']} | {r['sequential_median_ms']:.2f} | {r['sequential_p90_ms']:.2f} "
                     f"| {r['concurrent_deposits_per_s']:,.0f} ({r['concurrent_threads']} threads) |")
    if len(res["core_deposits"]) == 2:
        off, on = res["core_deposits"]
        lines.append(f"\nJournal overhead: sequential median {100 * (on['sequential_median_ms'] / off['sequential_median_ms'] - 1):+.1f}%,"
                 f" concurrent throughput {100 * (on['concurrent_deposits_per_s'] / off['concurrent_deposits_per_s'] - 1):+.1f}%.")
    lines += render_daemon_overhead(res.get("daemon_overhead"))
    lines += render_overhead(res.get("overhead"))
    lines += ["", "## Proof generation from stored hashes", "",
              "| leaves | log2 n | build s (bulk) | DB MiB | inclusion µs | inclusion/s | reads/proof | hashes/proof "
              "| consistency µs | consistency/s | reads/proof | verify µs |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["proofs"]:
        note = f" (run of {r['from_run']})" if r.get("from_run") else ""
        lines.append(f"| {r['leaves']:,}{note} | {r['log2_n']} | {r['build_seconds']:.1f} | {r['db_bytes'] / 2**20:,.0f} "
                     f"| {r['inclusion_us']:.1f} | {r['inclusion_per_s']:,.0f} | {r['inclusion_reads']:.1f} "
                     f"| {r['inclusion_hashes']:.1f} | {r['consistency_us']:.1f} | {r['consistency_per_s']:,.0f} "
                     f"| {r['consistency_reads']:.1f} | {r['verify_us']:.1f} |")
    lines += ["", "Reads/proof grows by about one stored hash per doubling of the tree (log2 n): proofs come from",
              "stored complete-subtree hashes, never from rehashing. The machine is 2 shared CPUs under load from",
              "other work, so absolute times are noisy; the read counts are exact. Trees of 10^5 and more leaves",
              "are built with the bulk path (MDB_APPEND, the same records as append). DB MiB of rows from runs",
              "before 2026-11-23T12:40Z is the map size (sparse file), not the space used (about 1.5 GiB at 10^7)."]
    return "\n".join(lines) + "\n"


def render_overhead(o: dict[str, Any] | None) -> list[str]:
    if not o:
        return []
    la = o.get("loadavg") or (0, 0, 0)
    lines = ["", f"## Journal overhead on small deposits, off and on side by side ({o.get('when', '')}, "
             f"load average {la[0]:.1f})", "",
             "Both cores open in one process, deposits alternating off/on (ABBA), "
             f"{o['count']} sequential deposits per size and mode; concurrent: {o['threads']} threads, "
             "4 KiB, alternating rounds.", "",
             "| case | off | on | on/off |", "|---|---:|---:|---:|"]
    for r in o["rows"]:
        lines.append(f"| {r['name']} sequential median ms | {r['seq_median_ms_off']:.2f} | {r['seq_median_ms_on']:.2f} "
                     f"| {r['seq_median_ratio']:.3f} ({100 * (r['seq_median_ratio'] - 1):+.1f}%) |")
    c = o["concurrent"]
    lines.append(f"| {c['name']} deposits/s | {c['deposits_per_s_off']:,.0f} | {c['deposits_per_s_on']:,.0f} "
                 f"| {c['throughput_ratio']:.3f} ({100 * (c['throughput_ratio'] - 1):+.1f}%) |")
    w = o["writer"]
    lines.append(f"| writer thread CPU µs per commit | {w['off']['writer_cpu_us_per_commit']:.0f} "
                 f"| {w['on']['writer_cpu_us_per_commit']:.0f} "
                 f"| {w['on']['writer_cpu_us_per_commit'] / max(w['off']['writer_cpu_us_per_commit'], 1e-9):.3f} |")
    if "writer_wall_us_per_commit" in w["on"]:
        lines.append(f"| writer thread wall µs per commit (transaction, fsync, after-commit) "
                     f"| {w['off']['writer_wall_us_per_commit']:.0f} | {w['on']['writer_wall_us_per_commit']:.0f} "
                     f"| {w['on']['writer_wall_us_per_commit'] / max(w['off']['writer_wall_us_per_commit'], 1e-9):.3f} |")
    lines.append(f"| units per commit | {w['off']['units_per_commit']:.2f} | {w['on']['units_per_commit']:.2f} | |")
    lines += ["", f"Of the writer's CPU per commit with the journal on: appends in the transaction "
              f"{w['on']['journal_append_cpu_us_per_commit']:.0f} µs"
              + (f", drafting and signing the head and making the receipts before the commit "
                 f"{w['on']['journal_before_commit_cpu_us_per_commit']:.0f} µs"
                 if "journal_before_commit_cpu_us_per_commit" in w["on"] else "")
              + ", after-commit (installing the checkpoint and attaching the receipts) "
              f"{w['on']['journal_after_commit_cpu_us_per_commit']:.0f} µs"
              + (f" ({w['on']['journal_after_commit_wall_us_per_commit']:.0f} µs wall)."
                 if "journal_after_commit_wall_us_per_commit" in w["on"] else ".")]
    if o.get("profile"):
        lines += ["", "Writer thread profile (cProfile, journal on; own time per commit):", "", "```"]
        lines += o["profile"]
        lines += ["```"]
    for note in o.get("notes", []):
        lines += ["", note]
    return lines


if __name__ == "__main__":
    sys.exit(main())
