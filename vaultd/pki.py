"""The development PKI and policy, made on the first run of ``vaultd serve --dev``.

In ``<data-dir>/pki``:

- ``ca.pem`` / ``ca-key.pem``: a CA (EC P-256) that signs everything below;
- ``server.pem`` / ``server-key.pem``: the daemon, valid for localhost, 127.0.0.1 and ::1;
- ``svc-permits``, ``svc-taxation``, ``svc-procurement`` (``.pem`` / ``-key.pem``): city services;
- ``op-admin``: an operator.

Private keys are written with mode 0600, never overwritten. ``<data-dir>/policy.toml`` lets each
service work in ``citizen-*`` and ``supplier-*`` vaults and in its own vault, citizens read their
own vault, and operators administer the store. This is for development and tests; production uses
the city's own PKI and a reviewed policy.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "SERVICES",
    "OPERATORS",
    "DevPKI",
    "CertKey",
    "ensure_dev_pki",
    "ensure_dev_policy",
    "dev_policy_text",
    "make_ca",
    "issue_cert",
    "load_ca",
]

SERVICES = ("permits", "taxation", "procurement")
OPERATORS = ("admin",)
SERVICE_VERBS = ("create", "deposit", "read", "stat", "list", "count", "check", "destroy",
                 "retention", "hold", "journal")
_CA_DAYS = 3650
_LEAF_DAYS = 825


@dataclass(frozen=True)
class CertKey:
    cert: Path
    key: Path


@dataclass(frozen=True)
class DevPKI:
    dir: Path
    ca: CertKey
    server: CertKey

    def client(self, cn: str) -> CertKey:
        """The certificate and key of ``cn`` (``svc-permits``, ``op-admin``, ...)."""
        return CertKey(self.dir / f"{cn}.pem", self.dir / f"{cn}-key.pem")

    def service(self, name: str) -> CertKey:
        return self.client(f"svc-{name}")

    def operator(self, name: str) -> CertKey:
        return self.client(f"op-{name}")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_ca(dir: Path, name: str = "vaultd development CA", *, prefix: str = "ca") -> CertKey:
    """A self-signed CA in ``dir/<prefix>.pem`` and ``dir/<prefix>-key.pem``."""
    dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    out = CertKey(dir / f"{prefix}.pem", dir / f"{prefix}-key.pem")
    _write_key(out.key, key)
    _write_cert(out.cert, cert)
    return out


def load_ca(ca: CertKey) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def issue_cert(ca: CertKey, cn: str, out: CertKey, *, server: bool = False,
               days: int = _LEAF_DAYS) -> CertKey:
    """Issue a leaf certificate for ``cn`` signed by ``ca``: a TLS server certificate for
    localhost, 127.0.0.1 and ::1 when ``server``, else a TLS client certificate."""
    ca_cert, ca_key = load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=True, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if server:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        b = b.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    out.cert.parent.mkdir(parents=True, exist_ok=True)
    _write_key(out.key, key)
    _write_cert(out.cert, cert)
    return out


def ensure_dev_pki(data_dir: Path) -> DevPKI:
    """The development PKI under ``data_dir/pki``, made (or completed) if missing."""
    d = Path(data_dir) / "pki"
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    ca = CertKey(d / "ca.pem", d / "ca-key.pem")
    if not ca.cert.exists():
        for p in d.iterdir():  # a CA made half-way: start over, the leaves would not chain
            if p.name.endswith(".pem"):
                p.unlink()
        make_ca(d)
    pki = DevPKI(d, ca, CertKey(d / "server.pem", d / "server-key.pem"))
    wanted = [(pki.server, "localhost", True)]
    wanted += [(pki.service(s), f"svc-{s}", False) for s in SERVICES]
    wanted += [(pki.operator(o), f"op-{o}", False) for o in OPERATORS]
    for ck, cn, server in wanted:
        if not ck.cert.exists():
            if ck.key.exists():
                ck.key.unlink()
            issue_cert(ca, cn, ck, server=server)
    return pki


def dev_policy_text() -> str:
    verbs = ", ".join(f'"{v}"' for v in SERVICE_VERBS)
    parts = ["# Development policy made by `vaultd serve --dev`: review before any real use.\n"]
    for s in SERVICES:
        parts.append(
            f'[[rule]]\nidentity = "service:{s}"\nvaults = ["citizen-*", "supplier-*", "{s}"]\n'
            f"verbs = [{verbs}]\n"
        )
    parts.append('[[rule]]\nidentity = "citizen:*"\nvaults = ["{self}"]\n'
                 'verbs = ["read", "stat", "list", "count", "check", "journal", "sign"]\n')
    parts.append('[[rule]]\nidentity = "operator:*"\nverbs = ["admin"]\n')
    return "\n".join(parts)


def ensure_dev_policy(data_dir: Path) -> Path:
    """``data_dir/policy.toml``, written with the development rules if it does not exist."""
    path = Path(data_dir) / "policy.toml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(dev_policy_text())
        os.replace(tmp, path)
    return path
