"""Kiosk logins with a citizen card, and the short-lived session tokens they yield.

1. ``begin(kiosk)``: a fresh 32-byte nonce, remembered with the kiosk that asked and an expiry.
2. The card signs ``login_message(nonce)`` with slot 9A (ECDSA P-256 over its SHA-256).
3. ``complete(kiosk, nonce, certificate, signature)``: the nonce is consumed (one use, even when the
   login fails), must belong to that kiosk and be unexpired; the certificate must chain to the citizen
   CA with digitalSignature key usage, be within its dates and not revoked; the signature must verify.
   The citizen (certificate subject serialNumber, else common name) maps to the vault
   ``citizen_vault_id(citizen)``. The result is a token bound to the kiosk's own TLS identity.
4. ``authenticate(token, peer)`` (the transport's TokenAuthenticator): HMAC-SHA256 under the
   server's secret, compared in constant time, unexpired, not ended, and presented by the same kiosk.

Tokens carry no secret and no key; they are opaque to kiosks and valid for minutes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from vaultd.core.signatures import (
    USAGE_AUTH,
    CertificateRejected,
    CitizenTrust,
    check_certificate,
    citizen_of,
    verify_ecdsa_p256_batch,
)
from vaultd.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from vaultd.types import Identity

__all__ = ["Challenge", "Session", "Sessions", "LoginFailed", "login_message", "NONCE_BYTES"]

NONCE_BYTES = 32
LOGIN_CONTEXT = b"vaultd kiosk login v1\x00"
MAX_TOKEN = 1024
MAX_CERT = 16 * 1024
MAX_SIGNATURE = 80
_TOKEN_PREFIX = "v1."


def login_message(nonce: bytes) -> bytes:
    """What slot 9A signs (through its SHA-256) to log in: a fixed context, then the nonce."""
    if len(nonce) != NONCE_BYTES:
        raise InvalidArgument("a login nonce has 32 bytes")
    return LOGIN_CONTEXT + nonce


class LoginFailed(Unauthenticated):
    """A login was refused; the message says why, for the kiosk and the journal."""

    def __init__(self, reason: str, citizen: str | None = None) -> None:
        super().__init__(f"login refused: {reason}")
        self.reason = reason
        self.citizen = citizen


@dataclass(frozen=True)
class Challenge:
    nonce: bytes
    expires_at: float


@dataclass(frozen=True)
class Session:
    token: str
    citizen: str
    vault: str
    kiosk: str
    expires_at: float
    display_name: str
    certificate: bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Login challenges and session tokens. Thread-safe; state lives in memory (tokens are minutes)."""

    def __init__(
        self,
        trust: CitizenTrust,
        secret: bytes,
        *,
        challenge_ttl: float = 120.0,
        token_ttl: float = 900.0,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise InvalidArgument("the session secret needs at least 32 bytes")
        self.trust = trust
        self._key = hmac.new(secret, b"vaultd session token v1", hashlib.sha256).digest()
        self.challenge_ttl = challenge_ttl
        self.token_ttl = token_ttl
        self.max_pending = max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[bytes, tuple[str, float]] = {}
        self._ended: dict[str, float] = {}

    # -- login ---------------------------------------------------------------------------------
    def begin(self, kiosk: str) -> Challenge:
        now = self._clock()
        nonce = os.urandom(NONCE_BYTES)
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self._pending = {n: v for n, v in self._pending.items() if v[1] > now}
                if len(self._pending) >= self.max_pending:
                    raise ResourceExhausted("too many logins in progress; try again in a minute")
            expires = now + self.challenge_ttl
            self._pending[nonce] = (kiosk, expires)
        return Challenge(nonce, expires)

    def complete(self, kiosk: str, nonce: bytes, certificate: bytes, signature: bytes) -> Session:
        """Verifies a card's answer to a challenge; returns the session or raises LoginFailed."""
        with self._lock:
            entry = self._pending.pop(bytes(nonce), None)  # one use, whatever follows
        now = self._clock()
        if entry is None:
            raise LoginFailed("unknown or already used login challenge")
        owner, expires = entry
        if not hmac.compare_digest(owner.encode(), kiosk.encode()):
            raise LoginFailed("the login challenge was issued to another kiosk")
        if now > expires:
            raise LoginFailed("the login challenge expired; start again")
        if len(certificate) > MAX_CERT or len(signature) > MAX_SIGNATURE:
            raise LoginFailed("certificate or signature too large")
        try:
            cert = x509.load_der_x509_certificate(bytes(certificate))
        except (ValueError, x509.InvalidVersion) as exc:
            raise LoginFailed("the card certificate is not a valid X.509 certificate") from exc
        try:
            citizen = citizen_of(cert)
        except CertificateRejected as exc:
            raise LoginFailed(str(exc)) from exc
        try:
            check_certificate(
                cert, self.trust, usage=USAGE_AUTH, at=dt.datetime.fromtimestamp(now, dt.timezone.utc)
            )
        except CertificateRejected as exc:
            raise LoginFailed(str(exc), citizen) from exc
        pub = cert.public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)  # check_certificate ensured P-256
        (ok,) = verify_ecdsa_p256_batch([pub], [login_message(bytes(nonce))], [bytes(signature)])
        if not ok:
            raise LoginFailed("the card's signature of the challenge does not verify", citizen)
        from vaultd.core.policy import citizen_vault_id

        try:
            vault = citizen_vault_id(citizen)
        except InvalidArgument as exc:
            raise LoginFailed(str(exc), citizen) from exc
        expires_at = now + self.token_ttl
        token = self._mint(citizen, kiosk, expires_at)
        cns = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        display = str(cns[0].value) if cns else citizen
        return Session(token, citizen, vault, kiosk, expires_at, display, bytes(certificate))

    # -- tokens --------------------------------------------------------------------------------
    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def _mint(self, citizen: str, kiosk: str, expires_at: float) -> str:
        payload = json.dumps(
            {"c": citizen, "k": kiosk, "e": int(expires_at), "i": secrets.token_hex(12)},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return _TOKEN_PREFIX + _b64(payload) + "." + _b64(self._mac(payload))

    def _open(self, token: str) -> dict[str, object]:
        if len(token) > MAX_TOKEN or not token.startswith(_TOKEN_PREFIX) or token.count(".") != 2:
            raise Unauthenticated("malformed session token")
        body, mac = token[len(_TOKEN_PREFIX) :].split(".")
        try:
            payload, tag = _unb64(body), _unb64(mac)
        except ValueError as exc:
            raise Unauthenticated("malformed session token") from exc
        if not hmac.compare_digest(tag, self._mac(payload)):
            raise Unauthenticated("invalid session token")
        claims = json.loads(payload)
        if not isinstance(claims, dict):
            raise Unauthenticated("malformed session token")
        return claims

    def verify_token(self, token: str, kiosk: str) -> Identity:
        """The citizen a token stands for, when presented by the kiosk it was issued to."""
        claims = self._open(token)
        now = self._clock()
        expires = claims.get("e")
        if not isinstance(expires, int) or now >= expires:
            raise Unauthenticated("the session expired; log in again with the card")
        owner = claims.get("k")
        if not isinstance(owner, str) or not hmac.compare_digest(owner.encode(), kiosk.encode()):
            raise Unauthenticated("this session token belongs to another kiosk")
        with self._lock:
            if str(claims.get("i")) in self._ended:
                raise Unauthenticated("the session was closed; log in again with the card")
        citizen = claims.get("c")
        if not isinstance(citizen, str):
            raise Unauthenticated("malformed session token")
        return Identity("citizen", citizen, kiosk=kiosk)

    def authenticate(self, token: str, peer: Identity | None) -> Identity:
        """TokenAuthenticator for the transport: the peer is the kiosk's mTLS identity."""
        if peer is None:
            raise Unauthenticated("a session token is only accepted over the kiosk's mutual TLS")
        return self.verify_token(token, str(peer))

    def end(self, token: str, kiosk: str) -> None:
        """Logs out: the token is refused from now on (kept until it would have expired)."""
        self.verify_token(token, kiosk)
        claims = self._open(token)
        now = self._clock()
        with self._lock:
            self._ended = {i: e for i, e in self._ended.items() if e > now}
            self._ended[str(claims["i"])] = float(claims["e"])  # type: ignore[arg-type]


def journal_login(vaults: object, kiosk: str, citizen: str | None, outcome: str, reason: str = "") -> None:
    """Journals a login or a refused login (operation "login", outcome "ok" or "denied")."""
    from vaultd.core.signatures import journal_event
    from vaultd.journal.hook import leaf_factory

    actor = Identity("citizen", citizen or "", kiosk=kiosk)
    vault = ""
    if citizen:
        from vaultd.core.policy import citizen_vault_id

        try:
            vault = citizen_vault_id(citizen)
        except InvalidArgument:
            vault = ""
    leaf = leaf_factory("login", actor=actor, vault=vault, outcome=outcome, reason=reason[:512] or None)
    journal_event(vaults, leaf)
