"""The citizen's story through real gRPC (mTLS, LMDB, journal) and the real PC/SC stack:
login with the card, list, read, sign; the office fetches the evidence and openssl verifies it."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from vaultd.core.signatures import CitizenTrust
from vaultd.errors import NotFound, PermissionDenied, Unauthenticated
from vaultd.journal.leaf import Leaf
from vaultd.kiosk import cms, devca, piv
from vaultd.v1 import journal_pb2, journal_pb2_grpc

from .conftest import KioskServer

FORM = b"%PDF-1.7\nBuilding permit application 2026-0042\n" + bytes(range(256)) * 64
VAULT = "citizen-alice.martin"


@pytest.fixture(scope="module")
def revoked_card(ca: devca.DevCA) -> devca.CardCredentials:
    return ca.issue_card("revoked.rita", revoked=True)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, ca: devca.DevCA, revoked_card) -> Iterator[KioskServer]:  # type: ignore[no-untyped-def]
    s = KioskServer(tmp_path_factory.mktemp("vaultd"), CitizenTrust((ca.cert,), (ca.crl(),)))
    with s.service("permits") as permits:
        permits.create_vault(VAULT)
        permits.deposit(VAULT, "permits/2026-0042.pdf", FORM, content_type="application/pdf")
    try:
        yield s
    finally:
        s.stop()


def login(kiosk, card: piv.PivCard, pin: str = "123456"):  # type: ignore[no-untyped-def]
    challenge = kiosk.begin_session()
    cert = card.read_certificate(piv.SLOT_AUTH).public_bytes(serialization.Encoding.DER)
    card.verify_pin(pin)
    sig = card.sign_digest(piv.SLOT_AUTH, hashlib.sha256(challenge.to_sign).digest())
    return kiosk.complete_session(challenge.nonce, cert, sig)


def sign_leaves(srv: KioskServer) -> list[Leaf]:
    with srv.service("permits") as permits:
        stub = journal_pb2_grpc.JournalServiceStub(permits._channel)
        resp = stub.ReadJournal(journal_pb2.ReadJournalRequest(vault=VAULT, page_size=1000),
                                metadata=(), timeout=10)
    return [leaf for leaf in (Leaf.decode(e.leaf) for e in resp.entries) if leaf.operation == "sign"]


def test_login_list_read_sign_and_verify_offline(srv: KioskServer, insert_card, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with srv.kiosk() as kiosk, p.open() as card:
        card.select()
        session = login(kiosk, card)
        assert session.vault == VAULT and session.display_name == "Alice Martin"
        with kiosk.vault_client() as mine:
            names = [s.name for s in mine.list(VAULT)]
            assert "permits/2026-0042.pdf" in names
            stat = mine.stat(VAULT, "permits/2026-0042.pdf")
            assert mine.read_bytes(VAULT, "permits/2026-0042.pdf") == FORM
            with pytest.raises(PermissionDenied):
                list(mine.list("citizen-somebody-else"))
        # Sign: the kiosk shows name, size, SHA-256; the citizen confirms and enters the PIN.
        assert stat.sha256 == hashlib.sha256(FORM).digest()
        cert = card.read_certificate(piv.SLOT_SIGN)
        card.verify_pin("123456")
        der = cms.sign_detached(stat.sha256, cert, lambda d: card.sign_digest(piv.SLOT_SIGN, d))
        resp = kiosk.submit_signature(VAULT, "permits/2026-0042.pdf", stat.version, der)
        assert resp.valid, resp.reason
        assert resp.signer == "alice.martin" and resp.journaled and resp.receipt
        kiosk.end_session()

    # The office fetches the evidence from the journal; openssl verifies it with the CA alone.
    leaves = [lf for lf in sign_leaves(srv) if lf.outcome == "ok"]
    assert leaves and leaves[-1].sha256 == hashlib.sha256(FORM).digest()
    assert leaves[-1].kiosk == "service:kiosk-townhall"
    evidence = leaves[-1].extra_dict["cms"]
    (tmp_path / "form.pdf").write_bytes(FORM)
    (tmp_path / "form.p7s").write_bytes(evidence)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    out = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "form.p7s"),
         "-content", str(tmp_path / "form.pdf"), "-CAfile", str(tmp_path / "ca.pem"), "-purpose", "any",
         "-out", "/dev/null"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_token_is_bound_to_its_kiosk_and_ends_with_the_session(srv: KioskServer, insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with srv.kiosk("townhall") as kiosk, p.open() as card:
        card.select()
        login(kiosk, card)
        token = kiosk.token
        with srv.kiosk("library") as other:
            other.token = token
            with pytest.raises(Unauthenticated, match="another kiosk"), other.vault_client() as stolen:
                list(stolen.list(VAULT))
        kiosk.end_session()
        kiosk.token = token
        with pytest.raises(Unauthenticated, match="closed"), kiosk.vault_client() as after:
            list(after.list(VAULT))


def test_only_kiosks_open_sessions(srv: KioskServer) -> None:
    from vaultd.transport.kiosk import KioskClient

    ck = srv.pki.client("svc-permits")
    with KioskClient(srv.address, ca=srv.pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost") as k:
        with pytest.raises(PermissionDenied, match="not a kiosk"):
            k.begin_session()


def test_refused_logins_are_journaled(srv: KioskServer, insert_card, revoked_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card(revoked_card)
    with srv.kiosk() as kiosk, p.open() as card:
        card.select()
        with pytest.raises(Unauthenticated, match="revoked"):
            login(kiosk, card)
    journal = srv.journal
    entries, _ = journal.read(0, limit=1000)
    denied = [lf for _, lf in entries if lf.operation == "login" and lf.outcome == "denied"]
    assert any(lf.actor_name == "revoked.rita" and b"revoked" in lf.extra_dict.get("reason", b"") for lf in denied)


def test_signature_over_another_document_is_refused(srv: KioskServer, insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with srv.kiosk() as kiosk, p.open() as card:
        card.select()
        login(kiosk, card)
        cert = card.read_certificate(piv.SLOT_SIGN)
        card.verify_pin("123456")
        der = cms.sign_detached(hashlib.sha256(b"another text").digest(), cert,
                                lambda d: card.sign_digest(piv.SLOT_SIGN, d))
        resp = kiosk.submit_signature(VAULT, "permits/2026-0042.pdf", 0, der)
        assert not resp.valid and "different document" in resp.reason
        with pytest.raises(NotFound):
            kiosk.submit_signature(VAULT, "no/such/object", 0, der)
        kiosk.end_session()
    failed = [lf for lf in sign_leaves(srv) if lf.outcome == "failed"]
    assert failed and b"different document" in failed[-1].extra_dict["result"]


def test_card_removed_mid_signature_stores_nothing(srv: KioskServer, insert_card) -> None:  # type: ignore[no-untyped-def]
    before = len(sign_leaves(srv))
    p = insert_card()
    with srv.kiosk() as kiosk, p.open() as card:
        card.select()
        login(kiosk, card)
        cert = card.read_certificate(piv.SLOT_SIGN)
        card.verify_pin("123456")
        p.link.pull_on_ins = 0x87
        with pytest.raises(piv.CardRemoved):
            cms.sign_detached(hashlib.sha256(FORM).digest(), cert, lambda d: card.sign_digest(piv.SLOT_SIGN, d))
        kiosk.end_session()
    assert len(sign_leaves(srv)) == before
    assert p.card.signatures_made == 1  # the login only


def test_signature_with_another_citizens_card_is_not_kept(srv: KioskServer, insert_card, ca) -> None:  # type: ignore[no-untyped-def]
    """Alice logs in with her card; Bob's card, put in the reader during her session, signs her form: a
    valid CMS by a valid card, but not hers. Journaled as failed, never kept with the version."""
    with srv.service("permits") as permits:
        kept_before = len(permits.signatures(VAULT, "permits/2026-0042.pdf").signatures)
    alice = insert_card()
    with srv.kiosk() as kiosk:
        with alice.open() as card:
            card.select()
            session = login(kiosk, card)
        assert session.vault == VAULT
        alice.remove()
        bob = insert_card(ca.issue_card("bob.other", display_name="Bob Other"))
        try:
            with bob.open() as card:
                card.select()
                cert = card.read_certificate(piv.SLOT_SIGN)
                card.verify_pin("123456")
                der = cms.sign_detached(hashlib.sha256(FORM).digest(), cert,
                                        lambda d: card.sign_digest(piv.SLOT_SIGN, d))
            resp = kiosk.submit_signature(VAULT, "permits/2026-0042.pdf", 0, der)
            assert not resp.valid and resp.reason == "signed with another citizen's card", resp.reason
            assert resp.signer == "bob.other" and resp.journaled
            kiosk.end_session()
        finally:
            bob.remove()  # the reader left empty, as the fixture expects
    with srv.service("permits") as permits:
        assert len(permits.signatures(VAULT, "permits/2026-0042.pdf").signatures) == kept_before
    failed = [lf for lf in sign_leaves(srv) if lf.outcome == "failed"]
    assert failed[-1].actor_name == "alice.martin" and failed[-1].extra_dict["signer"] == b"bob.other"
