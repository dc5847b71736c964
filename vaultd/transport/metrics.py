"""RED metrics for every gRPC method, recorded by one server interceptor.

``MetricsInterceptor(metrics)`` wraps the handler of each call, whatever its kind (unary or
streaming on either side), and records into a :class:`vaultd.metrics.Metrics`:

- ``vaultd_grpc_server_started_total`` and ``vaultd_grpc_server_handled_total`` (with
  ``grpc_code``), ``vaultd_grpc_server_handling_seconds`` (until the last response message or the
  status), ``vaultd_grpc_server_in_flight``;
- request and response messages, and their serialized bytes (counted in the (de)serializers, so
  they are the exact protobuf bytes on the wire, before HTTP/2 framing and compression).

The status code is the one the handler set (``context.set_code`` / ``context.abort``); an
exception that set none counts as ``UNKNOWN`` (as gRPC itself reports it), and a call whose client
went away counts as ``CANCELLED``. Put this interceptor first in the server's list, so that it is
outermost and sees the codes the error-mapping interceptor sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from vaultd.metrics import Metrics
from vaultd.transport.calls import HandlerCache

__all__ = ["MetricsInterceptor", "split_method"]


def split_method(full_method: str) -> tuple[str, str]:
    """``/vaultd.v1.Vault/Deposit`` -> ``("vaultd.v1.Vault", "Deposit")``."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return (service or "unknown"), (method or "unknown")


def _rpc_type(handler: grpc.RpcMethodHandler[Any, Any]) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


class _Series:
    """The metric children of one method, looked up once (``labels()`` takes a lock and builds a key:
    eight of them per call were a visible share of a small deposit's CPU)."""

    __slots__ = ("labels", "started", "in_flight", "seconds", "handled", "msg_in", "msg_out", "bytes_in",
                 "bytes_out", "_m")

    def __init__(self, m: Metrics, service: str, method: str, rpc_type: str) -> None:
        self._m = m
        self.labels = (service, method, rpc_type)
        self.started = m.grpc_started.labels(*self.labels)
        self.in_flight = m.grpc_in_flight.labels(service, method)
        self.seconds = m.grpc_seconds.labels(*self.labels)
        self.handled: dict[str, Any] = {}
        self.msg_in = m.grpc_msg_received.labels(*self.labels)
        self.msg_out = m.grpc_msg_sent.labels(*self.labels)
        self.bytes_in = m.grpc_bytes_received.labels(service, method)
        self.bytes_out = m.grpc_bytes_sent.labels(service, method)

    def handled_with(self, code: str) -> Any:
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = self._m.grpc_handled.labels(*self.labels, code)
        return child


class _Call:
    """The bookkeeping of one RPC: started once, finished exactly once."""

    __slots__ = ("_s", "_start", "_done")

    def __init__(self, series: _Series) -> None:
        self._s = series
        self._done = False
        series.started.inc()
        series.in_flight.inc()
        self._start = time.perf_counter()

    def finish(self, code: grpc.StatusCode | None) -> None:
        if self._done:
            return
        self._done = True
        elapsed = time.perf_counter() - self._start
        s = self._s
        s.in_flight.dec()
        s.seconds.observe(elapsed)
        s.handled_with((code or grpc.StatusCode.OK).name).inc()


def _code_after(context: grpc.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    """The status the call ends with, as the client will see it."""
    code: grpc.StatusCode | None = None
    try:
        code = context.code()  # type: ignore[attr-defined]  # grpcio >= 1.38; missing from the stubs
    except (AttributeError, NotImplementedError):  # an old or foreign context
        pass
    if code is not None and code != grpc.StatusCode.OK:
        return code
    if exc is not None:
        if isinstance(exc, grpc.RpcError) or isinstance(exc, GeneratorExit) \
                or not context.is_active():
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.UNKNOWN
    if not context.is_active():  # the handler ended because the client went away
        return grpc.StatusCode.CANCELLED
    return code or grpc.StatusCode.OK


class MetricsInterceptor(grpc.ServerInterceptor):
    """A server interceptor recording RED metrics of every method into ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._handlers = HandlerCache()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        return self._handlers.get(handler_call_details.method, handler,
                                  lambda: self._wrap(handler, handler_call_details.method))

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any], path: str) -> grpc.RpcMethodHandler[Any, Any]:
        # once per method (the HandlerCache), and only for methods that exist (continuation found a
        # handler): the metric children are looked up here, not on every call
        service, method = split_method(path)
        series = _Series(self._m, service, method, _rpc_type(handler))
        msg_in, msg_out, bytes_in, bytes_out = series.msg_in, series.msg_out, series.bytes_in, series.bytes_out

        deserialize = handler.request_deserializer
        serialize = handler.response_serializer

        def request_deserializer(raw: bytes) -> Any:
            bytes_in.inc(len(raw))
            msg_in.inc()
            return deserialize(raw) if deserialize is not None else raw

        def response_serializer(message: Any) -> bytes:
            raw = serialize(message) if serialize is not None else message
            bytes_out.inc(len(raw))
            msg_out.inc()
            return raw  # type: ignore[no-any-return,unused-ignore]

        def unary_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                call = _Call(series)
                try:
                    response = behavior(request, context)
                except BaseException as exc:
                    call.finish(_code_after(context, exc))
                    raise
                call.finish(_code_after(context, None))
                return response

            return wrapped

        def stream_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                call = _Call(series)
                exc: BaseException | None = None
                try:
                    yield from behavior(request, context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    call.finish(_code_after(context, exc))
                    exc = None  # the exception's traceback holds this frame: no cycle

            return wrapped

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                unary_response(handler.unary_unary), request_deserializer, response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                stream_response(handler.unary_stream), request_deserializer, response_serializer)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                unary_response(handler.stream_unary), request_deserializer, response_serializer)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                stream_response(handler.stream_stream), request_deserializer,
                response_serializer)
        return handler
