"""Server-side verification of card signatures: CMS, digest, chain, dates, key usage, revocation."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
from cryptography.x509.oid import NameOID

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


# -- chain rules: extended key usage, critical extensions, path length, CA key usage ----------------
_NOW = dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _card_cert(issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Name, *, usage: str,
               extra: Sequence[tuple[x509.ExtensionType, bool]] = ()) -> x509.Certificate:
    """A card certificate for carol (P-256, key usage for ``usage``) with the extensions ``extra``."""
    auth = usage == signatures.USAGE_AUTH
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "carol")]))
         .issuer_name(issuer).public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(_NOW - dt.timedelta(minutes=5)).not_valid_after(_NOW + dt.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=auth, content_commitment=not auth, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                      crl_sign=False, encipher_only=False, decipher_only=False), critical=True))
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return b.sign(issuer_key, hashes.SHA256())


def _intermediate(ca: devca.DevCA, *, key_usage: bool = True, path_length: int | None = None,
                  ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, x509.CertificateRevocationList]:
    """An intermediate CA under ``ca`` (its key, its certificate, its CRL)."""
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(_name("Citizen Sub CA")).issuer_name(ca.cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(_NOW - dt.timedelta(minutes=5)).not_valid_after(_NOW + dt.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True))
    if key_usage:
        b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    cert = b.sign(ca.key, hashes.SHA256())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject).last_update(_NOW)
           .next_update(_NOW + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, cert, crl


def _root(path_length: int | None) -> devca.DevCA:
    """A citizen-card CA like the development one, with the path length given."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("City Citizen Root")).issuer_name(_name("City Citizen Root"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - dt.timedelta(minutes=5)).not_valid_after(_NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return devca.DevCA(key, cert)


def _refused(cert: x509.Certificate, trust_: CitizenTrust, usage: str, **kw: Any) -> str:
    with pytest.raises(signatures.CertificateRejected) as e:
        signatures.check_certificate(cert, trust_, usage=usage, **kw)
    return str(e.value)


def test_extended_key_usage_must_allow_the_use(ca: devca.DevCA) -> None:
    def eku(*oids: x509.ObjectIdentifier) -> list[tuple[x509.ExtendedKeyUsage, bool]]:
        return [(x509.ExtendedKeyUsage(list(oids)), False)]

    auth, sign = signatures.USAGE_AUTH, signatures.USAGE_SIGN
    # a TLS server certificate of the same CA, with digitalSignature, cannot log a citizen in
    server = _card_cert(ca.key, ca.cert.subject, usage=auth, extra=eku(EKU.SERVER_AUTH))
    assert "extended key usage (serverAuth) has none of clientAuth" in _refused(server, trust(ca), auth)
    for ok in ([], eku(EKU.CLIENT_AUTH), eku(EKU.SERVER_AUTH, EKU.CLIENT_AUTH)):
        signatures.check_certificate(_card_cert(ca.key, ca.cert.subject, usage=auth, extra=ok), trust(ca), usage=auth)
    # signing: document signing, S/MIME (emailProtection) or any purpose; not a login-only certificate
    login_only = _card_cert(ca.key, ca.cert.subject, usage=sign, extra=eku(EKU.CLIENT_AUTH))
    assert "not for signatures" in _refused(login_only, trust(ca), sign)
    for ok in ([], eku(x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")), eku(EKU.EMAIL_PROTECTION),
               eku(EKU.ANY_EXTENDED_KEY_USAGE)):
        signatures.check_certificate(_card_cert(ca.key, ca.cert.subject, usage=sign, extra=ok), trust(ca), usage=sign)


def test_unknown_critical_extension_is_refused(ca: devca.DevCA) -> None:
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    crit = _card_cert(ca.key, ca.cert.subject, usage=signatures.USAGE_AUTH, extra=[(odd, True)])
    assert "critical extension this server does not process (1.3.6.1.4.1.99999.1)" in _refused(
        crit, trust(ca), signatures.USAGE_AUTH)
    # the same extension, not critical, may be ignored
    plain = _card_cert(ca.key, ca.cert.subject, usage=signatures.USAGE_AUTH, extra=[(odd, False)])
    signatures.check_certificate(plain, trust(ca), usage=signatures.USAGE_AUTH)


def test_path_length_of_the_root_is_enforced() -> None:
    for path_length, accepted in ((0, False), (1, True), (None, True)):
        root = _root(path_length)
        key, inter, crl = _intermediate(root)
        card = _card_cert(key, inter.subject, usage=signatures.USAGE_AUTH)
        t = CitizenTrust((root.cert,), (root.crl(), crl))
        if accepted:
            chain = signatures.check_certificate(card, t, usage=signatures.USAGE_AUTH, intermediates=[inter])
            assert chain == [card, inter, root.cert]
        else:
            assert "allows 0 intermediate CA(s) below it, the chain has 1" in _refused(
                card, t, signatures.USAGE_AUTH, intermediates=[inter])


def test_every_ca_of_the_chain_must_have_key_cert_sign() -> None:
    root = _root(None)
    key, inter, crl = _intermediate(root, key_usage=False)
    card = _card_cert(key, inter.subject, usage=signatures.USAGE_SIGN)
    assert "intermediate CA certificate may not sign certificates (no keyCertSign" in _refused(
        card, CitizenTrust((root.cert,), (root.crl(), crl)), signatures.USAGE_SIGN, intermediates=[inter])


def test_the_development_card_chain_is_accepted(ca: devca.DevCA) -> None:
    creds = ca.issue_card("alice.martin")
    for slot, usage in ((0x9A, signatures.USAGE_AUTH), (0x9C, signatures.USAGE_SIGN)):
        chain = signatures.check_certificate(creds.certs[slot], trust(ca), usage=usage)
        assert chain == [creds.certs[slot], ca.cert]
