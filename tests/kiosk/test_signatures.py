"""Server-side verification of card signatures: CMS, digest, chain, dates, key usage, revocation."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from vaultd.core import signatures
from vaultd.core.signatures import CitizenTrust, verify_cms, verify_cms_batch
from vaultd.errors import InvalidArgument
from vaultd.kiosk import cms, devca

DOC = b"tax notice 2026\n" * 64
SHA = hashlib.sha256(DOC).digest()


def soft_sign(creds: devca.CardCredentials, slot: int = 0x9C, digest: bytes = SHA, **kw: object) -> bytes:
    key = creds.keys[slot]
    return cms.sign_detached(
        digest, creds.certs[slot], lambda d: key.sign(d, ec.ECDSA(Prehashed(hashes.SHA256()))), **kw  # type: ignore[arg-type]
    )


@pytest.fixture
def ca() -> devca.DevCA:
    return devca.DevCA.create()


def trust(ca: devca.DevCA) -> CitizenTrust:
    return CitizenTrust((ca.cert,), (ca.crl(),))


def test_valid_signature(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin", display_name="Alice Martin")
    result = verify_cms(soft_sign(creds), SHA, trust(ca))
    assert result.valid, result.reason
    assert result.signer == "alice.martin"
    assert "CN=Alice Martin" in (result.signer_subject or "")
    assert result.chain[0] == creds.cert_der(0x9C)
    assert result.chain[-1] == ca.cert.public_bytes(serialization.Encoding.DER)
    assert result.to_dict()["valid"] is True


def test_digest_of_another_version_is_refused(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin")
    result = verify_cms(soft_sign(creds), hashlib.sha256(DOC + b"x").digest(), trust(ca))
    assert not result.valid and "different document" in result.reason


def test_revoked_certificate(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin", revoked=True)
    result = verify_cms(soft_sign(creds), SHA, trust(ca))
    assert not result.valid and "revoked" in result.reason
    # With the CRL from before the revocation it would pass: the CRL is what decides.
    fresh = devca.DevCA(ca.key, ca.cert)
    assert verify_cms(soft_sign(creds), SHA, CitizenTrust((ca.cert,), (fresh.crl(),))).valid


def test_expired_certificate(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin", expired=True)
    result = verify_cms(soft_sign(creds), SHA, trust(ca))
    assert not result.valid and "expired" in result.reason


def test_certificate_from_a_foreign_ca(ca: devca.DevCA) -> None:
    other = devca.DevCA.create("vaultd Development Citizen CA")  # same name, other key
    creds = other.issue_card("alice.martin")
    result = verify_cms(soft_sign(creds), SHA, trust(ca))
    assert not result.valid and "not issued by the citizen-card CA" in result.reason


def test_authentication_key_cannot_sign_documents(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin")
    result = verify_cms(soft_sign(creds, slot=0x9A), SHA, trust(ca))
    assert not result.valid and "nonRepudiation" in result.reason


def test_tampered_signature(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin")
    der = bytearray(soft_sign(creds))
    # The ECDSA signature sits at the end of the SignerInfo: flip a bit of its last byte.
    der[-1] ^= 0x01
    result = verify_cms(bytes(der), SHA, trust(ca))
    assert not result.valid and "does not verify" in result.reason


def test_signature_by_another_key_with_a_valid_certificate(ca: devca.DevCA) -> None:
    alice = ca.issue_card("alice.martin")
    mallory = ca.issue_card("mallory")
    key = mallory.keys[0x9C]
    der = cms.sign_detached(SHA, alice.certs[0x9C], lambda d: key.sign(d, ec.ECDSA(Prehashed(hashes.SHA256()))))
    result = verify_cms(der, SHA, trust(ca))
    assert not result.valid and "does not verify" in result.reason


def test_missing_or_stale_crl(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin")
    result = verify_cms(soft_sign(creds), SHA, CitizenTrust((ca.cert,), ()))
    assert not result.valid and "revocation list" in result.reason
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    result = verify_cms(soft_sign(creds), SHA, trust(ca), at=later)
    assert not result.valid and "out of date" in result.reason
    assert verify_cms(soft_sign(creds), SHA, CitizenTrust((ca.cert,), (), require_crl=False)).valid


def test_garbage_is_an_invalid_argument(ca: devca.DevCA) -> None:
    for junk in (b"", b"\x30\x03\x02\x01", b"not a cms at all", b"\x30" + b"\x84\xff\xff\xff\xff"):
        with pytest.raises(InvalidArgument):
            verify_cms(junk, SHA, trust(ca))
    with pytest.raises(InvalidArgument):
        verify_cms(b"\x30" * (signatures.MAX_CMS + 1), SHA, trust(ca))


def test_batch_keeps_results_in_order(ca: devca.DevCA) -> None:
    good = ca.issue_card("alice.martin")
    revoked = ca.issue_card("bob", revoked=True)
    items = [(soft_sign(good), SHA), (soft_sign(revoked), SHA), (soft_sign(good), bytes(32)), (soft_sign(good), SHA)]
    results = verify_cms_batch(items, trust(ca))
    assert [r.valid for r in results] == [True, False, False, True]
    assert "revoked" in results[1].reason and "different document" in results[2].reason


def test_trust_from_files(ca: devca.DevCA, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca.revoke(ca.issue_card("bob").certs[0x9C])
    ca.save(tmp_path)
    t = CitizenTrust.from_files(tmp_path / "ca.pem", [tmp_path / "crl.pem"])
    assert t.anchors == (ca.cert,)
    assert verify_cms(soft_sign(ca.issue_card("alice.martin")), SHA, t).valid
