"""One daemon filled with many small objects across many vaults; latency as it grows.

    .venv/bin/python benchmarks/scale/bench_scale.py [--quick] [--max N] [--budget SECONDS]

Writes benchmarks/results/scale.json and scale.md. The real ``vaultd serve`` (``--dev``: TLS with
client certificates, durable commits) is filled through its public API only: ``CreateVault`` (one
call per vault) and ``DepositBatch`` (``VaultClient.deposit_many``: each item an independent deposit
with its own authorization, journal leaf and receipt, the items of a call committed together) from
4 client processes x 8 threads, each thread creating 20 vaults then depositing their 200 objects in
one call. Ten objects of 4 KiB (incompressible, unique) per vault, so 10^6 objects are 10^5 vaults.

At each milestone (10^4, 10^5, 10^6 objects, the largest bounded by ``--max`` and by the time
budget) filling pauses and one client measures, one call at a time, p50 and p99 of: deposit of a
new 4 KiB object into an existing vault (a single DepositSmall call, not a batch), stat, list (one
page of a vault) and read (whole object, checked) of objects chosen at random over everything stored
so far. It also records the fill rate, the daemon's CPU per object, its anonymous RSS, the data
folder's size (allocated bytes, and LMDB pages in use) per object and the machine's load average
(the machine is shared: latencies move with it).

Because the load moves latency as much as the size does, a second daemon (the control) is filled to
the first milestone's size and probed at every milestone call by call, alternately with the growing
one; the report gives p99 growth both as measured and against the control at the same moments, and
both daemons' minor and major page faults per probe call, the growing daemon's data file share in
the page cache (``fincore``) and the CPU its scheduled scrub took during the probes, and the
machine's proactive reclaim (DAMON ``pageout``), which evicts idle page cache. With ``--profile``, one more probe pass per
milestone runs under py-spy (``.venv/bin/py-spy``) and the shares of the core, store and journal
functions in the servicer's samples are reported.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from vaultd_daemon import Daemon  # noqa: E402
sys.path.insert(0, str(REPO))

PER_VAULT = 10
SIZE = 4096
PROCS = 4
THREADS = 8
VAULTS_PER_CALL = 20  # a thread creates this many vaults, then deposits their objects in one batch
MIB = 1 << 20


def vault_name(i: int) -> str:
    return f"citizen-{i:07d}"


def body(i: int, j: int) -> bytes:
    """The content of object j of vault i: unique and incompressible, re-creatable for checks."""
    import hashlib

    return hashlib.shake_256(b"scale-%d-%d" % (i, j)).digest(SIZE)


def client(address: str, data_dir: str) -> Any:
    from vaultd.client import VaultClient

    return VaultClient.for_dev(address, data_dir, "permits", timeout=300)


def fill_worker(args: tuple[str, str, int, int, int, float]) -> dict[str, Any]:
    """Create vaults lo..hi-1 and deposit their objects: this process takes every
    PROCS*THREADS-th group of VAULTS_PER_CALL vaults from group ``proc * THREADS``, one thread (with
    its own channel) per residue; each group is VAULTS_PER_CALL CreateVault calls, then one
    DepositBatch of their PER_VAULT * VAULTS_PER_CALL objects. Stops at ``deadline``."""
    from vaultd.client import DepositItem
    from vaultd.types import Receipt

    address, data_dir, lo, hi, proc, deadline = args
    clients = [client(address, data_dir) for _ in range(THREADS)]
    for c in clients:
        c.wait_ready(30)
    groups = range(lo, hi, VAULTS_PER_CALL)

    def run(t: int) -> int:
        c, n = clients[t], 0
        for g in groups[proc * THREADS + t::PROCS * THREADS]:
            if time.time() > deadline:
                break
            vaults = range(g, min(g + VAULTS_PER_CALL, hi))
            for i in vaults:
                c.create_vault(vault_name(i))
            items = [DepositItem(vault_name(i), f"doc/{j:02d}", body(i, j), request_id=f"fill-{i}-{j}")
                     for i in vaults for j in range(PER_VAULT)]
            results = c.deposit_many(items)
            bad = [(it.vault, it.name, r) for it, r in zip(items, results) if not isinstance(r, Receipt)]
            if bad:
                raise RuntimeError(f"{len(bad)} of {len(items)} deposits refused, first: {bad[0]}")
            n += len(items)
        return n

    with ThreadPoolExecutor(THREADS) as pool:
        made = sum(pool.map(run, range(THREADS)))
    for c in clients:
        c.close()
    return {"objects": made}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


Target = tuple[str, str, str, int]  # (key prefix, address, data dir, vaults)


def probe(targets: list[Target], ops: int, milestone: int) -> dict[str, float]:
    """p50/p99 (ms) of deposit, stat, list, read, one call at a time, on random existing objects of
    each target daemon. The targets take turns call by call (the order alternating), so that the
    machine's load at that moment falls on all of them alike."""
    rng = random.Random(milestone)
    out: dict[str, float] = {}
    clients = [client(address, data_dir) for _, address, data_dir, _ in targets]
    lat: list[dict[str, list[float]]] = [{"deposit": [], "stat": [], "list": [], "read": []} for _ in targets]
    try:
        for c in clients:
            c.wait_ready(30)
            c.stat(vault_name(0), "doc/00")  # warm the channel
        for k in range(ops):
            order = list(range(len(targets)))
            if k % 2:
                order.reverse()
            for n in order:
                c, vaults, lt = clients[n], targets[n][3], lat[n]
                i, j = rng.randrange(vaults), rng.randrange(PER_VAULT)
                t = time.perf_counter()
                c.deposit(vault_name(i), f"probe/{milestone}/{k}", body(i, 1000 + k))
                lt["deposit"].append(time.perf_counter() - t)
                t = time.perf_counter()
                st = c.stat(vault_name(i), f"doc/{j:02d}")
                lt["stat"].append(time.perf_counter() - t)
                assert st.size == SIZE
                t = time.perf_counter()
                page, _ = c.list_page(vault_name(rng.randrange(vaults)), "doc/", page_size=100)
                lt["list"].append(time.perf_counter() - t)
                assert len(page) == PER_VAULT
                i, j = rng.randrange(vaults), rng.randrange(PER_VAULT)
                t = time.perf_counter()
                data = c.read_bytes(vault_name(i), f"doc/{j:02d}")
                lt["read"].append(time.perf_counter() - t)
                assert data == body(i, j), f"{vault_name(i)}/doc/{j:02d} read back differently"
    finally:
        for c in clients:
            c.close()
    for (prefix, *_), lt in zip(targets, lat):
        for op, xs in lt.items():
            out[f"{prefix}{op} p50 ms"] = pct(xs, 50) * 1000
            out[f"{prefix}{op} p99 ms"] = pct(xs, 99) * 1000
    return out


