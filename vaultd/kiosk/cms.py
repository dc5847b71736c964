"""Detached CMS signatures (RFC 5652), CAdES baseline B (ETSI EN 319 122-1), made with a card.

The signed attributes are content-type (id-data), message-digest (SHA-256 of the document),
signing-time and signing-certificate-v2 (RFC 5035: the SHA-256 of the signer's certificate with its
issuer and serial). The card signs the SHA-256 of the DER of those attributes encoded as a SET OF:
``signed_attributes`` builds them, ``assemble`` puts the card's signature into a SignedData, and
``sign_detached`` does both with any ``sign(digest) -> DER ECDSA signature`` callable (a PIV slot).
The result verifies with ``openssl cms -verify -binary -inform DER -content DOC -CAfile ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence

import asn1crypto.tsp  # type: ignore[import-untyped]  # noqa: F401  (registers signing-certificate-v2)
from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["signed_attributes", "assemble", "sign_detached", "attributes_digest"]


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def signed_attributes(
    document_sha256: bytes, signer: x509.Certificate, *, signing_time: dt.datetime | None = None
) -> cms.CMSAttributes:
    """The CAdES-B signed attributes, in DER order (a SET OF is sorted by the encodings)."""
    if len(document_sha256) != 32:
        raise ValueError("a SHA-256 digest has 32 bytes")
    when = (signing_time or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    cert = _asn1_cert(signer)
    ess_cert = asn1crypto.tsp.ESSCertIDv2(
        {
            # hash_algorithm left out: SHA-256 is its DEFAULT, which DER omits.
            "cert_hash": hashlib.sha256(cert.dump()).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName(name="directory_name", value=cert.issuer)],
                "serial_number": cert.serial_number,
            },
        }
    )
    attrs = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time(name="utc_time", value=when)]}),
        cms.CMSAttribute({"type": "message_digest", "values": [document_sha256]}),
        cms.CMSAttribute(
            {"type": "signing_certificate_v2", "values": [asn1crypto.tsp.SigningCertificateV2({"certs": [ess_cert]})]}
        ),
    ]
    attrs.sort(key=lambda a: a.dump())
    return cms.CMSAttributes(attrs)


def attributes_digest(attrs: cms.CMSAttributes) -> bytes:
    """SHA-256 of the DER of the signed attributes with the SET OF tag: what the card signs."""
    der = attrs.dump()
    if der[0] != 0x31:  # inside a SignerInfo the set is tagged [0] IMPLICIT; sign it as a SET OF
        der = b"\x31" + der[1:]
    return hashlib.sha256(der).digest()


def assemble(
    attrs: cms.CMSAttributes,
    signature: bytes,
    signer: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """A detached SignedData (DER ContentInfo) with the signer certificate and any intermediates."""
    cert = _asn1_cert(signer)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": cert.issuer, "serial_number": cert.serial_number},
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "data"},  # detached: no content
            "certificates": [cert] + [_asn1_cert(c) for c in chain],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


def sign_detached(
    document_sha256: bytes,
    signer: x509.Certificate,
    sign: Callable[[bytes], bytes],
    *,
    chain: Sequence[x509.Certificate] = (),
    signing_time: dt.datetime | None = None,
) -> bytes:
    """Builds the attributes, has ``sign`` (e.g. a PIV slot 9C) sign their digest, returns the CMS."""
    attrs = signed_attributes(document_sha256, signer, signing_time=signing_time)
    signature = sign(attributes_digest(attrs))
    return assemble(attrs, signature, signer, chain)


