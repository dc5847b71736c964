"""CAdES-B detached signatures made by the card (slot 9C) through PC/SC, verified by openssl."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms

from vaultd.kiosk import cms, piv

DOC = b"Permit application no. 2026-0042\nApplicant: Alice Martin\n" * 40


def openssl_verify(sig: Path, doc: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed (scripts/setup installs it)"
    return subprocess.run(
        [openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig), "-content", str(doc),
         "-CAfile", str(ca), "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, text=True, timeout=30,
    )


def card_sign(p, document: bytes) -> bytes:  # type: ignore[no-untyped-def]
    with p.open() as card:
        card.select()
        cert = card.read_certificate(piv.SLOT_SIGN)
        card.verify_pin("123456")
        return cms.sign_detached(
            hashlib.sha256(document).digest(), cert, lambda d: card.sign_digest(piv.SLOT_SIGN, d)
        )


def test_card_signature_verifies_with_openssl(insert_card, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    der = card_sign(p, DOC)
    (tmp_path / "doc.txt").write_bytes(DOC)
    (tmp_path / "doc.p7s").write_bytes(der)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    out = openssl_verify(tmp_path / "doc.p7s", tmp_path / "doc.txt", tmp_path / "ca.pem")
    assert out.returncode == 0, out.stderr
    assert "Verification successful" in out.stderr

    # Another document: openssl refuses the same signature.
    (tmp_path / "other.txt").write_bytes(DOC + b"one more line\n")
    bad = openssl_verify(tmp_path / "doc.p7s", tmp_path / "other.txt", tmp_path / "ca.pem")
    assert bad.returncode != 0


def test_signature_has_the_cades_baseline_b_attributes(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    der = card_sign(p, DOC)
    info = asn1_cms.ContentInfo.load(der)
    sd = info["content"]
    assert sd["encap_content_info"]["content"].native is None  # detached
    si = sd["signer_infos"][0]
    names = [a["type"].native for a in si["signed_attrs"]]
    assert sorted(names) == ["content_type", "message_digest", "signing_certificate_v2", "signing_time"]
    attrs = {a["type"].native: a["values"][0] for a in si["signed_attrs"]}
    assert attrs["message_digest"].native == hashlib.sha256(DOC).digest()
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert ess["cert_hash"].native == hashlib.sha256(p.creds.cert_der(0x9C)).digest()
    # DER: the SET OF attributes is sorted by encoding.
    encoded = [a.dump() for a in si["signed_attrs"]]
    assert encoded == sorted(encoded)


def test_signing_twice_needs_the_pin_twice(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        cert = card.read_certificate(piv.SLOT_SIGN)
        card.verify_pin("123456")
        digest = hashlib.sha256(DOC).digest()
        cms.sign_detached(digest, cert, lambda d: card.sign_digest(piv.SLOT_SIGN, d))
        with pytest.raises(piv.PinRequired):
            cms.sign_detached(digest, cert, lambda d: card.sign_digest(piv.SLOT_SIGN, d))