def faults(d: Daemon) -> tuple[int, int]:
    """The daemon's (minor, major) page faults so far: a first touch of an LMDB page in its map is a
    minor fault, a page that must come from the disk a major one."""
    with open(f"/proc/{d.proc.pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[7]), int(parts[9])


def resident(data_dir: Path) -> float:
    """The share of the LMDB data file in the page cache (``fincore``), NaN where it cannot say."""
    import subprocess

    path = data_dir / "store" / "data.mdb"
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", str(path)],
                             capture_output=True, text=True, check=True).stdout.split()
        return int(out[0]) / max(1, int(out[1]))
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return float("nan")


def thread_cpu(d: Daemon) -> dict[str, float]:
    """CPU seconds (user + system) of each of the daemon's threads so far, by thread id."""
    return {tid: u + s for tid, (u, s) in d.thread_cpu().items()}


def scrub_seconds(d: Daemon, before: dict[str, float], after: dict[str, float]) -> float | None:
    """CPU seconds the daemon's scrub thread took between two ``thread_cpu`` readings: 0.0 when no
    scrub thread is found (none scheduled yet, or none running); None without py-spy to name the
    threads."""
    names = d.thread_names()
    if not names:
        return None
    return sum(after[t] - before.get(t, 0.0) for t, n in names.items() if n == "vaultd-scrub" and t in after)


