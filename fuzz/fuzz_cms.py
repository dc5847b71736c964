"""CMS signatures and certificates that come from a kiosk (vaultd.core.signatures): any bytes as a
detached CAdES signature, or as a card certificate, are either validated or refused (a result that
says why, InvalidArgument, CertificateRejected); a mutated signature is never reported valid."""

from __future__ import annotations

import datetime as dt
import hashlib

import atheris

import _harness

with atheris.instrument_imports(include=["vaultd", "asn1crypto"]):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    from vaultd.core.signatures import (USAGE_AUTH, USAGE_SIGN, CertificateRejected, CitizenTrust,
                                        check_certificate, verify_cms)
    from vaultd.errors import VaultError
    from vaultd.kiosk.cms import sign_detached
    from vaultd.kiosk.devca import DevCA

CA = DevCA.create("vaultd fuzz citizen CA")
CARD = CA.issue_card("fuzz-citizen")
TRUST = CitizenTrust((CA.cert,), (CA.crl(),), require_crl=True)
DOC_SHA = hashlib.sha256(b"the document").digest()
SIGNER = CARD.certs[0x9C]
GOOD = sign_detached(DOC_SHA, SIGNER, lambda d: CARD.keys[0x9C].sign(d, ec.ECDSA(Prehashed(hashes.SHA256()))),
                     chain=[CA.cert])
AT = dt.datetime.now(dt.timezone.utc)
assert verify_cms(GOOD, DOC_SHA, TRUST, at=AT).valid


def test_one_input(data: bytes) -> None:
    if not data:
        return
    kind, blob = data[0] % 2, data[1:]
    if kind == 0:
        try:
            res = verify_cms(blob, DOC_SHA, TRUST, at=AT)
        except VaultError:
            # Found by this harness: a certificate inside the CMS with an unknown X.509 version or
            # curve once escaped as x509.InvalidVersion / UnsupportedAlgorithm; now InvalidArgument.
            return
        if res.valid:
            assert blob == GOOD or _same_signature(blob), "a CMS other than the one made was reported valid"
    else:
        try:
            cert = x509.load_der_x509_certificate(blob)
        except (ValueError, x509.InvalidVersion):
            return  # not a certificate at all: the harness's own parse
        for usage in (USAGE_SIGN, USAGE_AUTH):
            try:
                check_certificate(cert, TRUST, usage=usage, at=AT)
            except (CertificateRejected, VaultError, ValueError):
                # regressions/cms/unsupported-curve-certificate: a certificate on a curve cryptography
                # does not know once escaped as UnsupportedAlgorithm; now CertificateRejected.
                pass


def _same_signature(blob: bytes) -> bool:
    """A re-encoding that carries the same signed attributes and signature (DER allows none, BER might)."""
    from asn1crypto import cms

    a = cms.ContentInfo.load(GOOD)["content"]["signer_infos"][0]
    b = cms.ContentInfo.load(blob)["content"]["signer_infos"][0]
    return bool(a["signature"].native == b["signature"].native
                and a["signed_attrs"].dump() == b["signed_attrs"].dump())


SEEDS = [b"\x00" + GOOD, b"\x01" + CARD.cert_der(0x9C), b"\x01" + CARD.cert_der(0x9A)]

if __name__ == "__main__":
    _harness.run(test_one_input, SEEDS)
