"""JournalService over the real daemon (mTLS on 127.0.0.1, real LMDB): receipts from deposits verify
offline, proofs and checkpoints served, journal read filtered and authorized."""

from __future__ import annotations

import json

import grpc
import pytest

from vaultd.journal import proofs
from vaultd.journal.checkpoint import Verifier, open_checkpoint
from vaultd.journal.receipt import verify_consistency, verify_receipt
from vaultd.v1 import journal_pb2 as pb
from vaultd.v1 import journal_pb2_grpc as pb_grpc

from servers import new_vault_id  # type: ignore[import-not-found]


def test_journal_service_end_to_end(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    c = srv.client("permits")
    stub = pb_grpc.JournalServiceStub(c._channel)
    key = stub.GetPublicKey(pb.GetPublicKeyRequest())
    verifier = Verifier.from_vkey(key.verifier_key)
    assert key.algorithm == "ed25519" and verifier.key_id == key.key_id
    vault = new_vault_id("supplier")
    c.create_vault(vault)
    first = stub.GetCheckpoint(pb.GetCheckpointRequest())
    docs = [b"invoice %d" % i * 50 for i in range(5)]
    receipts = [c.deposit(vault, f"inv-{i}", d) for i, d in enumerate(docs)]
    for r, d in zip(receipts, docs):
        assert r.evidence, "the deposit receipt carries journal evidence"
        res = verify_receipt(r.evidence, d, key.verifier_key)
        assert res.ok, res.report()
    head = stub.GetCheckpoint(pb.GetCheckpointRequest())
    cp = open_checkpoint(head.note, verifier)
    assert cp.size == head.tree_size >= first.tree_size + 5
    cons = stub.GetConsistencyProof(pb.GetConsistencyProofRequest(old_size=first.tree_size))
    assert verify_consistency(first.note, head.note, cons.proof_file, key.verifier_key).ok
    incl = stub.GetInclusionProof(pb.GetInclusionProofRequest(index=head.tree_size - 1))
    proofs.verify_inclusion(incl.index, incl.tree_size, proofs.leaf_hash(incl.leaf), list(incl.hashes),
                            open_checkpoint(incl.checkpoint.note, verifier).root)
    page = stub.ReadJournal(pb.ReadJournalRequest(vault=vault, page_size=3))
    assert [e.operation for e in page.entries] == ["create_vault", "deposit", "deposit"]
    rest = stub.ReadJournal(pb.ReadJournalRequest(vault=vault, start_index=page.next_index))
    assert [e.name for e in rest.entries] == ["inv-2", "inv-3", "inv-4"]
    assert all(e.actor == "service:permits" for e in page.entries)
    not_read = stub.GetDeliveryProof(pb.GetDeliveryProofRequest(vault=vault, name="inv-0", version=1))
    assert not not_read.read
    with pytest.raises(grpc.RpcError) as e:
        stub.ReadJournal(pb.ReadJournalRequest())  # the whole journal: operators only
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    other = pb_grpc.JournalServiceStub(srv.client("taxation")._channel)
    with pytest.raises(grpc.RpcError) as e:
        other.ReadJournal(pb.ReadJournalRequest(vault="permits"))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        stub.GetInclusionProof(pb.GetInclusionProofRequest(index=10**6, tree_size=10**6 + 1))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    op = pb_grpc.JournalServiceStub(srv.client("op-admin")._channel)
    everything = op.ReadJournal(pb.ReadJournalRequest(page_size=1000))
    # the two refused ReadJournal calls are journal entries themselves
    assert len(everything.entries) == everything.tree_size == head.tree_size + 2
    assert [(e.operation, e.outcome, e.actor) for e in everything.entries[-2:]] == [
        ("admin", "denied", "service:permits"), ("journal", "denied", "service:taxation")]


def test_vaultctl_receipt_then_verify(server_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    srv = server_factory()
    c = srv.client("permits")
    vault = new_vault_id("supplier")
    c.create_vault(vault)
    doc = tmp_path / "contract.pdf"
    doc.write_bytes(b"contract text " * 100)
    c.deposit(vault, "contract.pdf", doc.read_bytes())
    key = c.journal_public_key().verifier_key
    (tmp_path / "journal.vkey").write_text(key)
    receipt = c.receipt(vault, "contract.pdf")  # the public client method vaultctl uses
    assert json.loads(receipt)["kind"] == "deposit"
    base = [sys.executable, "-m", "vaultd.cli.vaultctl", "--server", srv.address, "--data-dir", str(srv.data_dir),
            "--as", "permits"]
    r = subprocess.run(base + ["receipt", vault, "contract.pdf", "-o", str(tmp_path / "r.json")], cwd=repo,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "vaultd.cli.vaultctl", "verify", str(tmp_path / "r.json"),
                        "--document", str(doc), "--public-key", str(tmp_path / "journal.vkey")],
                       cwd=repo, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(base + ["receipt", vault, "absent.pdf", "--version", "1"], cwd=repo, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 4 and "NotFound" in r.stderr and "no deposit" in r.stderr, r.stderr
