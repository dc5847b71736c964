"""SIGKILL the daemon during concurrent deposits; after a restart every acknowledged receipt verifies,
each receipt's checkpoint is consistent with the new head, and the journal's stored hashes are intact.

A change and its leaf commit in one LMDB transaction, so there is no window where one exists without
the other; this test checks that from the outside, on the real daemon process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from vaultd.client import VaultClient
from vaultd.journal.receipt import verify_consistency, verify_receipt
from vaultd.v1 import journal_pb2 as pb
from vaultd.v1 import journal_pb2_grpc as pb_grpc

from servers import start_server  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigkill_during_deposits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultd.cli.daemon", "serve", "--dev", "--data-dir", str(data),
         "--listen", f"127.0.0.1:{port}", "--metrics-listen", ""],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    acked: list[tuple[bytes, bytes]] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        deadline = time.time() + 30
        while True:
            try:
                c = VaultClient.for_dev(f"127.0.0.1:{port}", data, "permits", server_name="localhost")
                c.wait_ready(timeout=1.0)
                c.create_vault("permits")
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)

        def worker(w: int) -> None:
            cl = VaultClient.for_dev(f"127.0.0.1:{port}", data, "permits", server_name="localhost")
            i = 0
            while not stop.is_set():
                doc = b"worker %d document %d " % (w, i) * 20
                try:
                    r = cl.deposit("permits", f"w{w}/d{i}", doc)
                except Exception:
                    return  # the daemon died under us: not acknowledged
                assert r.evidence
                with lock:
                    acked.append((r.evidence, doc))
                i += 1
            cl.close()

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        while len(acked) < 40 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(acked) >= 40
    srv = start_server(data)  # the same data folder, in-process this time
    try:
        stub = pb_grpc.JournalServiceStub(srv.client("permits")._channel)
        key = stub.GetPublicKey(pb.GetPublicKeyRequest()).verifier_key
        head = stub.GetCheckpoint(pb.GetCheckpointRequest())
        proofs_by_size: dict[int, bytes] = {}
        for evidence, doc in acked:
            res = verify_receipt(evidence, doc, key)
            assert res.ok, res.report()
            assert res.checkpoint is not None
            size = res.checkpoint.size
            assert size <= head.tree_size
            if size not in proofs_by_size:
                proofs_by_size[size] = stub.GetConsistencyProof(
                    pb.GetConsistencyProofRequest(old_size=size, new_size=head.tree_size)).proof_file
                old_note = evidence_checkpoint(evidence)
                cons = verify_consistency(old_note, head.note, proofs_by_size[size], key)
                assert cons.ok, cons.report()
        assert srv.daemon.journal.audit() == []
        # every acknowledged deposit is still there after the restart
        assert srv.client("permits").count("permits") >= len(acked)
    finally:
        srv.stop()


def evidence_checkpoint(evidence: bytes) -> bytes:
    import json

    return str(json.loads(evidence)["checkpoint"]).encode()

