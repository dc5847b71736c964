"""A development citizen-card CA (ECDSA P-256) and the cards it issues.

It stands in for the city's real card authority in development, the examples and the tests: a root
certificate, card certificates for slot 9A (authentication: digitalSignature) and slot 9C (signature:
nonRepudiation, a.k.a. contentCommitment), a revocation list, and the odd cards a test needs (revoked,
expired, issued by a foreign CA). ``write_card`` lays a card out in the folder format of
``vaultd.kiosk.virtual_card``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DevCA", "CardCredentials", "write_card"]

SLOT_AUTH = 0x9A
SLOT_SIGN = 0x9C


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class CardCredentials:
    """What is loaded onto one card: a key and a certificate per slot, and the PIN."""

    citizen: str
    pin: str
    keys: dict[int, ec.EllipticCurvePrivateKey]
    certs: dict[int, x509.Certificate]

    def cert_der(self, slot: int) -> bytes:
        return self.certs[slot].public_bytes(serialization.Encoding.DER)


@dataclass
class DevCA:
    """A self-signed root that issues citizen card certificates and a CRL."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    revoked: dict[int, dt.datetime] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str = "vaultd Development Citizen CA", *, days: int = 3650) -> DevCA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vaultd development"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load(cls, folder: Path) -> DevCA:
        key = serialization.load_pem_private_key((folder / "ca.key.pem").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        return cls(key, cert)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        key_path = folder / "ca.key.pem"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                self.key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        (folder / "ca.pem").write_bytes(self.cert_pem)
        (folder / "crl.pem").write_bytes(self.crl().public_bytes(serialization.Encoding.PEM))

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        citizen: str,
        slot: int,
        *,
        display_name: str | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A card certificate for ``slot``: 9A authenticates (digitalSignature), 9C signs (nonRepudiation).

        The subject names the citizen twice: serialNumber is the citizen's id (what the server maps
        to a vault), the common name the name a person reads.
        """
        if slot not in (SLOT_AUTH, SLOT_SIGN):
            raise ValueError("slot must be 0x9A or 0x9C")
        now = _now()
        nb = not_before or now - dt.timedelta(minutes=5)
        na = not_after or now + dt.timedelta(days=365 * 5)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Citizens"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, citizen),
                x509.NameAttribute(NameOID.COMMON_NAME, display_name or citizen),
            ]
        )
        auth = slot == SLOT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=auth, content_commitment=not auth, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if auth:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        return builder.sign(self.key, hashes.SHA256())

    def issue_card(
        self,
        citizen: str,
        *,
        pin: str = "123456",
        display_name: str | None = None,
        expired: bool = False,
        revoked: bool = False,
    ) -> CardCredentials:
        """Keys and certificates for slots 9A and 9C of the citizen with id ``citizen``."""
        keys = {slot: ec.generate_private_key(ec.SECP256R1()) for slot in (SLOT_AUTH, SLOT_SIGN)}
        kw: dict[str, dt.datetime | None] = {}
        if expired:
            now = _now()
            kw = {"not_before": now - dt.timedelta(days=400), "not_after": now - dt.timedelta(days=30)}
        certs = {slot: self.issue(k.public_key(), citizen, slot, display_name=display_name, **kw) for slot, k in keys.items()}
        if revoked:
            for c in certs.values():
                self.revoke(c)
        return CardCredentials(citizen, pin, keys, certs)

    def revoke(self, cert: x509.Certificate) -> None:
        self.revoked[cert.serial_number] = _now() - dt.timedelta(seconds=1)

    def crl(self, *, days: int = 7) -> x509.CertificateRevocationList:
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=days))
        )
        for serial, when in sorted(self.revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        return builder.sign(self.key, hashes.SHA256())


def write_card(creds: CardCredentials, folder: Path, *, pin_tries: int = 3, has_piv: bool = True) -> Path:
    """Writes a card in the folder format of the virtual PIV card; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for slot, key in creds.keys.items():
        path = folder / f"{slot:02x}.key.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        (folder / f"{slot:02x}.crt.pem").write_bytes(creds.certs[slot].public_bytes(serialization.Encoding.PEM))
    meta = {
        "citizen": creds.citizen,
        "pin": creds.pin,
        "pin_tries_max": pin_tries,
        "pin_tries_left": pin_tries,
        "guid": os.urandom(16).hex(),
        "has_piv": has_piv,
    }
    fd = os.open(folder / "card.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=2)
    return folder
