"""`vaultd serve --dev` serves KioskService: a development citizen-card CA, card logins, tokens."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from vaultd.config import Config
from vaultd.errors import InvalidArgument, Unauthenticated
from vaultd.kiosk import cms, devca
from vaultd.pki import issue_cert
from vaultd.transport.kiosk import KioskClient


def test_dev_daemon_logs_a_citizen_in_and_takes_a_signature(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    citizen_ca = devca.DevCA.load(srv.data_dir / "citizen-ca")
    assert (srv.data_dir / "session.key").stat().st_mode & 0o777 == 0o600
    card = citizen_ca.issue_card("carla.dupont", display_name="Carla Dupont")
    with srv.client("permits") as permits:
        permits.create_vault("citizen-carla.dupont")
        permits.deposit("citizen-carla.dupont", "tax/2026.txt", b"tax notice\n")
    ck = srv.pki.client("svc-kiosk-hall")
    issue_cert(srv.pki.ca, "svc-kiosk-hall", ck)

    def card_sign(slot: int, digest: bytes) -> bytes:
        return card.keys[slot].sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    with KioskClient(srv.address, ca=srv.pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost") as k:
        ch = k.begin_session()
        s = k.complete_session(ch.nonce, card.cert_der(0x9A), card_sign(0x9A, hashlib.sha256(ch.to_sign).digest()))
        assert s.vault == "citizen-carla.dupont"
        with k.vault_client() as mine:
            stat = mine.stat(s.vault, "tax/2026.txt")
        der = cms.sign_detached(stat.sha256, card.certs[0x9C], lambda d: card_sign(0x9C, d))
        r = k.submit_signature(s.vault, "tax/2026.txt", stat.version, der)
        assert r.valid and r.journaled, r.reason
        k.end_session()


def _login(srv, card, kiosk_name: str = "svc-kiosk-hall"):  # type: ignore[no-untyped-def]
    ck = srv.pki.client(kiosk_name)
    if not ck.cert.exists():
        issue_cert(srv.pki.ca, kiosk_name, ck)
    k = KioskClient(srv.address, ca=srv.pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost")
    ch = k.begin_session()
    sig = card.keys[0x9A].sign(hashlib.sha256(ch.to_sign).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    return k, k.complete_session(ch.nonce, card.cert_der(0x9A), sig)


def test_configured_citizen_ca_crls_secret_and_journal_origin(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """citizen_ca, citizen_crls, session_secret and journal_origin are taken from the configuration;
    the development citizen CA is then neither made nor trusted."""
    ca = devca.DevCA.create("City Citizen CA")
    ca_dir = tmp_path / "city-ca"
    ca.save(ca_dir)
    revoked = ca.issue_card("rita.revoked")
    ca.revoke(revoked.certs[0x9A])
    (ca_dir / "crl.pem").write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
    secret = tmp_path / "secrets" / "kiosk-session.key"
    secret.parent.mkdir()
    srv = server_factory(citizen_ca=ca_dir / "ca.pem", citizen_crls=[ca_dir / "crl.pem"],
                         session_secret=secret, journal_origin="vaultd/test.city.example")
    assert not (srv.data_dir / "citizen-ca").exists()
    assert not (srv.data_dir / "session.key").exists()
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32
    k, s = _login(srv, ca.issue_card("dora.city"))
    assert s.vault == "citizen-dora.city"
    k.close()
    with pytest.raises(Unauthenticated, match="revoked"):
        _login(srv, revoked)
    other = devca.DevCA.create("Another CA")
    with pytest.raises(Unauthenticated, match="not issued by the citizen-card CA"):
        _login(srv, other.issue_card("eve.elsewhere"))
    with srv.client("permits") as c:
        assert c.checkpoint().origin == "vaultd/test.city.example"
        assert c.journal_public_key().name == "vaultd/test.city.example"


def test_citizen_settings_from_toml_environment_and_flags(tmp_path: Path) -> None:
    from vaultd.cli.daemon import build_parser
    from vaultd.config import load_config

    f = tmp_path / "vaultd.toml"
    f.write_text('citizen_ca = "/etc/c/ca.pem"\ncitizen_crls = ["/etc/c/a.crl", "/etc/c/b.crl"]\n'
                 'session_secret = "/etc/c/s.key"\njournal_origin = "vaultd/from-toml"\n')
    c = load_config(f, env={})
    assert (c.citizen_ca, c.citizen_crls, c.session_secret, c.journal_origin) == (
        Path("/etc/c/ca.pem"), [Path("/etc/c/a.crl"), Path("/etc/c/b.crl")], Path("/etc/c/s.key"), "vaultd/from-toml")
    c = load_config(f, env={"VAULTD_CITIZEN_CRLS": "/x/1.crl, /x/2.crl", "VAULTD_JOURNAL_ORIGIN": "vaultd/env"})
    assert (c.citizen_crls, c.journal_origin) == ([Path("/x/1.crl"), Path("/x/2.crl")], "vaultd/env")
    args = build_parser().parse_args(["serve", "--citizen-ca", "/f/ca.pem", "--citizen-crl", "/f/1.crl",
                                      "--citizen-crl", "/f/2.crl", "--session-secret", "/f/s.key",
                                      "--journal-origin", "vaultd/flag"])
    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    c = load_config(f, env={"VAULTD_JOURNAL_ORIGIN": "vaultd/env"}, overrides=overrides)
    assert (c.citizen_ca, c.citizen_crls, c.session_secret, c.journal_origin) == (
        Path("/f/ca.pem"), [Path("/f/1.crl"), Path("/f/2.crl")], Path("/f/s.key"), "vaultd/flag")
    assert Config(data_dir=tmp_path).resolved().session_secret == tmp_path / "session.key"
    with pytest.raises(InvalidArgument, match="citizen_crls"):
        Config(data_dir=tmp_path, dev=True, citizen_crls=[Path("/x.crl")]).resolved().validate()
    with pytest.raises(InvalidArgument, match="VAULTD_CITIZEN_CRLS"):
        load_config(env={"VAULTD_CITIZEN_CRLS": 5})  # type: ignore[dict-item]


def test_without_citizen_ca_and_outside_dev_no_kiosk_is_served(tmp_path: Path) -> None:
    from vaultd.cli.kiosk import kiosk_for_daemon

    devca.DevCA.create().save(tmp_path / "citizen-ca")  # left over: not trusted outside --dev
    sessions, services = kiosk_for_daemon(Config(data_dir=tmp_path).resolved(), vaults=None)
    assert sessions is None and services == []
