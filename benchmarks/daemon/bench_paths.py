"""Deposit and read paths of the daemon, code against code: MB/s and CPU seconds per GiB.

    .venv/bin/python benchmarks/daemon/bench_paths.py                       # the working tree, 256 MiB
    .venv/bin/python benchmarks/daemon/bench_paths.py --baseline HEAD~1     # and an earlier commit, alternated
    .venv/bin/python benchmarks/daemon/bench_paths.py --mib 512 --rounds 3 --clients 4

Each variant is a copy of the ``vaultd`` package (``--baseline REV`` extracts REV's with ``git archive``
and places the built Rust extension of the working tree beside it). In every round each variant, in
turn, starts its own real ``vaultd serve --dev`` (mutual TLS, durable LMDB commits) and its own client
processes (``VaultClient`` of the same variant): they deposit ``--mib`` MiB of incompressible 8 MiB
files into one vault each, then read everything back with ``read_to`` into /dev/null (SHA-256
checked). Rounds alternate the order of the variants, so the machine's load falls on all of them.

Per variant and phase: MB/s (wall), the daemon's CPU seconds (utime + stime from /proc) and the
clients' (their rusage) per GiB. Writes ``benchmarks/results/daemon-paths.json`` and
``daemon-paths.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from vaultd_daemon import Daemon  # noqa: E402
MIB = 1 << 20
FILE = 8 * MIB


def keystream_pieces(seed: int, size: int) -> Any:
    """``size`` incompressible bytes determined by ``seed``, in 1 MiB pieces."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(b"bench-paths-%d" % seed).digest()
    enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
    zeros = bytes(MIB)
    left = size
    while left > 0:
        n = min(MIB, left)
        yield enc.update(zeros[:n])
        left -= n


# -- client process (runs with the variant's code on PYTHONPATH) -----------------------------------------

def worker(phase: str, address: str, data_dir: str, index: int, nbytes: int) -> None:
    from vaultd.client import VaultClient

    vault = f"supplier-paths-{index}"
    files = [(f"f{i:04d}", index * 10_000 + i) for i in range(max(1, nbytes // FILE))]
    with VaultClient.for_dev(address, data_dir, "permits", timeout=600) as c:
        c.wait_ready()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)  # after imports and the TLS handshake
        if phase == "ingest":
            c.create_vault(vault)
            for name, seed in files:
                c.deposit(vault, name, keystream_pieces(seed, FILE), size=FILE)
        else:
            with open(os.devnull, "wb") as sink:
                for name, _ in files:
                    c.read_to(vault, name, sink)  # SHA-256 of every byte checked against the object's
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
    print(json.dumps({"cpu": cpu, "bytes": len(files) * FILE}))


# -- the benchmark ---------------------------------------------------------------------------------------

def run_phase(src: Path, daemon: Daemon, data_dir: Path, phase: str, clients: int, total: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(src))
    cpu0 = daemon.cpu_seconds()
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", phase, daemon.address, str(data_dir), str(i),
                          str(total // clients)], cwd=src, env=env, stdout=subprocess.PIPE, text=True)
        for i in range(clients)
    ]
    outs = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"{phase} client failed with exit code {p.returncode}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - t0
    nbytes = sum(o["bytes"] for o in outs)
    gib = nbytes / (1 << 30)
    return {
        "MB/s": nbytes / MIB / wall,
        "daemon CPU s/GiB": (daemon.cpu_seconds() - cpu0) / gib,
        "client CPU s/GiB": sum(o["cpu"] for o in outs) / gib,
    }


def extract(rev: str, into: Path) -> Path:
    """REV's ``vaultd`` package, with the working tree's built Rust extension beside it."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "vaultd"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for so in (REPO / "vaultd").glob("_vaultcore*.so"):
        shutil.copy2(so, into / "vaultd" / so.name)
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256, help="MiB deposited and read per variant and round")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", action="append", default=[], metavar="REV",
                    help="also measure this commit's code (repeatable)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        phase, address, data_dir, index, nbytes = args.worker
        worker(phase, address, data_dir, int(index), int(nbytes))
        return 0

    total = args.mib * MIB
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="vaultd-bench-paths-") as tmp:
        variants = {"working tree": REPO}
        for rev in args.baseline:
            sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True,
                                 capture_output=True, text=True).stdout.strip()
            variants[f"{rev} ({sha})"] = extract(rev, Path(tmp) / f"src-{sha}")
        names = list(variants)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                src = variants[name]
                data_dir = Path(tmp) / f"data-{r}-{names.index(name)}"
                daemon = Daemon(data_dir, src=src, stop_timeout=60)
                try:
                    for phase in ("ingest", "read"):
                        m = run_phase(src, daemon, data_dir, phase, args.clients, total)
                        for k, v in m.items():
                            results.setdefault(name, {}).setdefault(f"{phase} {k}", []).append(v)
                        print(f"round {r + 1} {name:>24} {phase:>6}: " + ", ".join(f"{k} {v:.2f}" for k, v in m.items()),
                              flush=True)
                finally:
                    daemon.stop()
                    shutil.rmtree(data_dir, ignore_errors=True)

    cols = list(next(iter(results.values())))
    lines = [
        f"# Deposit and read paths ({args.mib} MiB of 8 MiB files, {args.clients} clients, {args.rounds} rounds, "
        f"medians; load average at the end {os.getloadavg()[0]:.1f})",
        "",
        "| variant | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{statistics.median(m[c]):.2f}" for c in cols) + " |")
    md = "\n".join(lines) + "\n"
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "daemon-paths.md").write_text(md)
    (args.out / "daemon-paths.json").write_text(json.dumps(
        {"mib": args.mib, "clients": args.clients, "rounds": args.rounds, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
