"""Signature evidence kept with the object version (the `signatures` database, same transaction as the
journal leaf), fetched by the office through GetSignatures / `vaultctl signatures`, and checked
offline by `openssl cms -verify` and `vaultctl verify --cms` (real daemon, real gRPC over TLS)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from vaultd.errors import InvalidArgument
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import verify_receipt
from vaultd.kiosk import cms, devca
from vaultd.pki import issue_cert
from vaultd.transport.kiosk import KioskClient

ROOT = Path(__file__).resolve().parents[2]
VAULT, NAME = "citizen-olga.signer", "permits/2026-0100.txt"
DOC = b"building permit application 2026-0100\n" * 20


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_signed_evidence_is_kept_fetched_and_verifies_offline(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    permits = srv.client("permits")
    permits.create_vault(VAULT)
    permits.deposit(VAULT, NAME, DOC)
    assert list(permits.signatures(VAULT, NAME).signatures) == []

    ca = devca.DevCA.load(srv.data_dir / "citizen-ca")
    card = ca.issue_card("olga.signer", display_name="Olga Signer")
    ck = srv.pki.client("svc-kiosk-hall")
    issue_cert(srv.pki.ca, "svc-kiosk-hall", ck)

    def card_sign(slot: int, digest: bytes) -> bytes:
        return card.keys[slot].sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    # more certificates than a journal leaf can hold: the CMS is over 4 KiB
    extra = [devca.DevCA.create(f"Unrelated CA {i}").cert for i in range(6)]
    with KioskClient(srv.address, ca=srv.pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost") as k:
        ch = k.begin_session()
        s = k.complete_session(ch.nonce, card.cert_der(0x9A), card_sign(0x9A, hashlib.sha256(ch.to_sign).digest()))
        der = cms.sign_detached(hashlib.sha256(DOC).digest(), card.certs[0x9C], lambda d: card_sign(0x9C, d),
                                chain=[ca.cert, *extra])
        assert len(der) > 4096
        r = k.submit_signature(s.vault, NAME, 1, der)
        assert r.valid and r.journaled, r.reason
        with pytest.raises(InvalidArgument, match="larger than 65536"):
            k.submit_signature(s.vault, NAME, 1, b"\x30" * (64 * 1024 + 1))

    got = permits.signatures(VAULT, NAME)
    assert got.version == 1 and got.sha256 == hashlib.sha256(DOC).digest()
    (sig,) = got.signatures
    assert sig.cms == der and sig.valid and sig.signer == "olga.signer" and sig.kiosk == "service:kiosk-hall"
    assert sig.journal_index == r.journal_index
    assert sig.chain[0] == card.cert_der(0x9C) and sig.chain[-1] == ca.cert.public_bytes(serialization.Encoding.DER)
    leaf = Leaf.decode(permits.inclusion_proof(sig.journal_index).leaf)
    assert leaf.operation == "sign" and leaf.extra_dict["cms_sha256"] == hashlib.sha256(der).hexdigest().encode()
    assert "cms" not in leaf.extra_dict  # too large for the leaf: kept with the version
    vkey = permits.journal_public_key().verifier_key
    assert verify_receipt(sig.receipt, None, vkey).ok

    # the office fetches the files with vaultctl and checks them with ordinary tools
    out = tmp_path / "evidence"
    base = [sys.executable, "-m", "vaultd.cli.vaultctl", "--server", srv.address, "--data-dir", str(srv.data_dir),
            "--as", "permits"]
    p = run(*base, "signatures", VAULT, NAME, "-o", str(out))
    assert p.returncode == 0, p.stderr
    listed = json.loads(p.stdout)["signatures"]
    assert len(listed) == 1 and listed[0]["signer"] == "olga.signer"
    p7s, receipt = Path(listed[0]["cms_file"]), Path(listed[0]["receipt_file"])
    assert p7s.read_bytes() == der
    doc, ca_pem, key = tmp_path / "form.txt", tmp_path / "citizen-ca.pem", tmp_path / "journal.vkey"
    doc.write_bytes(DOC)
    ca_pem.write_bytes(ca.cert_pem)
    key.write_text(vkey)
    p = run("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s), "-content", str(doc),
            "-CAfile", str(ca_pem), "-purpose", "any", "-out", "/dev/null")
    assert p.returncode == 0, p.stderr
    ctl = [sys.executable, "-m", "vaultd.cli.vaultctl", "verify"]
    crl = srv.data_dir / "citizen-ca" / "crl.pem"
    p = run(*ctl, str(receipt), "--public-key", str(key), "--cms", str(p7s), "--ca", str(ca_pem),
            "--document", str(doc), "--crl", str(crl))
    assert p.returncode == 0, p.stdout + p.stderr
    other = tmp_path / "other.txt"
    other.write_bytes(DOC + b"changed")
    p = run(*ctl, "--cms", str(p7s), "--ca", str(ca_pem), "--document", str(other))
    assert p.returncode == 11 and "different document" in p.stderr, p.stdout + p.stderr
    stranger = tmp_path / "stranger-ca.pem"
    stranger.write_bytes(devca.DevCA.create("Stranger CA").cert_pem)
    p = run(*ctl, "--cms", str(p7s), "--ca", str(stranger), "--document", str(doc))
    assert p.returncode == 11 and "not issued by the citizen-card CA" in p.stderr, p.stdout + p.stderr


def test_a_signature_with_another_citizens_card_is_refused(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Bob's card signs the very document Alice has in her vault, submitted in Alice's session: a
    valid CMS with a valid chain, but not Alice's signature. It is journaled as failed, never kept."""
    srv = server_factory()
    permits = srv.client("permits")
    ca = devca.DevCA.load(srv.data_dir / "citizen-ca")
    alice, bob = ca.issue_card("alice.owner"), ca.issue_card("bob.other")
    for who in ("alice.owner", "bob.other"):
        permits.create_vault(f"citizen-{who}")
        permits.deposit(f"citizen-{who}", NAME, DOC)
    ck = srv.pki.client("svc-kiosk-hall")
    issue_cert(srv.pki.ca, "svc-kiosk-hall", ck)

    def signed_by(card: devca.CardCredentials) -> bytes:
        return cms.sign_detached(hashlib.sha256(DOC).digest(), card.certs[0x9C], lambda d: card.keys[0x9C].sign(
            d, ec.ECDSA(Prehashed(hashes.SHA256()))))

    with KioskClient(srv.address, ca=srv.pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost") as k:
        ch = k.begin_session()
        s = k.complete_session(ch.nonce, alice.cert_der(0x9A), alice.keys[0x9A].sign(
            hashlib.sha256(ch.to_sign).digest(), ec.ECDSA(Prehashed(hashes.SHA256()))))
        assert s.vault == "citizen-alice.owner"
        r = k.submit_signature(s.vault, NAME, 1, signed_by(bob))
        assert not r.valid and r.reason == "signed with another citizen's card", r.reason
        assert r.signer == "bob.other" and r.journaled
        assert list(permits.signatures(s.vault, NAME).signatures) == []
        leaf = Leaf.decode(permits.inclusion_proof(r.journal_index).leaf)
        assert (leaf.operation, leaf.outcome, leaf.vault, leaf.actor_name) == (
            "sign", "failed", "citizen-alice.owner", "alice.owner")
        assert leaf.extra_dict["signer"] == b"bob.other"
        # her own card, in her own session, is kept
        r = k.submit_signature(s.vault, NAME, 1, signed_by(alice))
        assert r.valid and r.signer == "alice.owner", r.reason
    (kept,) = permits.signatures(s.vault, NAME).signatures
    assert kept.valid and kept.signer == "alice.owner"
