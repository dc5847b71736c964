"""TLS refusals the isolation tests (tests/e2e/test_isolation.py) leave out, against the daemon
process: a client certificate of the right CA that has expired, one not valid yet, one without the
clientAuth purpose, and one whose key does not match it. All are refused; the valid one works."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemon_proc import DaemonProcess  # type: ignore[import-not-found]
from vaultd.client import VaultClient
from vaultd.errors import Unauthenticated, Unavailable
from vaultd.pki import CertKey, load_ca


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("tls") / "data").start()
    try:
        yield d
    finally:
        d.stop()


def _issue(d: DaemonProcess, out: Path, *, before: dt.timedelta, after: dt.timedelta,
           eku: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.CLIENT_AUTH) -> tuple[Path, Path]:
    pki = d.data_dir / "pki"
    ca_cert, ca_key = load_ca(CertKey(pki / "ca.pem", pki / "ca-key.pem"))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc-permits")]))
         .issuer_name(ca_cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now + before).not_valid_after(now + after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    out.mkdir(parents=True, exist_ok=True)
    (out / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return out / "c.pem", out / "k.pem"


def _count(d: DaemonProcess, cert: Path, key: Path) -> int:
    c = VaultClient(d.address, ca=d.data_dir / "pki" / "ca.pem", cert=cert, key=key, server_name="localhost",
                    timeout=5)
    try:
        return c.count("citizen-tls")
    finally:
        c.close()


CASES = {
    "expired": dict(before=dt.timedelta(days=-30), after=dt.timedelta(days=-1)),
    "not yet valid": dict(before=dt.timedelta(days=1), after=dt.timedelta(days=30)),
    "server purpose only": dict(before=dt.timedelta(minutes=-5), after=dt.timedelta(days=1),
                                eku=ExtendedKeyUsageOID.SERVER_AUTH),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_client_certificates_are_refused(daemon: DaemonProcess, tmp_path: Path, case: str) -> None:
    cert, key = _issue(daemon, tmp_path, **CASES[case])  # type: ignore[arg-type]
    with pytest.raises((Unavailable, Unauthenticated)):
        _count(daemon, cert, key)


def test_mismatched_key_is_refused(daemon: DaemonProcess, tmp_path: Path) -> None:
    cert, _ = _issue(daemon, tmp_path / "a", before=dt.timedelta(minutes=-5), after=dt.timedelta(days=1))
    _, other_key = _issue(daemon, tmp_path / "b", before=dt.timedelta(minutes=-5), after=dt.timedelta(days=1))
    with pytest.raises((Unavailable, Unauthenticated, ValueError)):
        _count(daemon, cert, other_key)


def test_a_valid_certificate_of_the_same_shape_works(daemon: DaemonProcess, tmp_path: Path) -> None:
    """The control: the same construction with a current validity is accepted."""
    with daemon.client("permits") as c:
        c.create_vault("citizen-tls")
    cert, key = _issue(daemon, tmp_path, before=dt.timedelta(minutes=-5), after=dt.timedelta(days=1))
    assert _count(daemon, cert, key) == 0
