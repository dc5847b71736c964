"""Card logins: the card (slot 9A, through PC/SC) answers the server's challenge; tokens are bound to kiosks."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from vaultd.core.sessions import LoginFailed, Sessions, login_message
from vaultd.core.signatures import CitizenTrust
from vaultd.errors import Unauthenticated
from vaultd.kiosk import devca, piv
from vaultd.types import Identity

KIOSK = "service:kiosk-town-hall"
OTHER_KIOSK = "service:kiosk-library"


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_sessions(ca: devca.DevCA, clock: Clock | None = None) -> Sessions:
    import time

    return Sessions(CitizenTrust((ca.cert,), (ca.crl(),)), os.urandom(32), clock=clock or time.time)


def soft_answer(creds: devca.CardCredentials, nonce: bytes, slot: int = 0x9A) -> tuple[bytes, bytes]:
    digest = hashlib.sha256(login_message(nonce)).digest()
    sig = creds.keys[slot].sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    return creds.cert_der(slot), sig


def test_login_with_the_card(insert_card, ca) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessions(ca)
    p = insert_card()
    challenge = sessions.begin(KIOSK)
    with p.open() as card:
        card.select()
        cert = card.read_certificate(piv.SLOT_AUTH)
        card.verify_pin("123456")
        sig = card.sign_digest(piv.SLOT_AUTH, hashlib.sha256(login_message(challenge.nonce)).digest())
    from cryptography.hazmat.primitives import serialization

    session = sessions.complete(KIOSK, challenge.nonce, cert.public_bytes(serialization.Encoding.DER), sig)
    assert session.citizen == "alice.martin"
    assert session.vault == "citizen-alice.martin"
    assert session.display_name == "Alice Martin"
    ident = sessions.authenticate(session.token, _peer(KIOSK))
    assert ident == Identity("citizen", "alice.martin", kiosk=KIOSK)


def _peer(s: str) -> Identity:
    kind, name = s.split(":")
    return Identity(kind, name)


def test_replayed_challenge_is_refused(ca) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessions(ca)
    creds = ca.issue_card("alice.martin")
    ch = sessions.begin(KIOSK)
    cert, sig = soft_answer(creds, ch.nonce)
    sessions.complete(KIOSK, ch.nonce, cert, sig)
    with pytest.raises(LoginFailed, match="already used"):
        sessions.complete(KIOSK, ch.nonce, cert, sig)


def test_failed_login_consumes_the_challenge(ca) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessions(ca)
    creds = ca.issue_card("alice.martin")
    ch = sessions.begin(KIOSK)
    cert, _ = soft_answer(creds, ch.nonce)
    _, wrong = soft_answer(creds, os.urandom(32))  # a signature over another nonce
    with pytest.raises(LoginFailed, match="does not verify"):
        sessions.complete(KIOSK, ch.nonce, cert, wrong)
    _, right = soft_answer(creds, ch.nonce)
    with pytest.raises(LoginFailed, match="already used"):
        sessions.complete(KIOSK, ch.nonce, cert, right)


def test_challenge_of_another_kiosk_and_expired_challenge(ca) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    sessions = make_sessions(ca, clock)
    creds = ca.issue_card("alice.martin")
    ch = sessions.begin(KIOSK)
    with pytest.raises(LoginFailed, match="another kiosk"):
        sessions.complete(OTHER_KIOSK, ch.nonce, *soft_answer(creds, ch.nonce))
    ch = sessions.begin(KIOSK)
    clock.now += sessions.challenge_ttl + 1
    with pytest.raises(LoginFailed, match="expired"):
        sessions.complete(KIOSK, ch.nonce, *soft_answer(creds, ch.nonce))


@pytest.mark.parametrize(
    "case, reason",
    [("revoked", "revoked"), ("expired", "expired"), ("foreign", "not issued by"), ("sign-slot", "digitalSignature")],
)
def test_bad_certificates_cannot_log_in(ca, case: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    if case == "revoked":
        creds = ca.issue_card("bob", revoked=True)
    elif case == "expired":
        creds = ca.issue_card("bob", expired=True)
    elif case == "foreign":
        creds = devca.DevCA.create().issue_card("bob")
    else:
        creds = ca.issue_card("bob")
    sessions = make_sessions(ca)  # after the revocation: the CRL it holds lists bob
    ch = sessions.begin(KIOSK)
    slot = 0x9C if case == "sign-slot" else 0x9A
    with pytest.raises(LoginFailed, match=reason) as exc:
        sessions.complete(KIOSK, ch.nonce, *soft_answer(creds, ch.nonce, slot))
    assert isinstance(exc.value, Unauthenticated)


def test_token_from_another_kiosk_or_without_tls_is_refused(ca) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessions(ca)
    creds = ca.issue_card("alice.martin")
    ch = sessions.begin(KIOSK)
    s = sessions.complete(KIOSK, ch.nonce, *soft_answer(creds, ch.nonce))
    with pytest.raises(Unauthenticated, match="another kiosk"):
        sessions.authenticate(s.token, _peer(OTHER_KIOSK))
    with pytest.raises(Unauthenticated):
        sessions.authenticate(s.token, None)


def test_token_expiry_tampering_and_logout(ca) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    sessions = make_sessions(ca, clock)
    creds = ca.issue_card("alice.martin")
    ch = sessions.begin(KIOSK)
    s = sessions.complete(KIOSK, ch.nonce, *soft_answer(creds, ch.nonce))
    assert sessions.verify_token(s.token, KIOSK).name == "alice.martin"

    body, mac = s.token[3:].split(".")
    forged = "v1." + body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    for bad in (forged, s.token + "x", "v1.x.y", "garbage", "v1." + "A" * 2000 + ".x"):
        with pytest.raises(Unauthenticated):
            sessions.verify_token(bad, KIOSK)
    # A token made under another server secret is refused.
    other = make_sessions(ca, clock)
    with pytest.raises(Unauthenticated, match="invalid"):
        other.verify_token(s.token, KIOSK)

    sessions.end(s.token, KIOSK)
    with pytest.raises(Unauthenticated, match="closed"):
        sessions.verify_token(s.token, KIOSK)

    ch = sessions.begin(KIOSK)
    s2 = sessions.complete(KIOSK, ch.nonce, *soft_answer(creds, ch.nonce))
    clock.now += sessions.token_ttl + 1
    with pytest.raises(Unauthenticated, match="expired"):
        sessions.verify_token(s2.token, KIOSK)


def test_pending_challenges_are_bounded(ca) -> None:  # type: ignore[no-untyped-def]
    from vaultd.errors import ResourceExhausted

    clock = Clock()
    sessions = Sessions(CitizenTrust((ca.cert,), (ca.crl(),)), os.urandom(32), clock=clock, max_pending=5)
    for _ in range(5):
        sessions.begin(KIOSK)
    with pytest.raises(ResourceExhausted):
        sessions.begin(KIOSK)
    clock.now += sessions.challenge_ttl + 1  # expired ones make room
    sessions.begin(KIOSK)
