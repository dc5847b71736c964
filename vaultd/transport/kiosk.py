"""KioskService: card logins, session tokens and citizens' signatures, over gRPC (thin servicer).

Server side: ``KioskServicer`` maps protobuf to ``vaultd.core.sessions`` (logins, tokens) and
``vaultd.core.signatures`` (verification and evidence), and journals every login and refused login.
``kiosk_service(...)`` is the (name, add) pair ``VaultServer(extra_services=...)`` takes; the same
``Sessions`` object is the server's ``tokens`` authenticator, so a token works on VaultService too
(and reaches only the citizen's vault: the policy's ``{self}`` rule).

Only kiosks call BeginSession and CompleteSession: services whose certificate names them
``svc-kiosk-*`` (``Identity("service", "kiosk-...")``). A session token is bound to the kiosk's TLS
identity: another kiosk (or a service) presenting it is refused.

Client side: ``KioskClient`` is the kiosk program's connection (mutual TLS with the kiosk's
certificate; the token, once obtained, in every call's metadata).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from vaultd.core import sessions as core_sessions
from vaultd.core.sessions import LoginFailed, Sessions, journal_login
from vaultd.core.signatures import CitizenTrust, submit_signature
from vaultd.errors import AlreadyExists, PermissionDenied, Unauthenticated, VaultError
from vaultd.transport.auth import identity_of
from vaultd.transport.servicer import unary
from vaultd.transport.status import error_for
from vaultd.types import Identity
from vaultd.v1 import kiosk_pb2 as pb
from vaultd.v1 import kiosk_pb2_grpc as pb_grpc

__all__ = ["KioskServicer", "kiosk_service", "KioskClient", "SERVICE_NAME", "KIOSK_PATTERN"]

log = logging.getLogger("vaultd.kiosk")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["KioskService"].full_name
KIOSK_PATTERN = "kiosk-*"


def _bearer(ctx: Any) -> str:
    for key, value in ctx.invocation_metadata() or ():
        if key == "authorization":
            v = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            if v.startswith("Bearer "):
                return str(v[len("Bearer ") :])
    raise Unauthenticated("this call needs the session token")


class KioskServicer(pb_grpc.KioskServiceServicer):
    def __init__(
        self,
        vaults: Any,
        sessions: Sessions,
        trust: CitizenTrust,
        *,
        kiosk_pattern: str = KIOSK_PATTERN,
        create_vault_on_login: bool = True,
    ) -> None:
        self._vaults = vaults
        self._sessions = sessions
        self._trust = trust
        self._pattern = kiosk_pattern
        self._create = create_vault_on_login

    def _kiosk(self, ctx: Any) -> Identity:
        actor = identity_of(ctx)
        if actor.kind != "service" or not fnmatch.fnmatchcase(actor.name, self._pattern):
            raise PermissionDenied(f"{actor} is not a kiosk (kiosks are services named {self._pattern})")
        return actor

    def _citizen(self, ctx: Any) -> Identity:
        actor = identity_of(ctx)
        if actor.kind != "citizen" or not actor.kiosk:
            raise PermissionDenied("this call needs a citizen's session token")
        return actor

    @unary
    def BeginSession(self, request: pb.BeginSessionRequest, ctx: Any) -> pb.BeginSessionResponse:
        kiosk = self._kiosk(ctx)
        ch = self._sessions.begin(str(kiosk))
        return pb.BeginSessionResponse(
            nonce=ch.nonce, to_sign=core_sessions.login_message(ch.nonce), expires_at_unix=int(ch.expires_at)
        )

    @unary
    def CompleteSession(self, request: pb.CompleteSessionRequest, ctx: Any) -> pb.CompleteSessionResponse:
        kiosk = str(self._kiosk(ctx))
        try:
            s = self._sessions.complete(kiosk, request.nonce, request.certificate, request.signature)
        except LoginFailed as e:
            journal_login(self._vaults, kiosk, e.citizen, "denied", e.reason)
            raise
        journal_login(self._vaults, kiosk, s.citizen, "ok")
        if self._create:
            citizen = Identity("citizen", s.citizen, kiosk=kiosk)
            try:
                self._vaults.create_vault(citizen, s.vault)  # if the policy lets citizens create theirs
            except (AlreadyExists, PermissionDenied):
                pass
        return pb.CompleteSessionResponse(
            token=s.token, citizen=s.citizen, display_name=s.display_name, vault=s.vault,
            expires_at_unix=int(s.expires_at),
        )

    @unary
    def EndSession(self, request: pb.EndSessionRequest, ctx: Any) -> pb.EndSessionResponse:
        citizen = self._citizen(ctx)
        assert citizen.kiosk is not None
        self._sessions.end(_bearer(ctx), citizen.kiosk)
        return pb.EndSessionResponse()

    @unary
    def SubmitSignature(self, request: pb.SubmitSignatureRequest, ctx: Any) -> pb.SubmitSignatureResponse:
        citizen = self._citizen(ctx)
        ev = submit_signature(
            self._vaults, citizen, request.vault, request.name, request.version or None, request.cms, self._trust
        )
        v = ev.validation
        return pb.SubmitSignatureResponse(
            valid=v.valid, reason=v.reason, signer=v.signer or "", version=ev.version, sha256=ev.sha256,
            validated_at_unix=int(v.validated_at.timestamp()), journaled=ev.journal_index is not None,
            journal_index=ev.journal_index or 0, receipt=ev.receipt or b"",
        )


def kiosk_service(
    vaults: Any, sessions: Sessions, trust: CitizenTrust, **kwargs: Any
) -> tuple[str, Callable[[Any], None]]:
    """The (name, add) pair ``VaultServer(extra_services=...)`` takes."""
    servicer = KioskServicer(vaults, sessions, trust, **kwargs)
    return SERVICE_NAME, lambda server: pb_grpc.add_KioskServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


class KioskClient:
    """The kiosk's connection to vaultd: KioskService, and VaultService with the session token."""

    def __init__(
        self,
        address: str,
        *,
        ca: Path | str | bytes,
        cert: Path | str | bytes,
        key: Path | str | bytes,
        server_name: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        def read(x: Path | str | bytes) -> bytes:
            return x if isinstance(x, bytes) else Path(x).read_bytes()

        self._ca, self._cert, self._key = read(ca), read(cert), read(key)
        self.address = address
        self._server_name = server_name
        self._timeout = timeout
        creds = grpc.ssl_channel_credentials(self._ca, self._key, self._cert)
        opts = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        self._channel = grpc.secure_channel(address, creds, opts)
        self._stub = pb_grpc.KioskServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self.token: str | None = None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> KioskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any, *, token: bool = False) -> Any:
        md = (("authorization", f"Bearer {self.token}"),) if token and self.token else ()
        try:
            return method(request, timeout=self._timeout, metadata=md)
        except grpc.RpcError as e:
            raise error_for(e.code(), e.details()) from None

    def begin_session(self) -> pb.BeginSessionResponse:
        resp: pb.BeginSessionResponse = self._call(self._stub.BeginSession, pb.BeginSessionRequest())
        return resp

    def complete_session(self, nonce: bytes, certificate: bytes, signature: bytes) -> pb.CompleteSessionResponse:
        resp: pb.CompleteSessionResponse = self._call(
            self._stub.CompleteSession,
            pb.CompleteSessionRequest(nonce=nonce, certificate=certificate, signature=signature),
        )
        self.token = resp.token
        return resp

    def end_session(self) -> None:
        if self.token is None:
            return
        try:
            self._call(self._stub.EndSession, pb.EndSessionRequest(), token=True)
        except VaultError:
            pass  # an expired or already closed session is as good as ended
        finally:
            self.token = None

    def submit_signature(self, vault: str, name: str, version: int, cms: bytes) -> pb.SubmitSignatureResponse:
        resp: pb.SubmitSignatureResponse = self._call(
            self._stub.SubmitSignature,
            pb.SubmitSignatureRequest(vault=vault, name=name, version=version, cms=cms),
            token=True,
        )
        return resp

    def vault_client(self) -> Any:
        """A VaultClient on the same server with the kiosk's certificate and the session token."""
        from vaultd.client import VaultClient

        if self.token is None:
            raise Unauthenticated("log in with the card first")
        return VaultClient(
            self.address, ca=self._ca, cert=self._cert, key=self._key, server_name=self._server_name,
            token=self.token,
        )