def proactive_reclaim() -> str | None:
    """The machine's DAMON schemes that page out memory left idle (``/sys/kernel/mm/damon``):
    they evict page cache (the LMDB data file among it) without any memory pressure."""
    root = Path("/sys/kernel/mm/damon/admin/kdamonds")
    found = []
    for kd in sorted(root.glob("[0-9]*")):
        try:
            if (kd / "state").read_text().strip() != "on":
                continue
            for ctx in sorted((kd / "contexts").glob("[0-9]*")):
                aggr_us = int((ctx / "monitoring_attrs/intervals/aggr_us").read_text())
                for sch in sorted((ctx / "schemes").glob("[0-9]*")):
                    if (sch / "action").read_text().strip() != "pageout":
                        continue
                    age = int((sch / "access_pattern/age/min").read_text())
                    quota = int((sch / "quotas/bytes").read_text())
                    reset = int((sch / "quotas/reset_interval_ms").read_text())
                    found.append(f"pageout of memory idle for {age * aggr_us / 1e6:.0f} s"
                                 + (f", up to {quota >> 20} MiB per {reset / 1000:g} s" if quota else ""))
        except (OSError, ValueError):
            continue
    return "; ".join(found) or None


def profile(d: Daemon, target: Target, ops: int, milestone: int) -> dict[str, float]:
    """One more probe pass (not measured) with py-spy sampling the daemon (wall clock, idle threads
    left out): of the samples in a VaultServicer method, the share (%) of the functions that take
    the most, inclusive."""
    import collections
    import re
    import signal
    import subprocess

    spy = Path(sys.executable).with_name("py-spy")
    raw = d.data_dir.parent / f"profile-{milestone}.txt"
    proc = subprocess.Popen([str(spy), "record", "-p", str(d.proc.pid), "-r", "1000", "--nonblocking", "-f", "raw",
                             "-o", str(raw), "-d", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    probe([target], ops, milestone + 1)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    total, incl = 0, collections.Counter[str]()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "VaultServicer." not in stack:
            continue
        total += int(n)
        for f in {re.sub(r":\d+\)", ")", f) for f in stack.split(";")}:
            incl[f] += int(n)
    return {f: round(100 * n / total, 1) for f, n in incl.most_common(80)} if total else {}


def store_sizes(data_dir: Path) -> tuple[int, int]:
    """(allocated bytes of the data folder, LMDB pages in use x page size)."""
    import lmdb

    total = 0
    for dirpath, _, names in os.walk(data_dir):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except FileNotFoundError:
                pass
    env = lmdb.open(str(data_dir / "store"), readonly=True, lock=False, max_dbs=32)
    try:
        used = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    finally:
        env.close()
    return total, int(used)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="milestones 10^3 and 10^4, fewer probes")
    ap.add_argument("--max", type=float, default=1e6, help="largest milestone (objects), default 10^6")
    ap.add_argument("--budget", type=float, default=3600.0,
                    help="seconds of filling at most; a milestone that cannot be reached is reported as such")
    ap.add_argument("--ops", type=int, default=None, help="probe calls per operation and milestone (default 1000)")
    ap.add_argument("--profile", action="store_true",
                    help="after each milestone's probes, one more pass (not measured) under py-spy; its top "
                         "functions go into the results")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--tmp", type=Path, default=None)
    a = ap.parse_args()
    milestones = [10**3, 10**4] if a.quick else [m for m in (10**4, 10**5, 10**6) if m <= a.max]
    ops = a.ops or (100 if a.quick else 1000)
    results: dict[str, Any] = {"milestones": []}
    ctx = mp.get_context("spawn")
    t_start = time.time()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vaultd-scale-", dir=a.tmp) as tmp:
        d = Daemon(Path(tmp) / "data", stop_timeout=300)
        # The control: a second daemon that stays at the first milestone's size, probed call by call
        # alternately with the growing one, so that what the shared machine's load does to latency
        # is seen in both and the growing one's latency can be compared with it at each milestone.
        ctl = Daemon(Path(tmp) / "control", stop_timeout=300)
        try:
            ctl_vaults = milestones[0] // PER_VAULT
            with ctx.Pool(PROCS) as pool:
                pool.map(fill_worker, [(ctl.address, str(ctl.data_dir), 0, ctl_vaults, p, time.time() + 3600)
                                       for p in range(PROCS)])
            objects = 0
            vaults_done = 0
            fill_seconds = 0.0
            fill_cpu = 0.0
            for m in milestones:
                want_vaults = m // PER_VAULT
                # fill rate so far predicts whether this milestone fits in what is left of the budget
                left = a.budget - fill_seconds
                if objects and (m - objects) / (objects / fill_seconds) > left * 1.1:
                    results["not reached"] = {
                        "milestone": m, "objects": objects,
                        "fill rate objects/s": objects / fill_seconds,
                        "estimated seconds": (m - objects) / (objects / fill_seconds),
                        "budget left seconds": left,
                    }
                    print(f"{m} objects would take {(m - objects) / (objects / fill_seconds):.0f} s at "
                          f"{objects / fill_seconds:.0f}/s; {left:.0f} s of the budget are left: stopping",
                          flush=True)
                    break
                t0, cpu0 = time.time(), d.cpu_seconds()
                deadline = t0 + left
                with ctx.Pool(PROCS) as pool:
                    made = pool.map(fill_worker, [(d.address, str(d.data_dir), vaults_done, want_vaults, p, deadline)
                                                  for p in range(PROCS)])
                seconds = time.time() - t0
                fill_seconds += seconds
                fill_cpu += d.cpu_seconds() - cpu0
                n = sum(r["objects"] for r in made)
                objects += n
                if n < (want_vaults - vaults_done) * PER_VAULT:
                    results["not reached"] = {"milestone": m, "objects": objects,
                                              "fill rate objects/s": objects / fill_seconds,
                                              "budget seconds": a.budget}
                    print(f"budget spent at {objects} objects", flush=True)
                    break
                vaults_done = want_vaults
                disk, used = store_sizes(d.data_dir)
                row: dict[str, Any] = {
                    "objects": objects, "vaults": vaults_done,
                    "fill objects/s (this step)": n / seconds,
                    "fill daemon CPU ms/object (this step)": (d.cpu_seconds() - cpu0) / n * 1000,
                    "data folder bytes/object": disk / objects, "LMDB used bytes/object": used / objects,
                    "daemon RssAnon MiB": d.anon_rss() / MIB,
                    "fill seconds (this step)": seconds,
                    "load average 1/5/15 min (after the step)": [round(x, 2) for x in os.getloadavg()],
                }
                target: Target = ("", d.address, str(d.data_dir), vaults_done)
                row["LMDB data file resident before the probes"] = resident(d.data_dir)
                f0, cf0, threads0 = faults(d), faults(ctl), thread_cpu(d)
                row.update(probe([target, ("control ", ctl.address, str(ctl.data_dir), ctl_vaults)], ops, m))
                f1, cf1, threads1 = faults(d), faults(ctl), thread_cpu(d)
                row["scrub thread CPU seconds during the probes"] = scrub_seconds(d, threads0, threads1)
                row["LMDB data file resident after the probes"] = resident(d.data_dir)
                row["probe page faults per call, minor/major"] = [(f1[0] - f0[0]) / (4 * ops), (f1[1] - f0[1]) / (4 * ops)]
                row["control probe page faults per call, minor/major"] = [(cf1[0] - cf0[0]) / (4 * ops),
                                                                          (cf1[1] - cf0[1]) / (4 * ops)]
                if a.profile:
                    row["profile, % of daemon samples (inclusive)"] = profile(d, target, max(50, ops // 2), m)
                results["milestones"].append(row)
                print(json.dumps(row), flush=True)
            results["fill objects/s"] = objects / fill_seconds if fill_seconds else 0.0
            results["fill daemon CPU ms/object"] = fill_cpu / objects * 1000 if objects else 0.0
        finally:
            d.stop()
            ctl.stop()
    ms = results["milestones"]
    if len(ms) >= 2:
        for op in ("deposit", "stat", "list", "read"):
            results[f"{op} p99 ratio last/first"] = ms[-1][f"{op} p99 ms"] / ms[0][f"{op} p99 ms"]
            # each milestone against the control measured at the same moment, last against first
            rel = [r[f"{op} p99 ms"] / r[f"control {op} p99 ms"] for r in ms]
            results[f"{op} p99 ratio last/first, against the control"] = rel[-1] / rel[0]
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "quick": a.quick,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "object bytes": SIZE,
            "objects per vault": PER_VAULT, "fill clients": f"{PROCS} processes x {THREADS} threads",
            "probe calls per op": ops, "budget seconds": a.budget, "total seconds": time.time() - t_start,
            "control objects": milestones[0],
            "fill calls": f"CreateVault per vault, DepositBatch of {PER_VAULT * VAULTS_PER_CALL} objects",
            "load average 1/5/15 min at start": [round(x, 2) for x in load_start],
            "load average 1/5/15 min at end": [round(x, 2) for x in os.getloadavg()],
            "proactive reclaim": proactive_reclaim()}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "scale.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        "# Scale: one daemon, many small objects", "",
        f"`python benchmarks/scale/bench_scale.py{' --quick' if a.quick else ''}` on {meta['cpus']} CPUs, "
        f"Python {meta['python']}, {meta['when']}. Real `vaultd serve` over mutual TLS, durable commits; filled "
        f"through the public API, CreateVault (one call per vault) and DepositBatch ({PER_VAULT * VAULTS_PER_CALL} "
        f"objects of {VAULTS_PER_CALL} vaults per call, each item its own deposit, leaf and receipt) from "
        f"{meta['fill clients']}, {PER_VAULT} objects of {SIZE} B per vault; probes one call at a time "
        f"({ops} per operation, the deposit probe a single DepositSmall), random objects. Load average "
        f"(1/5/15 min) {'/'.join(f'{x:.1f}' for x in meta['load average 1/5/15 min at start'])} at the start, "
        f"{'/'.join(f'{x:.1f}' for x in meta['load average 1/5/15 min at end'])} at the end (2 shared cores).", "",
        "| objects | vaults | fill/s | daemon CPU ms/object | deposit p50/p99 ms | stat p50/p99 ms | "
        "list p50/p99 ms | read p50/p99 ms | data folder B/object | LMDB used B/object | daemon RssAnon MiB "
        "| load 1 min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ms:
        lines.append(
            f"| {r['objects']:,} | {r['vaults']:,} | {r['fill objects/s (this step)']:.0f} | "
            f"{r['fill daemon CPU ms/object (this step)']:.2f} | "
            + " | ".join(f"{r[op + ' p50 ms']:.1f} / {r[op + ' p99 ms']:.1f}" for op in ("deposit", "stat", "list", "read"))
            + f" | {r['data folder bytes/object']:.0f} | {r['LMDB used bytes/object']:.0f} | {r['daemon RssAnon MiB']:.0f}"
            f" | {r['load average 1/5/15 min (after the step)'][0]:.1f} |")
    ops4 = ("deposit", "stat", "list", "read")
    lines += ["", f"The control: a second daemon of {milestones[0]:,} objects, probed at the same moments (call "
              "by call, alternately with the growing one):", "",
              "| objects (growing daemon) | " + " | ".join(f"control {op} p50/p99 ms" for op in ops4)
              + " | " + " | ".join(f"{op} p99 / control p99" for op in ops4) + " |",
              "|---" * 9 + "|"]
    for r in ms:
        lines.append(f"| {r['objects']:,} | "
                     + " | ".join(f"{r['control ' + op + ' p50 ms']:.1f} / {r['control ' + op + ' p99 ms']:.1f}"
                                  for op in ops4) + " | "
                     + " | ".join(f"{r[op + ' p99 ms'] / r['control ' + op + ' p99 ms']:.2f}" for op in ops4) + " |")
    if ms and "probe page faults per call, minor/major" in ms[0]:
        lines += ["", "Daemon page faults per probe call (minor / major), growing daemon against the control: "
                  + "; ".join(f"{r['objects']:,} objects {r['probe page faults per call, minor/major'][0]:.1f} / "
                              f"{r['probe page faults per call, minor/major'][1]:.2f} against "
                              f"{r['control probe page faults per call, minor/major'][0]:.1f} / "
                              f"{r['control probe page faults per call, minor/major'][1]:.2f}" for r in ms) + "."]
    if ms and "LMDB data file resident before the probes" in ms[0]:
        lines += ["", "The growing daemon's LMDB data file in the page cache (`fincore`) before / after its "
                  "probes, and the CPU its scheduled scrub (first pass 10 minutes after the start; it gives "
                  "way to calls) took during them: "
                  + "; ".join(f"{r['objects']:,} objects {100 * r['LMDB data file resident before the probes']:.0f}% / "
                              f"{100 * r['LMDB data file resident after the probes']:.0f}%, scrub "
                              + ("not known (no py-spy)" if r.get("scrub thread CPU seconds during the probes") is None
                                 else f"{r['scrub thread CPU seconds during the probes']:.1f} s")
                              for r in ms) + "."]
    if meta["proactive reclaim"]:
        lines += ["", f"This machine reclaims idle memory on its own (DAMON: {meta['proactive reclaim']}), so "
                  "the parts of the data file that the probes do not touch often leave the page cache whatever "
                  "the free memory; a probe that lands on them reads the disk."]
    if len(ms) >= 2:
        lines += ["", f"p99 at {ms[-1]['objects']:,} against {ms[0]['objects']:,} objects (target at most 1.5x): "
                  + ", ".join(f"{op} {results[f'{op} p99 ratio last/first']:.2f}x" for op in ops4)
                  + "; each against the control measured at the same moment (the load's share taken out): "
                  + ", ".join(f"{op} {results[f'{op} p99 ratio last/first, against the control']:.2f}x" for op in ops4)
                  + "."]
    prof = [r for r in ms if "profile, % of daemon samples (inclusive)" in r]
    if prof:
        lines += ["", "Where the daemon spends the probe calls (py-spy over an extra probe pass after each "
                  "milestone's measured one, wall clock, idle threads left out; % of the samples inside a "
                  "VaultServicer method, inclusive; the 12 largest of the core, store and journal):", "",
                  "| function | " + " | ".join(f"{r['objects']:,}" for r in prof) + " |",
                  "|---" * (len(prof) + 1) + "|"]
        shares = [r["profile, % of daemon samples (inclusive)"] for r in prof]
        below = ("vaultd/core/", "vaultd/store/", "vaultd/journal/", "vaultd/crypto")
        names = sorted({f for p in shares for f in p if any(b in f for b in below)},
                       key=lambda f: -max(p.get(f, 0.0) for p in shares))[:12]
        for f in names:
            lines.append(f"| `{f}` | " + " | ".join(f"{p.get(f, 0.0):.1f}" for p in shares) + " |")
    if "not reached" in results:
        nr = results["not reached"]
        lines += ["", f"Not reached: {nr['milestone']:,} objects. Stopped at {nr['objects']:,} objects; measured "
                  f"fill rate {nr['fill rate objects/s']:.0f} objects/s"
                  + (f", so {nr['milestone']:,} would need about {nr['estimated seconds'] / 60:.0f} more minutes "
                     f"(budget left {nr['budget left seconds']:.0f} s)." if "estimated seconds" in nr else ".")]
    if ms and ms[-1]["objects"] < 10**6 and "not reached" not in results:
        rate = ms[-1]["fill objects/s (this step)"]
        results["10^6 estimate seconds"] = (10**6 - ms[-1]["objects"]) / rate
        lines += ["", f"10^6 objects not attempted (largest milestone {ms[-1]['objects']:,}): at the last measured "
                  f"fill rate of {rate:.0f} objects/s the remaining {10**6 - ms[-1]['objects']:,} objects would "
                  f"take about {results['10^6 estimate seconds'] / 60:.0f} minutes."]
        (a.out / "scale.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    md = "\n".join(lines) + "\n"
    (a.out / "scale.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
