"""vaultd against restic and borg on the same data set, and against the ceilings of this machine.

    .venv/bin/python benchmarks/peers/bench_peers.py [--quick] [--gib N] [--runs N]

Writes benchmarks/results/peers.json, peers.md and peers.png. In each round (``--runs``, at least
3 by default) every system starts from an empty repository, in a rotating order (interleaved):

- ``vaultd``: the real ``vaultd serve`` process (``--dev``: TLS with client certificates, durable
  LMDB commits), the files deposited through gRPC by ``VaultClient`` from 4 client processes into
  one vault (so that duplicates deduplicate, as in one restic or borg repository);
- ``restic (off)`` / ``restic (auto)``: ``restic backup`` into a local repository of format
  version 2 with ``--compression off`` and the default ``auto``;
- ``borg (none)`` / ``borg (lz4)``: ``borg create`` into a ``repokey-blake2`` repository with
  ``-C none`` and the default ``lz4``.

Phases: full ingest; incremental (5% of the files get 1 MiB overwritten in their middle; vaultd
deposits those files again as new versions, the peers back the whole tree up again and find the
changed files themselves); full restore of the latest state to files (vaultd: ``read_to`` from 4
clients). Every restored file is compared with the expected content (BLAKE3) after the timing.

Per phase and system: MB/s (MiB of the data set per second of wall time), CPU seconds (the
children's rusage: the peers' processes; vaultd's client processes and the daemon's utime+stime),
peak RSS (``VmHWM``; ``ru_maxrss`` would count the forking parent) and peak anonymous RSS
(``RssAnon``), both from /proc/PID/status sampled every 20 ms (for vaultd the daemon and the
largest client process separately), and bytes on disk
(allocated blocks of the repository or data folder) against the unique bytes of the data set.

Ceilings, measured in the same rounds: ``lmdb ceiling`` writes values of vaultd's average chunk
size (256 KiB + nonce and tag) into a fresh LMDB environment opened as vaultd opens it (sync,
metasync, no writemap) in transactions of the writer's largest batch (32 MiB), one durable commit
each; ``lmdb ceiling (8 MiB txn)`` the same in 8 MiB transactions (about what the writer commits at
a time when 4 clients deposit files of 1 to 10 MiB). The LMDB target is measured against the faster
of the two, the most LMDB does here with these values;
``grpc sink ceiling`` streams the same files over gRPC with mutual TLS from 4 client processes to a
server (same thread-pool server model and options as vaultd's) that discards them;
``disk durable ceiling`` appends the data set's unique bytes to plain files in 32 MiB writes, each
followed by ``fdatasync`` (what any system that acknowledges durable writes pays on this disk, with
no database, no copy and no crypto); ``core ceiling`` runs the Rust core's ingest (cut, identify,
seal, SHA-256) over the data set in process, storing nothing; ``core open ceiling`` opens every
chunk of the data set in process (AES-GCM tag, keyed BLAKE3 against the id; sealed beforehand,
outside the timing) and computes each file's SHA-256, the checks of a verified restore (the
daemon opens, the client compares the SHA-256); ``grpc source ceiling`` streams the
files back over gRPC with mutual TLS from such a server, reading them from the page cache, to 4
client processes that write them to files and check nothing (a restore with nothing to look up,
open or verify).

Where a target asks for more than this machine allows, the report says so, with the bound:
ingest cannot outrun the durable writes of its unique bytes (duplicates need none), nor the CPUs
doing only the work the ceilings did on the same bytes (upload, core, durable writes); a restore
over gRPC cannot outrun the transport that carries it, nor the CPUs doing only that transport's
work and the checks of a verified restore (chunks opened, files' SHA-256).

The data set: files of 1 to 10 MiB (AES-CTR keystreams under keys derived from a fixed seed:
incompressible, about 3 GB/s to make), about 8% of them exact copies of earlier files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from vaultd_daemon import Daemon  # noqa: E402
sys.path.insert(0, str(REPO))

MIB = 1 << 20
PIECE = 1 << 20
CLIENTS = 4
SEED = 20261123
PASSWORD = "vaultd-bench-peers"  # the peers' repository password (a throwaway repository)
CEILINGS = ["lmdb ceiling", "lmdb ceiling (8 MiB txn)", "disk durable ceiling", "core ceiling", "core open ceiling",
            "grpc sink ceiling", "grpc source ceiling"]
SYSTEMS = ["vaultd", "restic (off)", "restic (auto)", "borg (none)", "borg (lz4)"]


# -- data set ----------------------------------------------------------------------------------------

def keystream(key: bytes, size: int) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(hashlib.sha256(key).digest()), modes.CTR(b"\0" * 16)).encryptor()
    return enc.update(bytes(size))


def blake3_of(data: bytes | Path) -> str:
    import blake3

    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if isinstance(data, Path):
        with open(data, "rb") as f:
            while piece := f.read(16 * MIB):
                h.update(piece)
    else:
        h.update(data)
    return h.hexdigest()


def make_dataset(root: Path, total: int) -> dict[str, Any]:
    """Files of 1..10 MiB up to ``total`` bytes, ~8% exact duplicates of earlier files; returns
    the plan: relative path -> (content key, size, blake3)."""
    rng = random.Random(SEED)
    files: dict[str, dict[str, Any]] = {}
    contents: list[tuple[str, int, str]] = []
    made = 0
    i = 0
    while made < total:
        if contents and rng.random() < 0.08:
            key, size, digest = rng.choice(contents)
            data = keystream(key.encode(), size)
        else:
            size = min(rng.randint(1 * MIB, 10 * MIB), max(MIB, total - made))
            key = f"file-{SEED}-{i}"
            data = keystream(key.encode(), size)
            digest = blake3_of(data)
            contents.append((key, size, digest))
        rel = f"d{i % 16:02d}/f{i:05d}.bin"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[rel] = {"key": key, "size": size, "blake3": digest}
        made += size
        i += 1
    unique = sum(s for _, s, _ in contents)
    return {"files": files, "bytes": made, "unique": unique, "duplicates": len(files) - len(contents)}


def changes(plan: dict[str, Any]) -> list[str]:
    rng = random.Random(SEED + 1)
    names = sorted(plan["files"])
    return sorted(rng.sample(names, max(1, round(len(names) * 0.05))))


def apply_changes(root: Path, plan: dict[str, Any], changed: list[str]) -> dict[str, bytes]:
    """Overwrite 1 MiB in the middle of each changed file; returns the overwritten bytes."""
    saved = {}
    for rel in changed:
        size = plan["files"][rel]["size"]
        at = max(0, size // 2 - MIB // 2)
        with open(root / rel, "r+b") as f:
            f.seek(at)
            saved[rel] = f.read(MIB)
            f.seek(at)
            f.write(keystream(f"change-{rel}".encode(), len(saved[rel])))
    return saved


def revert_changes(root: Path, plan: dict[str, Any], saved: dict[str, bytes]) -> None:
    for rel, old in saved.items():
        size = plan["files"][rel]["size"]
        with open(root / rel, "r+b") as f:
            f.seek(max(0, size // 2 - MIB // 2))
            f.write(old)


def verify_tree(out: Path, expected: dict[str, str]) -> int:
    """Compare every restored file with its expected BLAKE3; returns the count, raises on a miss."""
    for rel, want in expected.items():
        p = out / rel
        if not p.is_file():
            raise AssertionError(f"restore lacks {rel}")
        if blake3_of(p) != want:
            raise AssertionError(f"restore of {rel} differs from the original")
    return len(expected)


def disk_bytes(path: Path) -> int:
    """Allocated bytes under ``path`` (what ``du`` counts: sparse holes are not disk)."""
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


# -- process measurement -----------------------------------------------------------------------------

def status_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status in bytes (``RssAnon``, ``VmHWM``), 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def anon_rss(pid: int) -> int:
    return status_kib(pid, "RssAnon")


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Peak RssAnon of a set of processes (and their children), every 20 ms; and their peak RSS
    (``VmHWM``, which starts afresh at exec, unlike ``ru_maxrss`` that keeps the forking parent's)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = list(pids)
        self.peak = {p: 0 for p in pids}
        self.hwm = {p: 0 for p in pids}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _tree(self, pid: int) -> list[int]:
        out = [pid]
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                for c in f.read().split():
                    out += self._tree(int(c))
        except (FileNotFoundError, ProcessLookupError):
            pass
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for p in self.pids:
                tree = self._tree(p)
                self.peak[p] = max(self.peak[p], sum(anon_rss(q) for q in tree))
                self.hwm[p] = max(self.hwm[p], sum(status_kib(q, "VmHWM") for q in tree))

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._t.join()
        return self.peak


def run_tool(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, Any]:
    """Run one peer command; wall time, its rusage (CPU s), peak RSS (sampled VmHWM) and sampled
    peak RssAnon."""
    log = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=log)
    s = Sampler([p.pid])
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    peak = s.stop()[p.pid]
    hwm = s.hwm[p.pid]
    if p.returncode not in (0,):
        log.seek(0)
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {log.read()[-2000:].decode(errors='replace')}")
    return {"seconds": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss": hwm, "anon": peak}


# -- worker processes (vaultd clients, gRPC sink) ----------------------------------------------------

def worker_main(a: argparse.Namespace) -> int:
    """A client process: connect, say ready, wait for a line on stdin, work, print a JSON result."""
    job = json.loads(Path(a.worker_job).read_text())
    root = Path(job["root"])
    if a.worker == "sink-server":
        return sink_server(job)
    if a.worker in ("sink", "source"):
        import grpc

        pki = Path(job["data_dir"]) / "pki"
        creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "svc-permits-key.pem").read_bytes(),
                                             (pki / "svc-permits.pem").read_bytes())
        # the options VaultClient sets for large messages and for streamed responses
        ch = grpc.secure_channel(job["address"], creds, [
            ("grpc.max_send_message_length", PIECE + (128 << 10)),
            ("grpc.max_receive_message_length", PIECE + (128 << 10)),
            ("SingleThreadedUnaryStream", 1)])  # grpc.experimental.ChannelOptions.SingleThreadedUnaryStream
        grpc.channel_ready_future(ch).result(timeout=30)
        upload: Any = ch.stream_unary("/bench.Sink/Upload", request_serializer=None, response_deserializer=None)
        download: Any = ch.unary_stream("/bench.Sink/Download", request_serializer=None, response_deserializer=None)
        print("ready", flush=True)
        sys.stdin.readline()
        ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        n = 0
        for rel in job["files"]:
            if a.worker == "sink":
                with open(root / rel, "rb") as f:
                    n += int(upload(iter(lambda: f.read(PIECE), b""), timeout=600).decode())
            else:
                target = Path(job["out"]) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as f:
                    for piece in download(rel.encode(), timeout=600):
                        n += f.write(piece)
        ch.close()
    else:
        from vaultd.client import VaultClient

        c = VaultClient.for_dev(job["address"], job["data_dir"], "permits", timeout=600)
        c.wait_ready(30)
        print("ready", flush=True)
        sys.stdin.readline()
        ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        n = 0
        if a.worker == "deposit":
            for rel in job["files"]:
                n += c.deposit(job["vault"], rel, root / rel).stat.size
        else:
            out = Path(job["out"])
            for rel in job["files"]:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                n += c.read_to(job["vault"], rel, out / rel).size
        c.close()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": time.perf_counter() - t0, "bytes": n,
                      "cpu": ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime}), flush=True)
    return 0


def sink_server(job: dict[str, Any]) -> int:
    """gRPC server (the daemon's model and options, TLS with client certificates) that counts the
    bytes of a client stream and keeps none (Upload), or streams a file of the data set back in
    1 MiB messages, read from the page cache (Download)."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from vaultd.transport.server import MAX_RECEIVE, ServerLimits

    root = Path(job["root"]).resolve()

    def upload(it: Any, ctx: Any) -> bytes:
        return str(sum(len(m) for m in it)).encode()

    def download(rel: bytes, ctx: Any) -> Any:
        path = (root / rel.decode()).resolve()
        if root not in path.parents:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a file of the data set")
        with open(path, "rb") as f:
            yield from iter(lambda: f.read(PIECE), b"")

    limits = ServerLimits()
    server = grpc.server(ThreadPoolExecutor(limits.workers), options=limits.options(),
                         maximum_concurrent_rpcs=limits.workers)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Sink", {
        "Upload": grpc.stream_unary_rpc_method_handler(upload, request_deserializer=None, response_serializer=None),
        "Download": grpc.unary_stream_rpc_method_handler(download, request_deserializer=None,
                                                         response_serializer=None)})])
    pki = Path(job["data_dir"]) / "pki"
    creds = grpc.ssl_server_credentials([((pki / "server-key.pem").read_bytes(), (pki / "server.pem").read_bytes())],
                                        root_certificates=(pki / "ca.pem").read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    assert MAX_RECEIVE > PIECE
    server.start()
    print(f"serving on 127.0.0.1:{port}", flush=True)
    sys.stdin.readline()
    server.stop(1).wait()
    return 0


def spawn_worker(kind: str, job: dict[str, Any], tmp: Path) -> subprocess.Popen[str]:
    jf = tmp / f"job-{kind}-{os.getpid()}-{time.monotonic_ns()}.json"
    jf.write_text(json.dumps(job))
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--worker-job", str(jf)],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def run_clients(kind: str, jobs: list[dict[str, Any]], tmp: Path, server_pid: int | None) -> dict[str, Any]:
    """Start the client processes, wait until all are connected, then time their work."""
    procs = [spawn_worker(kind, j, tmp) for j in jobs]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{kind} client did not start: {line!r}")
    s = Sampler([p.pid for p in procs] + ([server_pid] if server_pid else []))
    cpu0 = proc_cpu(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if p.wait() != 0 or not line:
            raise RuntimeError(f"{kind} client failed")
        results.append(json.loads(line))
    wall = time.perf_counter() - t0
    cpu_server = (proc_cpu(server_pid) - cpu0) if server_pid else 0.0
    peak = s.stop()
    return {
        "seconds": wall, "bytes": sum(r["bytes"] for r in results),
        "cpu clients": sum(r["cpu"] for r in results), "cpu server": cpu_server,
        "anon client": max(peak[p.pid] for p in procs), "anon clients sum": sum(peak[p.pid] for p in procs),
        "anon server": peak[server_pid] if server_pid else 0,
        "hwm server": s.hwm[server_pid] if server_pid else 0,
    }


# -- the systems -----------------------------------------------------------------------------------

def split(files: list[str]) -> list[list[str]]:
    return [files[i::CLIENTS] for i in range(CLIENTS)]


def run_vaultd(root: Path, work: Path, plan: dict[str, Any], changed: list[str], out: Path) -> dict[str, Any]:
    d = Daemon(work / "vaultd")
    res: dict[str, Any] = {}
    try:
        from vaultd.client import VaultClient

        with VaultClient.for_dev(d.address, d.data_dir, "permits") as c:
            c.wait_ready(30)
            c.create_vault("supplier-bench")
        base = {"root": str(root), "address": d.address, "data_dir": str(d.data_dir), "vault": "supplier-bench",
                "out": str(out)}
        names = sorted(plan["files"])
        for phase, kind, files in (("ingest", "deposit", names), ("incremental", "deposit", changed),
                                   ("restore", "read", names)):
            if phase == "incremental":
                res["ingest"]["disk"] = disk_bytes(d.data_dir)
                saved = apply_changes(root, plan, changed)
            r = run_clients(kind, [dict(base, files=f) for f in split(files)], work, d.proc.pid)
            if phase == "incremental":
                res["disk after incremental"] = disk_bytes(d.data_dir)
            res[phase] = {"seconds": r["seconds"], "cpu": r["cpu clients"] + r["cpu server"],
                          "cpu daemon": r["cpu server"], "cpu clients": r["cpu clients"],
                          "anon": r["anon server"] + r["anon client"], "anon daemon": r["anon server"],
                          "anon client": r["anon client"], "maxrss": r["hwm server"]}
        res["changed saved"] = saved
    finally:
        d.stop()
    return res


def peer_env(work: Path) -> dict[str, str]:
    return dict(os.environ, RESTIC_PASSWORD=PASSWORD, BORG_PASSPHRASE=PASSWORD,
                RESTIC_CACHE_DIR=str(work / "restic-cache"), BORG_BASE_DIR=str(work / "borg-base"),
                BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", GOMAXPROCS=str(os.cpu_count() or 2))


def run_restic(root: Path, work: Path, plan: dict[str, Any], changed: list[str], out: Path,
               compression: str) -> dict[str, Any]:
    env, repo = peer_env(work), work / "restic-repo"
    subprocess.run(["restic", "-r", str(repo), "init", "--repository-version", "2"], env=env, check=True,
                   capture_output=True)
    backup = ["restic", "-r", str(repo), "backup", "--host", "bench", "--compression", compression, "."]
    res: dict[str, Any] = {"ingest": run_tool(backup, env, cwd=root)}
    res["ingest"]["disk"] = disk_bytes(repo)
    res["changed saved"] = apply_changes(root, plan, changed)
    res["incremental"] = run_tool(backup, env, cwd=root)
    res["disk after incremental"] = disk_bytes(repo)
    res["restore"] = run_tool(["restic", "-r", str(repo), "restore", "latest", "--target", str(out)], env)
    return res


def run_borg(root: Path, work: Path, plan: dict[str, Any], changed: list[str], out: Path,
             compression: str | None) -> dict[str, Any]:
    env, repo = peer_env(work), work / "borg-repo"
    subprocess.run(["borg", "init", "--encryption", "repokey-blake2", str(repo)], env=env, check=True,
                   capture_output=True)
    comp = ["-C", compression] if compression else []
    res: dict[str, Any] = {"ingest": run_tool(["borg", "create", *comp, f"{repo}::full", "."], env, cwd=root)}
    res["ingest"]["disk"] = disk_bytes(repo)
    res["changed saved"] = apply_changes(root, plan, changed)
    res["incremental"] = run_tool(["borg", "create", *comp, f"{repo}::incr", "."], env, cwd=root)
    res["disk after incremental"] = disk_bytes(repo)
    out.mkdir(parents=True, exist_ok=True)
    res["restore"] = run_tool(["borg", "extract", f"{repo}::incr"], env, cwd=out)
    return res


def run_system(name: str, root: Path, work: Path, plan: dict[str, Any], changed: list[str]) -> dict[str, Any]:
    out = work / "restore"
    expected = {rel: f["blake3"] for rel, f in plan["files"].items()}
    res: dict[str, Any] = {}
    try:
        if name == "vaultd":
            res = run_vaultd(root, work, plan, changed, out)
        elif name.startswith("restic"):
            res = run_restic(root, work, plan, changed, out, "off" if "off" in name else "auto")
        else:
            res = run_borg(root, work, plan, changed, out, "none" if "none" in name else None)
        for rel in changed:
            expected[rel] = blake3_of(root / rel)
        verify_tree(out, expected)
    finally:
        if "changed saved" in res:
            revert_changes(root, plan, res.pop("changed saved"))
    return res


# -- ceilings ----------------------------------------------------------------------------------------

def lmdb_ceiling(work: Path, total: int, batch: int = 32 << 20) -> dict[str, Any]:
    """Durable LMDB writes of 256 KiB (+28) values in ``batch``-byte transactions, opened as vaultd
    opens it."""
    import lmdb

    from vaultd import crypto

    d = work / "lmdb-ceiling"
    d.mkdir()
    env = lmdb.open(str(d), map_size=4 * total + (1 << 30), max_dbs=4, sync=True, metasync=True,
                    writemap=False, map_async=False)
    db = env.open_db(b"chunks")
    value = crypto.DEFAULT_AVG_SIZE + crypto.NONCE_SIZE + crypto.TAG_SIZE
    pool = os.urandom(16 * MIB + value)
    cpu0, t0 = time.process_time(), time.perf_counter()
    written = i = 0
    while written < total:
        with env.begin(write=True, db=db) as txn:
            n = 0
            while n < batch and written < total:
                at = (i * 4099) % (16 * MIB)
                txn.put(hashlib.blake2b(i.to_bytes(8, "big"), digest_size=32).digest(), pool[at:at + value])
                n += value
                written += value
                i += 1
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    env.close()
    return {"seconds": wall, "bytes": written, "cpu": cpu, "disk": disk_bytes(d)}


def disk_ceiling(work: Path, total: int, write: int = 32 << 20, per_file: int = 128 << 20) -> dict[str, Any]:
    """``total`` bytes appended to fresh files of ``per_file`` bytes in ``write``-byte writes, each
    followed by fdatasync: the durable write throughput of this disk with nothing else to do (in
    the writer's largest batch; smaller syncs are slower here)."""
    d = work / "disk-ceiling"
    d.mkdir()
    pool = os.urandom(16 * MIB + write)
    cpu0, t0 = time.process_time(), time.perf_counter()
    written = i = 0
    while written < total:
        fd = os.open(d / f"pack-{i:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            in_file = 0
            while in_file < per_file and written < total:
                at = (written * 4099) % (16 * MIB)
                n = os.write(fd, memoryview(pool)[at:at + min(write, total - written)])
                os.fdatasync(fd)
                in_file += n
                written += n
        finally:
            os.close(fd)
        i += 1
    wall = time.perf_counter() - t0
    return {"seconds": wall, "bytes": written, "cpu": time.process_time() - cpu0, "disk": disk_bytes(d)}


def core_ceiling(root: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """The Rust core's ingest of the data set in this process, nothing stored: every file cut,
    identified, sealed and hashed (SHA-256) in 4 MiB buffers as a deposit is, on both CPUs. What
    vaultd's daemon must compute whatever carries the bytes to it and whatever stores them."""
    from vaultd import crypto

    dedup, key, prefix = os.urandom(32), os.urandom(32), b"vaultd-bench-peers"
    buffer = 4 << 20
    cpu0, t0 = time.process_time(), time.perf_counter()
    n = 0
    for rel in sorted(plan["files"]):
        data = (root / rel).read_bytes()
        hasher, view, at = crypto.Sha256Hasher(), memoryview(data), 0
        while True:
            last = len(data) - at <= buffer
            chunks = crypto.ingest(view[at:at + buffer] if not last else view[at:], dedup, key, prefix,
                                   last=last, known=set(), hasher=hasher)
            if last:
                break
            at += chunks[-1].offset + chunks[-1].length if chunks else 0
        hasher.digest()
        n += len(data)
    return {"seconds": time.perf_counter() - t0, "bytes": n, "cpu": time.process_time() - cpu0}


def core_open_ceiling(root: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """The checks of a verified restore, in this process: every chunk of the data set opened (AES-GCM
    tag, keyed BLAKE3 of the plaintext against its id; the daemon's part) in one batch per file, on
    both CPUs, and each file's SHA-256 computed as ``VaultClient.read_to`` checks it against the
    object's (hashlib; the client's part). The chunks are sealed first, file by file, outside the
    timing; only the opening and hashing are timed and their CPU counted. What vaultd must compute
    whatever reads the chunks and carries the bytes."""
    from vaultd import crypto

    dedup, key, prefix = os.urandom(32), os.urandom(32), b"vaultd-bench-peers"
    seconds = cpu = 0.0
    n = 0
    for rel in sorted(plan["files"]):
        data = (root / rel).read_bytes()
        chunks = crypto.ingest(data, dedup, key, prefix, last=True, known=set())
        ids = [c.chunk_id for c in chunks]
        nonces = [c.nonce for c in chunks if c.nonce is not None]  # none known: every chunk is sealed
        sealed = [c.sealed for c in chunks if c.sealed is not None]
        cpu0, t0 = time.process_time(), time.perf_counter()
        opened = crypto.open_chunks(key, dedup, prefix, ids, nonces, sealed)
        digest = hashlib.sha256()
        for o in opened:
            digest.update(o)
        digest.digest()
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - cpu0
        n += sum(len(o) for o in opened)
        del chunks, sealed, opened
    return {"seconds": seconds, "bytes": n, "cpu": cpu}


def sink_ceiling(root: Path, work: Path, plan: dict[str, Any], pki_dir: Path, kind: str = "sink") -> dict[str, Any]:
    """``sink``: the files uploaded to a server that keeps nothing; ``source``: the files streamed
    from such a server to clients that write them to ``work``/out."""
    job = {"root": str(root), "data_dir": str(pki_dir), "out": str(work / "out")}
    srv = spawn_worker("sink-server", job, work)
    try:
        assert srv.stdout is not None
        line = srv.stdout.readline()
        address = line.split("serving on ", 1)[1].strip()
        jobs = [dict(job, address=address, files=f) for f in split(sorted(plan["files"]))]
        r = run_clients(kind, jobs, work, srv.pid)
    finally:
        assert srv.stdin is not None
        srv.stdin.write("stop\n")
        srv.stdin.close()
        srv.wait(60)
    return {"seconds": r["seconds"], "bytes": r["bytes"], "cpu": r["cpu clients"] + r["cpu server"]}


# -- report ------------------------------------------------------------------------------------------

def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(plan: dict[str, Any], runs: dict[str, list[dict[str, Any]]], ceilings: dict[str, list[dict[str, Any]]],
              changed: list[str]) -> dict[str, Any]:
    total, unique = plan["bytes"], plan["unique"]
    changed_bytes = sum(plan["files"][r]["size"] for r in changed)
    new_unique = sum(min(MIB, plan["files"][r]["size"]) for r in changed)
    summary: dict[str, Any] = {}
    for name, rs in runs.items():
        s: dict[str, Any] = {"runs": len(rs)}
        for phase, nbytes in (("ingest", total), ("incremental", changed_bytes), ("restore", total)):
            s[f"{phase} MB/s"] = med([nbytes / MIB / r[phase]["seconds"] for r in rs])
            s[f"{phase} MB/s all"] = [nbytes / MIB / r[phase]["seconds"] for r in rs]
            s[f"{phase} seconds"] = med([r[phase]["seconds"] for r in rs])
            s[f"{phase} CPU s"] = med([r[phase]["cpu"] for r in rs])
            s[f"{phase} peak RssAnon MiB"] = max(r[phase]["anon"] for r in rs) / MIB
            s[f"{phase} peak RSS MiB"] = max(r[phase]["maxrss"] for r in rs) / MIB
            if name == "vaultd":
                for k in ("cpu daemon", "cpu clients"):
                    s[f"{phase} {k} s"] = med([r[phase][k] for r in rs])
                for k in ("anon daemon", "anon client"):
                    s[f"{phase} peak {k} MiB"] = max(r[phase][k] for r in rs) / MIB
        s["disk after ingest"] = med([r["ingest"]["disk"] for r in rs])
        s["disk/unique"] = s["disk after ingest"] / unique
        s["disk after incremental"] = med([r["disk after incremental"] for r in rs])
        s["incremental disk growth/changed MiBs"] = (s["disk after incremental"] - s["disk after ingest"]) / new_unique
        summary[name] = s
    c: dict[str, Any] = {}
    for k, rs in ceilings.items():
        c[f"{k} MB/s"] = med([r["bytes"] / MIB / r["seconds"] for r in rs])
        c[f"{k} MB/s all"] = [r["bytes"] / MIB / r["seconds"] for r in rs]
        c[f"{k} CPU s"] = med([r["cpu"] for r in rs])
    summary["ceilings"] = c
    return summary


def bounds(s: dict[str, Any], plan: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """The most vaultd could do here (MB/s of the data set, and why), from the ceilings of the same
    run. ``ingest``: the lower of the disk (durable writes of the unique bytes at the disk ceiling;
    duplicates cost no write) and the CPUs (all CPUs busy with nothing but the CPU seconds the
    ceilings spent on the same bytes: the gRPC upload with TLS, clients and server; the core's
    cutting, hashing and sealing; the kernel's durable writes of the unique bytes). ``restore``: the
    lower of the gRPC source ceiling (a server that reads, opens and checks nothing) and the CPUs
    (all CPUs busy with nothing but the CPU seconds of that ceiling, clients writing the files
    included, and of a verified restore's checks: every chunk opened, every file's SHA-256)."""
    c = s["ceilings"]
    total = plan["bytes"] / MIB
    out: dict[str, tuple[float, str]] = {}
    options = []
    if "disk durable ceiling MB/s" in c:
        options.append((c["disk durable ceiling MB/s"] * plan["bytes"] / plan["unique"],
                        "durable writes of the unique bytes at the disk ceiling"))
    if all(f"{k} CPU s" in c for k in ("grpc sink ceiling", "core ceiling", "disk durable ceiling")):
        floor = c["grpc sink ceiling CPU s"] + c["core ceiling CPU s"] + c["disk durable ceiling CPU s"]
        options.append(((os.cpu_count() or 1) * total / floor,
                        f"{os.cpu_count()} CPUs spending only the {floor:.1f} CPU s per pass over the data "
                        "set that the gRPC upload, the core and the durable writes cost in their ceilings"))
    if options:
        out["ingest"] = min(options)
    restore = []
    if "grpc source ceiling MB/s" in c:
        restore.append((c["grpc source ceiling MB/s"], "the gRPC source ceiling"))
    if all(f"{k} CPU s" in c for k in ("grpc source ceiling", "core open ceiling")):
        floor = c["grpc source ceiling CPU s"] + c["core open ceiling CPU s"]
        restore.append(((os.cpu_count() or 1) * total / floor,
                        f"{os.cpu_count()} CPUs spending only the {floor:.1f} CPU s per pass over the data set "
                        "that the gRPC download with the files written and a verified restore's checks "
                        "cost in their ceilings"))
    if restore:
        out["restore"] = min(restore)
    return out


Target = tuple[str, str, float, float, bool, str]


def lmdb_ceiling_mbs(c: dict[str, Any]) -> float:
    """LMDB's durable write ceiling here: the faster of its transaction sizes measured in the run
    (8 MiB transactions cost about a third of the CPU of 32 MiB ones on this machine)."""
    return max(c[k + " MB/s"] for k in CEILINGS if k.startswith("lmdb ceiling") and k + " MB/s" in c)



def targets(s: dict[str, Any], plan: dict[str, Any]) -> list[Target]:
    """(name, op, wanted, measured, met, what this machine allows: empty, or for a target not met
    the bound on it here, and whether that bound puts the wanted figure out of reach)."""
    v = s["vaultd"]
    peers = [k for k in SYSTEMS if k != "vaultd" and k in s]
    best = {ph: max(s[p][f"{ph} MB/s"] for p in peers) for ph in ("ingest", "incremental", "restore")} if peers else {}
    restic_rss = max((s[p][f"{ph} peak RSS MiB"] for p in peers if p.startswith("restic")
                      for ph in ("ingest", "incremental", "restore")), default=float("nan"))
    bound = bounds(s, plan)
    out: list[Target] = []

    def t(name: str, op: str, wanted: float, measured: float, phase: str = "", per: float = 1.0) -> None:
        reach = ""
        if phase in bound and op == ">=" and measured < wanted:
            most = f"{bound[phase][0]:.0f} MB/s" if per == 1.0 else f"{bound[phase][0] / per:.3f}"
            verdict = "out of reach here" if bound[phase][0] / per < wanted else "not excluded by the bound"
            reach = f"{verdict}: at most {most} ({bound[phase][1]})"
        out.append((name, op, wanted, measured, measured >= wanted if op == ">=" else measured <= wanted, reach))

    if best:
        t("ingest / faster peer", ">=", 2.0, v["ingest MB/s"] / best["ingest"], "ingest", best["ingest"])
        t("restore / faster peer", ">=", 2.0, v["restore MB/s"] / best["restore"], "restore", best["restore"])
        t("incremental / faster peer", ">=", 1.0, v["incremental MB/s"] / best["incremental"])
    t("stored / unique", "<=", 1.05, v["disk/unique"])
    lmdb = lmdb_ceiling_mbs(s["ceilings"])
    t("ingest / LMDB durable ceiling", ">=", 0.60, v["ingest MB/s"] / lmdb, "ingest", lmdb)
    if restic_rss == restic_rss:
        t("daemon peak RssAnon / restic peak RSS", "<=", 2.0,
          max(v[f"{ph} peak anon daemon MiB"] for ph in ("ingest", "incremental", "restore")) / restic_rss)
    t("ingest MB/s (daemon benchmark target)", ">=", 500.0, v["ingest MB/s"], "ingest")
    return out


def write_report(out: Path, meta: dict[str, Any], plan: dict[str, Any], s: dict[str, Any]) -> str:
    tg = targets(s, plan)
    (out / "peers.json").write_text(json.dumps({"meta": meta, "dataset": {k: plan[k] for k in (
        "bytes", "unique", "duplicates")} | {"files": len(plan["files"])}, "summary": s, "bounds": bounds(s, plan),
        "targets": [{"name": n, "op": o, "wanted": w, "measured": m, "met": ok, "reach": r}
                    for n, o, w, m, ok, r in tg]},
        indent=2))
    systems = [k for k in SYSTEMS if k in s]
    lines = [
        "# vaultd against restic and borg", "",
        f"`{meta['command']}` on {meta['cpus']} CPUs (every process shares them), Python {meta['python']}, "
        f"{meta['restic']}, {meta['borg']}, {meta['when']}. Medians of {meta['runs']} interleaved rounds; each "
        "round starts every system from an empty repository.", "",
        f"Data set: {len(plan['files'])} files of 1 to 10 MiB, {plan['bytes'] / MIB:.0f} MiB, "
        f"{plan['duplicates']} exact duplicates, unique {plan['unique'] / MIB:.0f} MiB, incompressible. "
        f"Incremental: {meta['changed']} files ({meta['changed bytes'] / MIB:.0f} MiB) with 1 MiB overwritten "
        "in the middle.", "",
        "| system | ingest MB/s | incremental MB/s | restore MB/s | disk / unique | ingest CPU s | "
        "restore CPU s | peak RssAnon MiB (ingest / restore) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in systems:
        r = s[k]
        if k == "vaultd":
            anon = (f"daemon {r['ingest peak anon daemon MiB']:.0f} / {r['restore peak anon daemon MiB']:.0f}, "
                    f"client {r['ingest peak anon client MiB']:.0f} / {r['restore peak anon client MiB']:.0f}")
            rss = f"daemon {max(r['ingest peak RSS MiB'], r['restore peak RSS MiB']):.0f} (LMDB map pages included)"
            cpu_i = (f"{r['ingest CPU s']:.1f} (daemon {r['ingest cpu daemon s']:.1f}, clients "
                     f"{r['ingest cpu clients s']:.1f})")
            cpu_r = (f"{r['restore CPU s']:.1f} (daemon {r['restore cpu daemon s']:.1f}, clients "
                     f"{r['restore cpu clients s']:.1f})")
        else:
            anon = f"{r['ingest peak RssAnon MiB']:.0f} / {r['restore peak RssAnon MiB']:.0f}"
            rss = f"{max(r['ingest peak RSS MiB'], r['restore peak RSS MiB']):.0f}"
            cpu_i, cpu_r = f"{r['ingest CPU s']:.1f}", f"{r['restore CPU s']:.1f}"
        lines.append(f"| {k} | {r['ingest MB/s']:.0f} | {r['incremental MB/s']:.0f} | {r['restore MB/s']:.0f} | "
                     f"{r['disk/unique']:.3f} | {cpu_i} | {cpu_r} | {anon} | {rss} |")
    c = s["ceilings"]
    v = s.get("vaultd")
    lines += ["", "Ceilings measured in the same rounds:", "",
              "| ceiling | MB/s | CPU s | vaultd's share |", "|---|---|---|---|"]
    b = bounds(s, plan)
    for k in CEILINGS:
        if k + " MB/s" not in c:
            continue
        share = ""
        if v and k == "grpc source ceiling":
            share = f"restore {v['restore MB/s'] / c[k + ' MB/s']:.0%}"
        elif v and k == "disk durable ceiling":
            allows = c[k + " MB/s"] * plan["bytes"] / plan["unique"]
            share = (f"ingest {v['ingest MB/s'] / allows:.0%} of the {allows:.0f} MB/s it allows for this data "
                     "set (unique bytes written, duplicates free)")
        elif v and k == "core ceiling":
            share = "(the core's ingest alone, in process, on all CPUs)"
        elif v and k == "core open ceiling":
            share = "(a verified restore's checks alone, in process: chunks opened, files' SHA-256)"
        elif v:
            share = f"ingest {v['ingest MB/s'] / c[k + ' MB/s']:.0%}"
        lines.append(f"| {k} | {c[k + ' MB/s']:.0f} | {c[k + ' CPU s']:.1f} | {share} |")
    for ph in ("ingest", "restore"):
        if ph in b:
            lines += ["", f"The most {ph} could reach here: {b[ph][0]:.0f} MB/s ({b[ph][1]}); "
                      f"vaultd reached {v[ph + ' MB/s'] / b[ph][0]:.0%} of it." if v else ""]
    lines += ["", "Incremental disk growth per changed MiB: " + ", ".join(
        f"{k} {s[k]['incremental disk growth/changed MiBs']:.2f}" for k in systems) + ".", "",
        "| target | wanted | measured | met | what this machine allows |", "|---|---|---|---|---|"]
    for n, o, w, m, ok, reach in tg:
        lines.append(f"| {n} | {o} {w:g} | {m:.3g} | {'yes' if ok else 'NO'} | {reach} |")
    md = "\n".join(lines) + "\n"
    (out / "peers.md").write_text(md)
    chart(out / "peers.png", s, systems)
    return md


def chart(path: Path, s: dict[str, Any], systems: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    phases = ("ingest", "incremental", "restore")
    w = 0.8 / len(phases)
    for i, ph in enumerate(phases):
        axes[0].bar([x + i * w for x in range(len(systems))], [s[k][f"{ph} MB/s"] for k in systems], w, label=ph)
    for k in CEILINGS:
        if f"{k} MB/s" in s["ceilings"]:
            axes[0].axhline(s["ceilings"][f"{k} MB/s"], ls="--", lw=1, label=k,
                            color={"lmdb ceiling": "grey", "lmdb ceiling (8 MiB txn)": "silver",
                                   "disk durable ceiling": "brown", "grpc source ceiling": "tab:cyan"}.get(k, "black"))
    axes[0].set_xticks([x + w for x in range(len(systems))], systems, rotation=20)
    axes[0].set_ylabel("MB/s (median)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("throughput")
    axes[1].bar(systems, [s[k]["disk/unique"] for k in systems], color="tab:green")
    axes[1].axhline(1.05, ls="--", lw=1, color="red")
    axes[1].set_ylabel("bytes on disk / unique bytes")
    axes[1].set_title("storage")
    axes[1].tick_params(axis="x", rotation=20)
    mem = [max(s[k][f"{ph} peak anon daemon MiB" if k == "vaultd" else f"{ph} peak RssAnon MiB"] for ph in phases)
           for k in systems]
    axes[2].bar(systems, mem, color="tab:purple")
    axes[2].set_ylabel("peak RssAnon MiB (vaultd: daemon)")
    axes[2].set_title("memory")
    axes[2].tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().split("\n")[0]
    except (OSError, subprocess.CalledProcessError):
        return f"{cmd[0]} missing"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="128 MiB, 1 round (trials)")
    ap.add_argument("--gib", type=float, default=1.0, help="size of the data set, GiB (default 1)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 3, --quick 1)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of: " + ", ".join(SYSTEMS))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--tmp", type=Path, default=None, help="where the data set and repositories go")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-job", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker_main(a)
    systems = [x.strip() for x in a.systems.split(",") if x.strip()]
    for x in systems:
        if x not in SYSTEMS:
            ap.error(f"unknown system {x!r}")
    runs = a.runs or (1 if a.quick else 3)
    total = int((0.125 if a.quick else a.gib) * (1 << 30))
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vaultd-peers-", dir=a.tmp) as tmp_s:
        tmp = Path(tmp_s)
        root = tmp / "set"
        t0 = time.perf_counter()
        plan = make_dataset(root, total)
        print(f"data set: {len(plan['files'])} files, {plan['bytes'] / MIB:.0f} MiB in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        changed = changes(plan)
        from vaultd.pki import ensure_dev_pki

        ensure_dev_pki(tmp / "sink-pki")
        results: dict[str, list[dict[str, Any]]] = {k: [] for k in systems}
        ceilings: dict[str, list[dict[str, Any]]] = {k: [] for k in CEILINGS}
        for rnd in range(runs):
            order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
            for name in ["lmdb ceiling", "lmdb ceiling (8 MiB txn)", "disk durable ceiling", "core ceiling",
                         "core open ceiling", *order,
                         "grpc sink ceiling", "grpc source ceiling"]:
                work = tmp / "work"
                work.mkdir()
                try:
                    t0 = time.perf_counter()
                    if name.startswith("lmdb ceiling"):
                        ceilings[name].append(lmdb_ceiling(work, plan["unique"], 8 << 20 if "8 MiB" in name else 32 << 20))
                        r = ceilings[name][-1]
                        msg = f"{r['bytes'] / MIB / r['seconds']:.0f} MB/s"
                    elif name == "disk durable ceiling":
                        ceilings[name].append(disk_ceiling(work, plan["unique"]))
                        r = ceilings[name][-1]
                        msg = f"{r['bytes'] / MIB / r['seconds']:.0f} MB/s"
                    elif name in ("core ceiling", "core open ceiling"):
                        ceilings[name].append((core_ceiling if name == "core ceiling" else core_open_ceiling)(root, plan))
                        r = ceilings[name][-1]
                        msg = f"{r['bytes'] / MIB / r['seconds']:.0f} MB/s"
                    elif name in ("grpc sink ceiling", "grpc source ceiling"):
                        kind = "sink" if "sink" in name else "source"
                        ceilings[name].append(sink_ceiling(root, work, plan, tmp / "sink-pki", kind))
                        r = ceilings[name][-1]
                        msg = f"{r['bytes'] / MIB / r['seconds']:.0f} MB/s"
                    else:
                        r = run_system(name, root, work, plan, changed)
                        results[name].append(r)
                        msg = ", ".join(f"{ph} {r[ph]['seconds']:.1f} s" for ph in ("ingest", "incremental", "restore"))
                    print(f"round {rnd + 1}/{runs} {name}: {msg} ({time.perf_counter() - t0:.0f} s)", flush=True)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    meta = {
        "cpus": os.cpu_count(), "python": platform.python_version(), "runs": runs, "quick": a.quick,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "restic": version(["restic", "version"]), "borg": version(["borg", "--version"]),
        "command": "python benchmarks/peers/bench_peers.py" + (" --quick" if a.quick else "")
        + (f" --gib {a.gib:g}" if a.gib != 1.0 and not a.quick else "") + (f" --runs {a.runs}" if a.runs else ""),
        "changed": len(changed), "changed bytes": sum(plan["files"][r]["size"] for r in changed),
        "total seconds": time.perf_counter() - t_start,
    }
    s = summarize(plan, results, ceilings, changed)
    a.out.mkdir(parents=True, exist_ok=True)
    md = write_report(a.out, meta, plan, s)
    print(md)
    print(f"total {meta['total seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
