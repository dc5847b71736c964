"""Core benchmark: the Rust core against what a user would write in Python, same process, same data.

    .venv/bin/python benchmarks/core/bench_core.py [--quick] [--mib N]

Writes benchmarks/results/core.json and benchmarks/results/core.md. Cases (named by operation and size):

- ``ingest[<avg>,<t>t]``: chunk + id + seal of one document (FastCDC min = avg/4, max = 4 avg; keyed
  BLAKE3 ids; AES-256-GCM seals). Rust: one ``crypto.ingest`` call over the whole document (as the
  Python pipeline gets it), and, in parentheses, over 4 MiB buffers as a streaming caller feeds it
  (``last=False``, carrying the held-back tail into the next buffer). Python: pyfastcdc (Cython) cut
  points, then per chunk ``blake3(chunk, key=...)`` and ``AESGCM.encrypt`` with an ``os.urandom``
  nonce; for t > 1 the better of that and the per-chunk work spread over a thread pool of t threads.
- ``aead_seal[1MiB]``: AES-256-GCM of 1 MiB, ``crypto.aead_seal`` against ``AESGCM(key).encrypt``.
- ``ed25519_verify[1024]``: 1024 signatures on one core, ``ed25519_verify_batch`` against
  cryptography's ``Ed25519PublicKey.verify`` one by one.
- ``ecdsa_p256_verify[1024,<t>t]``: 1024 ECDSA P-256 / SHA-256 DER signatures (8 signers),
  ``ecdsa_p256_verify_batch`` on t threads against cryptography's ``EllipticCurvePublicKey.verify`` one
  by one (one thread: verify holds the GIL for OpenSSL's work, no pool gains from it).
- ``merkle_*``: appends, inclusion and consistency proofs, verifications per second.
Each figure is the best of a few repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3 as blake3_py
import pyfastcdc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vaultd import crypto  # noqa: E402

KIB = 1024
MIB = 1024 * 1024
BUFFER = 4 * MIB

TARGETS = {
    "ingest[64KiB,2t]/python": 1.3,
    "ingest[4KiB,2t]/python": 3.0,
    "ingest[64KiB,2t] GB/s": 4.0,
    "aead_seal[1MiB]/cryptography": 0.8,
    "ed25519_verify[1024]/cryptography": 2.0,
}


def best(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def rust_whole(data: bytes, avg: int, dedup: bytes, key: bytes) -> int:
    return len(crypto.ingest(data, dedup, key, b"vault:1|kv:1|", min_size=avg // 4, avg_size=avg, max_size=avg * 4))


def rust_ingest(data: bytes, avg: int, dedup: bytes, key: bytes) -> int:
    view = memoryview(data)
    pos, carry, n = 0, b"", 0
    while pos < len(data):
        piece = view[pos : pos + BUFFER]
        buf: bytes | memoryview = carry + piece if carry else piece
        pos += BUFFER
        last = pos >= len(data)
        chunks = crypto.ingest(
            buf, dedup, key, b"vault:1|kv:1|", last=last, min_size=avg // 4, avg_size=avg, max_size=avg * 4
        )
        n += len(chunks)
        end = chunks[-1].offset + chunks[-1].length if chunks else 0
        carry = bytes(buf[end:])
    return n


def python_ingest(data: bytes, avg: int, dedup: bytes, key: bytes, pool: ThreadPoolExecutor | None) -> int:
    cdc = pyfastcdc.FastCDC(avg, min_size=avg // 4, max_size=avg * 4, normalized_chunking=1)
    gcm = AESGCM(key)
    view = memoryview(data)
    prefix = b"vault:1|kv:1|"

    def one(span: tuple[int, int]) -> tuple[bytes, bytes, bytes]:
        piece = view[span[0] : span[0] + span[1]]
        cid = blake3_py.blake3(piece, key=dedup).digest()
        nonce = os.urandom(12)
        return cid, nonce, gcm.encrypt(nonce, piece, prefix + cid)

    spans = [(c.offset, c.length) for c in cdc.cut_buf(data)]
    if pool is None:
        out = [one(s) for s in spans]
    else:
        out = list(pool.map(one, spans, chunksize=max(1, len(spans) // 64)))
    return len(out)


def bench_ingest(data: bytes, reps: int, results: dict[str, Any]) -> None:
    dedup, key = os.urandom(32), os.urandom(32)
    for avg in (4 * KIB, 64 * KIB, 1 * MIB):
        label = f"{avg // KIB}KiB" if avg < MIB else "1MiB"
        for threads in (1, 2):
            crypto.set_num_threads(threads)
            rust_whole(data, avg, dedup, key)  # warm-up
            tr = best(lambda: rust_whole(data, avg, dedup, key), reps)
            ts = best(lambda: rust_ingest(data, avg, dedup, key), reps)
            # The best pure-Python pipeline: sequential, or (t > 1) the per-chunk work on a thread pool,
            # whichever is faster on this run (the GIL often makes the pool slower).
            tp = best(lambda: python_ingest(data, avg, dedup, key, None), reps)
            if threads > 1:
                with ThreadPoolExecutor(threads) as pool:
                    python_ingest(data, avg, dedup, key, pool)
                    tp = min(tp, best(lambda: python_ingest(data, avg, dedup, key, pool), reps))
            name = f"ingest[{label},{threads}t]"
            results[name] = {
                "rust_GBps": len(data) / tr / 1e9,
                "rust_4MiB_buffers_GBps": len(data) / ts / 1e9,
                "python_GBps": len(data) / tp / 1e9,
                "ratio": tp / tr,
                "ratio_4MiB_buffers": tp / ts,
            }
            print(
                f"{name:22s} rust {len(data) / tr / 1e9:6.2f} GB/s (4 MiB buffers {len(data) / ts / 1e9:5.2f})"
                f"  python {len(data) / tp / 1e9:6.2f} GB/s  x{tp / tr:.2f} (x{tp / ts:.2f})"
            )
    crypto.set_num_threads(os.cpu_count() or 1)


def bench_aead(reps: int, results: dict[str, Any]) -> None:
    key, nonce, aad = os.urandom(32), os.urandom(12), b"aad"
    data = os.urandom(MIB)
    gcm = AESGCM(key)
    sk = crypto.SealingKey(key)
    n = 400
    t_rust = best(lambda: [crypto.aead_seal(key, nonce, data, aad) for _ in range(n)], reps)
    t_key = best(lambda: [sk.seal(data, aad) for _ in range(n)], reps)
    t_ref = best(lambda: [gcm.encrypt(nonce, data, aad) for _ in range(n)], reps)
    sealed = gcm.encrypt(nonce, data, aad)
    t_open = best(lambda: [crypto.aead_open(key, nonce, sealed, aad) for _ in range(n)], reps)
    t_ref_open = best(lambda: [gcm.decrypt(nonce, sealed, aad) for _ in range(n)], reps)

    def gbps(t: float) -> float:
        return n * MIB / t / 1e9

    results["aead_seal[1MiB]"] = {"rust_GBps": gbps(t_rust), "cryptography_GBps": gbps(t_ref), "ratio": t_ref / t_rust}
    results["sealing_key_seal[1MiB]"] = {"rust_GBps": gbps(t_key), "cryptography_GBps": gbps(t_ref), "ratio": t_ref / t_key}
    results["aead_open[1MiB]"] = {"rust_GBps": gbps(t_open), "cryptography_GBps": gbps(t_ref_open), "ratio": t_ref_open / t_open}
    for k in ("aead_seal[1MiB]", "sealing_key_seal[1MiB]", "aead_open[1MiB]"):
        r = results[k]
        print(f"{k:22s} rust {r['rust_GBps']:6.2f} GB/s  cryptography {r['cryptography_GBps']:6.2f} GB/s  x{r['ratio']:.2f}")


def bench_ed25519(reps: int, results: dict[str, Any]) -> None:
    crypto.set_num_threads(1)
    n = 1024
    seeds = [os.urandom(32) for _ in range(8)]
    msgs = [os.urandom(64) for _ in range(n)]
    sigs = [crypto.ed25519_sign_batch(seeds[i % 8], [m])[0] for i, m in enumerate(msgs)]
    pks = [crypto.ed25519_public_key(seeds[i % 8]) for i in range(n)]
    ref_keys = [ed25519.Ed25519PublicKey.from_public_bytes(p) for p in pks]

    def ref() -> None:
        for k, m, s in zip(ref_keys, msgs, sigs):
            k.verify(s, m)

    assert all(crypto.ed25519_verify_batch(pks, msgs, sigs))
    t_rust = best(lambda: crypto.ed25519_verify_batch(pks, msgs, sigs), reps)
    t_ref = best(ref, reps)
    results["ed25519_verify[1024]"] = {"rust_per_s": n / t_rust, "cryptography_per_s": n / t_ref, "ratio": t_ref / t_rust, "threads": 1}
    print(f"{'ed25519_verify[1024]':22s} rust {n / t_rust:8.0f}/s  cryptography {n / t_ref:8.0f}/s  x{t_ref / t_rust:.2f} (1 thread)")
    seed = seeds[0]
    ref_sk = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    t_sign = best(lambda: crypto.ed25519_sign_batch(seed, msgs), reps)
    t_ref_sign = best(lambda: [ref_sk.sign(m) for m in msgs], reps)
    results["ed25519_sign[1024]"] = {"rust_per_s": n / t_sign, "cryptography_per_s": n / t_ref_sign, "ratio": t_ref_sign / t_sign, "threads": 1}
    print(f"{'ed25519_sign[1024]':22s} rust {n / t_sign:8.0f}/s  cryptography {n / t_ref_sign:8.0f}/s  x{t_ref_sign / t_sign:.2f} (1 thread)")
    crypto.set_num_threads(os.cpu_count() or 1)


def bench_ecdsa(reps: int, results: dict[str, Any]) -> None:
    n = 1024
    sks = [ec.generate_private_key(ec.SECP256R1()) for _ in range(8)]
    msgs = [os.urandom(64) for _ in range(n)]
    sigs = [sks[i % 8].sign(m, ec.ECDSA(hashes.SHA256())) for i, m in enumerate(msgs)]
    ref_keys = [sks[i % 8].public_key() for i in range(n)]
    pks = [k.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) for k in ref_keys]
    algo = ec.ECDSA(hashes.SHA256())

    def ref() -> None:
        for k, m, s in zip(ref_keys, msgs, sigs):
            k.verify(s, m, algo)

    t_ref = best(ref, reps)
    for threads in (1, 2):
        crypto.set_num_threads(threads)
        assert all(crypto.ecdsa_p256_verify_batch(pks, msgs, sigs, True))
        t_rust = best(lambda: crypto.ecdsa_p256_verify_batch(pks, msgs, sigs, True), reps)
        name = f"ecdsa_p256_verify[1024,{threads}t]"
        results[name] = {"rust_per_s": n / t_rust, "cryptography_per_s": n / t_ref, "ratio": t_ref / t_rust, "threads": threads}
        print(f"{name:22s} rust {n / t_rust:8.0f}/s  cryptography {n / t_ref:8.0f}/s  x{t_ref / t_rust:.2f} ({threads} thread(s))")
    crypto.set_num_threads(os.cpu_count() or 1)


def bench_merkle(reps: int, results: dict[str, Any]) -> None:
    n = 200_000
    leaves = [crypto.merkle_leaf_hash(i.to_bytes(8, "big")) for i in range(n)]

    def appends() -> crypto.MerkleTree:
        t = crypto.MerkleTree()
        for leaf in leaves:
            t.append(leaf)
        return t

    t_app = best(appends, reps)
    tree = appends()
    rng = random.Random(7)
    idx = [rng.randrange(n) for _ in range(20_000)]
    root = tree.root()
    t_inc = best(lambda: [tree.inclusion_proof(i) for i in idx], reps)
    proofs = [tree.inclusion_proof(i) for i in idx[:5000]]
    t_ver = best(lambda: [crypto.merkle_verify_inclusion(leaves[i], i, n, p, root) for i, p in zip(idx, proofs)], reps)
    sizes = [rng.randrange(1, n) for _ in range(20_000)]
    t_con = best(lambda: [tree.consistency_proof(s) for s in sizes], reps)
    results["merkle_append"] = {"per_s": n / t_app, "leaves": n}
    results["merkle_inclusion_proof"] = {"per_s": len(idx) / t_inc, "tree_size": n}
    results["merkle_verify_inclusion"] = {"per_s": len(proofs) / t_ver, "tree_size": n}
    results["merkle_consistency_proof"] = {"per_s": len(sizes) / t_con, "tree_size": n}
    for k in ("merkle_append", "merkle_inclusion_proof", "merkle_verify_inclusion", "merkle_consistency_proof"):
        print(f"{k:26s} {results[k]['per_s']:12.0f}/s")


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Core benchmark",
        "",
        f"`{meta['command']}` on {meta['cpus']} CPUs ({', '.join(meta['cpu_features'])}), "
        f"{meta['data_mib']} MiB of random data, Python {meta['python']}, {meta['date']}.",
        "",
        "| case | Rust core | baseline | ratio |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        if name.startswith("ingest"):
            lines.append(
                f"| {name} | {r['rust_GBps']:.2f} GB/s (4 MiB buffers: {r['rust_4MiB_buffers_GBps']:.2f}) "
                f"| {r['python_GBps']:.2f} GB/s (Python pipeline) | {r['ratio']:.2f}x ({r['ratio_4MiB_buffers']:.2f}x) |"
            )
        elif "GBps" in str(r):
            lines.append(f"| {name} | {r['rust_GBps']:.2f} GB/s | {r['cryptography_GBps']:.2f} GB/s (cryptography) | {r['ratio']:.2f}x |")
        elif "cryptography_per_s" in r:
            baseline = "cryptography" + (", one by one on 1 thread" if r["threads"] > 1 else "")
            lines.append(
                f"| {name} ({r['threads']} thread{'s' if r['threads'] > 1 else ''}) | {r['rust_per_s']:.0f}/s "
                f"| {r['cryptography_per_s']:.0f}/s ({baseline}) | {r['ratio']:.2f}x |"
            )
        else:
            lines.append(f"| {name} (tree of {r.get('leaves', r.get('tree_size'))}) | {r['per_s']:.0f}/s | | |")
    lines += ["", "| target | wanted | measured | met |", "|---|---|---|---|"]
    for t in meta["targets"]:
        lines.append(f"| {t['name']} | >= {t['wanted']} | {t['measured']:.2f} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=48, help="size of the document for the ingest cases")
    ap.add_argument("--quick", action="store_true", help="one repetition, 16 MiB (a smoke run)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    mib = 16 if args.quick else args.mib
    reps = 1 if args.quick else 5
    data = random.Random(2026).randbytes(mib * MIB)
    results: dict[str, Any] = {}
    t0 = time.time()
    bench_ingest(data, reps, results)
    bench_aead(reps, results)
    bench_ed25519(reps, results)
    bench_ecdsa(reps, results)
    bench_merkle(reps, results)
    measured = {
        "ingest[64KiB,2t]/python": results["ingest[64KiB,2t]"]["ratio"],
        "ingest[4KiB,2t]/python": results["ingest[4KiB,2t]"]["ratio"],
        "ingest[64KiB,2t] GB/s": results["ingest[64KiB,2t]"]["rust_GBps"],
        "aead_seal[1MiB]/cryptography": results["aead_seal[1MiB]"]["ratio"],
        "ed25519_verify[1024]/cryptography": results["ed25519_verify[1024]"]["ratio"],
    }
    targets = [{"name": k, "wanted": w, "measured": measured[k], "met": measured[k] >= w} for k, w in TARGETS.items()]
    meta = {
        "command": "python benchmarks/core/bench_core.py" + (" --quick" if args.quick else ""),
        "cpus": os.cpu_count(),
        "cpu_features": crypto.cpu_features(),
        "data_mib": mib,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.time() - t0, 1),
        "targets": targets,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "core.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out / "core.md").write_text(markdown(results, meta))
    print()
    for t in targets:
        print(f"target {t['name']:36s} >= {t['wanted']:<4} measured {t['measured']:6.2f}  {'met' if t['met'] else 'MISSED'}")
    print(f"wrote {args.out / 'core.json'} and {args.out / 'core.md'} in {meta['seconds']} s")


if __name__ == "__main__":
    main()
