"""Reads are journaled, and proof of delivery works through the real daemon: a service deposits into a
citizen's vault, the citizen reads it with the kiosk session token (or another identity with read
rights reads it), and the sender gets the first read's leaf, inclusion proof and checkpoint, which
verify offline (vaultd.journal.receipt and `vaultctl verify`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from servers import RunningServer
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import verify_receipt
from vaultd.kiosk import devca
from vaultd.pki import issue_cert
from vaultd.transport.kiosk import KioskClient

ROOT = Path(__file__).resolve().parents[2]


def kiosk_login(srv: RunningServer, citizen: str) -> KioskClient:
    card = devca.DevCA.load(srv.data_dir / "citizen-ca").issue_card(citizen)
    ck = srv.pki.client("svc-kiosk-hall")
    if not ck.cert.exists():
        issue_cert(srv.pki.ca, "svc-kiosk-hall", ck)
    k = KioskClient(srv.address, ca=srv.pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost")
    ch = k.begin_session()
    sig = card.keys[0x9A].sign(hashlib.sha256(ch.to_sign).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    k.complete_session(ch.nonce, card.cert_der(0x9A), sig)
    return k


def test_proof_of_delivery_through_the_daemon(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    vault, name, doc = "citizen-nina.reader", "permits/P-7.txt", b"permit P-7 granted\n" * 50
    permits = srv.client("permits")
    permits.create_vault(vault)
    v1 = permits.deposit(vault, name, doc).stat.version
    assert permits.delivery_proof(vault, name, version=v1).read is False  # not yet read
    assert permits.read_bytes(vault, name) == doc  # the depositor's own read is no delivery
    assert permits.delivery_proof(vault, name).read is False
    size_before = permits.checkpoint().tree_size

    k = kiosk_login(srv, "nina.reader")
    with k.vault_client() as mine:
        assert mine.read_bytes(vault, name) == doc
        assert mine.read_bytes(vault, name, offset=5, length=10) == doc[5:15]
    k.close()

    proof = permits.delivery_proof(vault, name, version=v1)
    assert proof.read is True and proof.reader == "citizen:nina.reader"
    assert proof.index >= size_before
    leaf = Leaf.decode(permits.inclusion_proof(proof.index).leaf)
    assert (leaf.operation, leaf.vault, leaf.name, leaf.version, leaf.outcome) == ("read", vault, name, v1, "ok")
    assert leaf.sha256 == hashlib.sha256(doc).digest() and leaf.kiosk == "service:kiosk-hall"
    assert leaf.extra_dict["depositor"] == b"service:permits" and "range" not in leaf.extra_dict
    # the first read stays the proof: the later partial read does not replace it
    assert permits.delivery_proof(vault, name).index == proof.index

    key = tmp_path / "journal.vkey"
    key.write_text(permits.journal_public_key().verifier_key)
    (tmp_path / "delivery.json").write_bytes(proof.receipt)
    (tmp_path / "doc.txt").write_bytes(doc)
    res = verify_receipt(proof.receipt, doc, key)
    assert res.ok, res.report()
    assert not verify_receipt(proof.receipt, doc + b"x", key).ok
    r = subprocess.run([sys.executable, "-m", "vaultd.cli.vaultctl", "verify", str(tmp_path / "delivery.json"),
                        "--document", str(tmp_path / "doc.txt"), "--public-key", str(key)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr

    # every read is a journal entry: the depositor's read, the citizen's two
    entries = [Leaf.decode(e.leaf) for e in permits.read_journal(vault, page_size=1000).entries]
    reads = [lf for lf in entries if lf.operation == "read"]
    assert [f"{lf.actor_kind}:{lf.actor_name}" for lf in reads] == [
        "service:permits", "citizen:nina.reader", "citizen:nina.reader"]
    assert reads[2].extra_dict["range"] == b"5-15"


def test_another_identity_with_read_rights_proves_delivery(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    vault = "supplier-acme"
    with srv.client("procurement") as proc, srv.client("taxation") as tax:
        proc.create_vault(vault)
        v = proc.deposit(vault, "tender.pdf", b"tender").stat.version
        assert proc.delivery_proof(vault, "tender.pdf", version=v).read is False
        assert tax.read_bytes(vault, "tender.pdf") == b"tender"
        proof = proc.delivery_proof(vault, "tender.pdf", version=v)
        assert proof.read and proof.reader == "service:taxation"
        assert verify_receipt(proof.receipt, b"tender", proc.journal_public_key().verifier_key).ok
