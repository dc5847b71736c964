"""What the interceptors and servicers share about one call, and the handler-wrapping they all use.

gRPC's server interceptors see only the method name; to act on a call (its peer, its auth context,
its outcome) an interceptor wraps the method handler's behaviour. ``wrap_handler`` does that for the
four RPC kinds. The outermost wrapper hands a ``CallContext`` down: it behaves as the real servicer
context and carries a ``CallInfo`` (identity, vault) that inner layers fill and outer layers read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from vaultd.types import Identity

__all__ = ["CallInfo", "CallContext", "call_context", "wrap_handler", "Behavior"]

Behavior = Callable[[Any, Any], Any]


@dataclass(slots=True)
class CallInfo:
    method: str
    identity: Identity | None = None
    vault: str | None = None
    started: float = field(default_factory=time.monotonic)


class CallContext:
    """A servicer context that also carries the call's ``CallInfo``; everything else is delegated."""

    __slots__ = ("_ctx", "call")

    def __init__(self, ctx: grpc.ServicerContext, method: str) -> None:
        self._ctx = ctx
        self.call = CallInfo(method=method)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    @property
    def raw(self) -> grpc.ServicerContext:
        return self._ctx


def call_context(ctx: Any, method: str) -> CallContext:
    """``ctx`` itself when it is already a CallContext, else a new one around it."""
    return ctx if isinstance(ctx, CallContext) else CallContext(ctx, method)


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
    wrap: Callable[[Behavior, bool], Behavior],
) -> grpc.RpcMethodHandler[Any, Any] | None:
    """A handler like ``handler`` whose behaviour is ``wrap(behaviour, response_streaming)``."""
    if handler is None:
        return None
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), des, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), des, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), des, ser)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), des, ser)
    return handler


class HandlerCache:
    """An interceptor's wrapped handler per method. The wrapping depends only on the method and on
    the inner handler, which is the same object on every call (the registered handler, or the
    inner interceptor's cached wrapper): each method is wrapped once, not on every call. One entry
    per method that has a handler, replaced if its inner handler ever changes."""

    __slots__ = ("_by_method",)

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler[Any, Any] | None,
            make: Callable[[], grpc.RpcMethodHandler[Any, Any] | None]) -> grpc.RpcMethodHandler[Any, Any] | None:
        if handler is None:
            return None
        hit = self._by_method.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = make()
        if wrapped is not None:
            self._by_method[method] = (handler, wrapped)
        return wrapped


def iterate(gen: Iterator[Any]) -> Iterator[Any]:
    """``yield from gen``, closing it however the consumer stops."""
    try:
        yield from gen
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()
