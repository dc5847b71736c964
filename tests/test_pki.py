"""The development PKI: chains, names, key usages, file modes, idempotent first run."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vaultd.core.policy import Policy
from vaultd.pki import SERVICES, ensure_dev_pki, ensure_dev_policy
from vaultd.types import Identity


def _load(p: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(p.read_bytes())


def test_dev_pki(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path)
    ca = _load(pki.ca.cert)
    server = _load(pki.server.cert)
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    for cn in [f"svc-{s}" for s in SERVICES] + ["op-admin"]:
        c = _load(pki.client(cn).cert)
        c.verify_directly_issued_by(ca)
        assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    for p in pki.dir.glob("*-key.pem"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    before = {p.name: p.read_bytes() for p in pki.dir.iterdir()}
    ensure_dev_pki(tmp_path)  # a second run keeps everything
    assert {p.name: p.read_bytes() for p in pki.dir.iterdir()} == before


def test_dev_policy(tmp_path: Path) -> None:
    pol = Policy.from_file(ensure_dev_policy(tmp_path))
    permits, taxation = Identity("service", "permits"), Identity("service", "taxation")
    for verb in ("create", "deposit", "read", "destroy", "retention", "hold"):
        assert pol.allows(permits, verb, "citizen-alice")
        assert pol.allows(permits, verb, "supplier-acme")
        assert pol.allows(permits, verb, "permits")
        assert not pol.allows(permits, verb, "taxation")
        assert pol.allows(taxation, verb, "taxation")
    assert not pol.allows(permits, "admin", None)
    assert pol.allows(Identity("operator", "admin"), "admin", None)
    assert not pol.allows(Identity("operator", "admin"), "read", "citizen-alice")
    assert pol.allows(Identity("citizen", "alice"), "read", "citizen-alice")
    assert not pol.allows(Identity("citizen", "alice"), "read", "citizen-bob")
