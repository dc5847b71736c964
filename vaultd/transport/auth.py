"""Authentication: who is calling, from the client certificate (mutual TLS) or a session token.

The client certificate's subject common name names the caller:

- ``svc-NAME`` -> ``Identity("service", NAME)`` (a city service),
- ``op-NAME``  -> ``Identity("operator", NAME)`` (an operator).

The server trusts only certificates issued by the configured client CA, so the name is as good as
that CA. Authorization (what the identity may do) is the core's policy, not this module's.

Session tokens (kiosks, where a citizen logs in with a smart card) arrive in the
``authorization: Bearer <token>`` metadata. They are resolved by a ``TokenAuthenticator`` given to
the interceptor; it receives the token and the TLS identity of the caller (a token is bound to the
kiosk that obtained it) and returns the citizen's identity or raises ``Unauthenticated``. Without
an authenticator every token is refused.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from vaultd.errors import ResourceExhausted, Unauthenticated
from vaultd.traffic import Traffic
from vaultd.transport.calls import Behavior, CallContext, HandlerCache, call_context, iterate, wrap_handler
from vaultd.transport.status import status_for
from vaultd.types import Identity

__all__ = [
    "TokenAuthenticator",
    "AuthInterceptor",
    "identity_from_common_name",
    "peer_identity",
    "identity_of",
    "PROTECTED_PREFIX",
]

# Calls under this prefix need an identity; health checks and reflection do not.
PROTECTED_PREFIX = "/vaultd."
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PREFIXES = {"svc-": "service", "op-": "operator"}
_MAX_TOKEN = 4096


class TokenAuthenticator(Protocol):
    def authenticate(self, token: str, peer: Identity | None) -> Identity:
        """The identity a session token stands for, or raise Unauthenticated."""
        ...


def identity_from_common_name(cn: str) -> Identity:
    for prefix, kind in _PREFIXES.items():
        if cn.startswith(prefix):
            name = cn[len(prefix):]
            if _NAME.fullmatch(name):
                return Identity(kind, name)
            break
    raise Unauthenticated(
        f"client certificate common name {cn[:80]!r} names no identity: "
        "expected svc-NAME (a service) or op-NAME (an operator)"
    )


def peer_identity(ctx: Any) -> Identity | None:
    """The identity of the peer's verified client certificate, None when it sent none."""
    auth = ctx.auth_context() or {}
    cns = auth.get("x509_common_name") or []
    if not cns:
        return None
    return identity_from_common_name(cns[0].decode("utf-8", "replace"))


def _bearer_token(ctx: Any) -> str | None:
    for key, value in ctx.invocation_metadata() or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("ascii", "replace")
            if not value.startswith("Bearer ") or len(value) > _MAX_TOKEN:
                raise Unauthenticated("malformed authorization metadata: expected 'Bearer <token>'")
            return str(value[len("Bearer "):])
    return None


def identity_of(ctx: Any) -> Identity:
    """The identity the auth interceptor established for this call."""
    if isinstance(ctx, CallContext) and ctx.call.identity is not None:
        return ctx.call.identity
    raise Unauthenticated("this call carries no authenticated identity")


class AuthInterceptor(grpc.ServerInterceptor):
    """Establishes the caller's identity before any vaultd method runs; UNAUTHENTICATED otherwise.

    With ``max_calls_per_identity``, one identity may have at most that many vaultd calls in
    flight; one more is refused with RESOURCE_EXHAUSTED, so that a single misbehaving client
    cannot hold every thread of the server. With ``traffic``, every admitted call is counted into
    it from its start to its end (background work gives way to calls by it).
    """

    def __init__(self, tokens: TokenAuthenticator | None = None, *,
                 max_calls_per_identity: int | None = None, traffic: Traffic | None = None) -> None:
        self._tokens = tokens
        self._max_calls = max_calls_per_identity
        self._traffic = traffic
        self._lock = threading.Lock()
        self._in_flight: dict[Identity, int] = {}
        self._handlers = HandlerCache()

    def _enter(self, identity: Identity) -> bool:
        if self._max_calls is not None:
            with self._lock:
                n = self._in_flight.get(identity, 0)
                if n >= self._max_calls:
                    return False
                self._in_flight[identity] = n + 1
        if self._traffic is not None:
            self._traffic.enter()
        return True

    def _leave(self, identity: Identity) -> None:
        if self._traffic is not None:
            self._traffic.leave()
        if self._max_calls is None:
            return
        with self._lock:
            n = self._in_flight.get(identity, 1) - 1
            if n <= 0:
                self._in_flight.pop(identity, None)
            else:
                self._in_flight[identity] = n

    def authenticate(self, ctx: Any) -> Identity:
        peer = peer_identity(ctx)
        token = _bearer_token(ctx)
        if token is not None:
            if self._tokens is None:
                raise Unauthenticated("session tokens are not accepted by this server")
            return self._tokens.authenticate(token, peer)
        if peer is None:
            raise Unauthenticated("no client certificate: this server requires mutual TLS")
        return peer

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if not method.startswith(PROTECTED_PREFIX):
            return handler

        def admit(ctx: CallContext) -> Identity:
            try:
                identity = self.authenticate(ctx)
            except Unauthenticated as e:
                ctx.abort(status_for(e), str(e))
            ctx.call.identity = identity
            if not self._enter(identity):
                e2 = ResourceExhausted(
                    f"{identity} has {self._max_calls} calls in flight already, the most one "
                    "identity may have; retry when some have finished")
                ctx.abort(status_for(e2), str(e2))
            return identity

        def wrap(behavior: Behavior, streaming: bool) -> Behavior:
            if not streaming:
                def checked(request: Any, ctx: Any) -> Any:
                    ctx = call_context(ctx, method)
                    identity = admit(ctx)
                    try:
                        return behavior(request, ctx)
                    finally:
                        self._leave(identity)

                return checked

            def checked_stream(request: Any, ctx: Any) -> Any:
                ctx = call_context(ctx, method)
                identity = admit(ctx)
                try:
                    yield from iterate(behavior(request, ctx))
                finally:
                    self._leave(identity)

            return checked_stream

        return self._handlers.get(method, handler, lambda: wrap_handler(handler, wrap))
