"""Kiosk benchmark: signature verification through SubmitSignature with many kiosks at once, and
card-login latency, against a real vaultd (mTLS on 127.0.0.1, LMDB, journal) in this process.

    .venv/bin/python benchmarks/kiosk/bench_kiosk.py [--kiosks 8] [--signatures 200] [--logins 100]

Cards are software keys issued by the development citizen CA (a card's own signing time, some
50-200 ms on real hardware, is the kiosk's wait, not the server's work). Cases:

- ``submit_signature[<k> kiosks]``: CMS (CAdES-B) verified (chain, CRL, ECDSA) and journaled as
  evidence (one journal leaf, group-committed), signatures/s through gRPC;
- ``login[<k> kiosks]``: BeginSession + CompleteSession round trips, p50 / p99 latency;
- ``verify_cms_batch[n]`` (same process, no gRPC, no journal): the verification alone, with the Rust
  core's batch ECDSA against pyca/cryptography one by one: the baseline.

Writes benchmarks/kiosk/results.json and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed  # noqa: E402


def soft_signer(key: ec.EllipticCurvePrivateKey):  # type: ignore[no-untyped-def]
    return lambda digest: key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiosks", type=int, default=8)
    ap.add_argument("--signatures", type=int, default=200)
    ap.add_argument("--logins", type=int, default=100)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "kiosk" / "results.json")
    args = ap.parse_args()

    from vaultd.cli.daemon import Daemon
    from vaultd.config import Config
    from vaultd.core import signatures as sig
    from vaultd.kiosk import cms, devca
    from vaultd.pki import ensure_dev_pki, issue_cert
    from vaultd.transport.kiosk import KioskClient

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "vaultd"
        daemon = Daemon(Config(data_dir=data, listen="127.0.0.1:0", metrics_listen="", dev=True,
                               map_size=1 << 30, workers=64, grace_period=2.0))
        daemon.start()
        try:
            pki = ensure_dev_pki(data)
            citizen_ca = devca.DevCA.load(data / "citizen-ca")
            from vaultd.client import VaultClient

            doc = b"permit application\n" * 1000
            cards = []
            with VaultClient.for_dev(daemon.address, data, "permits", server_name="localhost") as permits:
                for i in range(args.kiosks):
                    citizen = f"citizen{i}.bench"
                    cards.append(citizen_ca.issue_card(citizen))
                    permits.create_vault(f"citizen-{citizen}")
                    permits.deposit(f"citizen-{citizen}", "form.txt", doc)
            kiosks = []
            for i in range(args.kiosks):
                ck = pki.client(f"svc-kiosk-b{i}")
                issue_cert(pki.ca, f"svc-kiosk-b{i}", ck)
                kiosks.append(KioskClient(daemon.address, ca=pki.ca.cert, cert=ck.cert, key=ck.key,
                                          server_name="localhost"))

            def login(i: int) -> float:
                k, card = kiosks[i], cards[i]
                t0 = time.perf_counter()
                ch = k.begin_session()
                s = soft_signer(card.keys[0x9A])(hashlib.sha256(ch.to_sign).digest())
                k.complete_session(ch.nonce, card.cert_der(0x9A), s)
                return time.perf_counter() - t0

            # Logins: every kiosk logs in repeatedly, all at once.
            per = max(1, args.logins // args.kiosks)
            with ThreadPoolExecutor(args.kiosks) as ex:
                lat = [x for xs in ex.map(lambda i: [login(i) for _ in range(per)], range(args.kiosks)) for x in xs]
            results.append({"case": f"login[{args.kiosks} kiosks]", "n": len(lat),
                            "p50_ms": statistics.median(lat) * 1e3, "p99_ms": percentile(lat, 99) * 1e3})

            # Signatures: CMS made beforehand (the card's time is not the server's), submitted at once.
            sha = hashlib.sha256(doc).digest()
            per = max(1, args.signatures // args.kiosks)
            made = [[cms.sign_detached(sha, cards[i].certs[0x9C], soft_signer(cards[i].keys[0x9C]))
                     for _ in range(per)] for i in range(args.kiosks)]
            ok = threading.Event()
            ok.set()

            def submit(i: int) -> None:
                for der in made[i]:
                    r = kiosks[i].submit_signature(f"citizen-{cards[i].citizen}", "form.txt", 0, der)
                    if not (r.valid and r.journaled):
                        ok.clear()

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.kiosks) as ex:
                list(ex.map(submit, range(args.kiosks)))
            dt = time.perf_counter() - t0
            assert ok.is_set(), "a benchmark signature was refused"
            n = per * args.kiosks
            results.append({"case": f"submit_signature[{args.kiosks} kiosks]", "n": n,
                            "per_second": n / dt, "seconds": dt})
            for k in kiosks:
                k.close()
        finally:
            daemon.stop(2.0)

        # Baseline: verification alone, Rust batch ECDSA against cryptography one by one.
        ca = devca.DevCA.create()
        trust = sig.CitizenTrust((ca.cert,), (ca.crl(),))
        card = ca.issue_card("base.line")
        n = 256
        items = [(cms.sign_detached(sha, card.certs[0x9C], soft_signer(card.keys[0x9C])), sha) for _ in range(n)]
        import vaultd.crypto as vc

        def run(label: str) -> None:
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                rs = sig.verify_cms_batch(items, trust)
                best = min(best, time.perf_counter() - t0)
                assert all(r.valid for r in rs)
            results.append({"case": f"verify_cms_batch[{n}] {label}", "n": n, "per_second": n / best})

        run("rust ecdsa batch")
        saved = vc.ecdsa_p256_verify_batch
        try:
            del vc.ecdsa_p256_verify_batch  # the fallback path: pyca/cryptography, one by one
            run("cryptography one by one")
        finally:
            vc.ecdsa_p256_verify_batch = saved  # type: ignore[attr-defined]

    # The ECDSA part alone: 512 signatures, Rust batch against cryptography (OpenSSL) one by one.
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    sec1 = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    msgs = [os.urandom(200) for _ in range(512)]
    sigs = [key.sign(m, ec.ECDSA(hashes.SHA256())) for m in msgs]
    best_rust = best_py = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        assert all(vc.ecdsa_p256_verify_batch([sec1] * 512, msgs, sigs, True))
        best_rust = min(best_rust, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for m, s_ in zip(msgs, sigs):
            pub.verify(s_, m, ec.ECDSA(hashes.SHA256()))
        best_py = min(best_py, time.perf_counter() - t0)
    results.append({"case": "ecdsa_p256_verify[512] rust batch", "n": 512, "per_second": 512 / best_rust})
    results.append({"case": "ecdsa_p256_verify[512] cryptography one by one", "n": 512, "per_second": 512 / best_py})

    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"{'case':48} {'n':>5} {'result':>28}")
    for r in results:
        if "p50_ms" in r:
            val = f"p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
        else:
            val = f"{r['per_second']:.0f} /s"
        print(f"{r['case']:48} {r['n']:>5} {val:>28}")
    print(f"(written to {args.out.relative_to(REPO)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
