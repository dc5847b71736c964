"""`vaultd serve --dev` serves KioskService: a development citizen-card CA, card logins, tokens."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

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
