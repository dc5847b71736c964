"""The gRPC server of vaultd: TLS, interceptors, VaultService, health and reflection, bounds.

Sizing, deliberately:

- The synchronous gRPC server runs each call on a pool thread for its whole duration (a Deposit
  holds its thread while the client streams). ``workers`` is therefore the number of calls served
  at once; ``max_concurrent_rpcs`` is set to the same number so that a call beyond it is refused at
  once with RESOURCE_EXHAUSTED instead of waiting in an unbounded queue. Threads mostly wait on the
  network or on the writer's commit, so more of them than cores is right; the GIL bounds the useful
  CPU work, the Rust core releases it for the heavy part.
- A received message is at most one 1 MiB data piece plus its framing, or a header (name 1 KiB,
  metadata at most 64 x (128 + 1024) bytes): ``MAX_PIECE + 128 KiB`` covers both, nothing larger
  is read.
- A sent message is a 1 MiB data piece or a List page, which the servicer keeps under
  ``max_response_bytes``.
- HTTP/2 streams per connection are bounded; keepalive pings detect dead peers, clients may not
  ping more often than every 10 s, and a connection idle for 5 minutes is closed.
- A call lasts as long as its client's deadline allows: a client that streams a deposit very
  slowly holds one pool thread meanwhile. One identity may hold at most
  ``max_calls_per_identity`` of the ``workers`` threads, so one client cannot starve the others.
- ``grpc.so_reuseport`` is off: a second daemon on the same port fails instead of sharing it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vaultd.traffic import Traffic
from vaultd.transport.access_log import AccessLogInterceptor
from vaultd.transport.auth import AuthInterceptor, TokenAuthenticator
from vaultd.transport.servicer import MAX_PIECE, VaultsAPI, VaultServicer
from vaultd.v1 import vault_pb2, vault_pb2_grpc
from vaultd.wire import only_field

__all__ = ["TLSConfig", "ServerLimits", "VaultServer", "metrics_interceptor", "SERVICE_NAME"]

log = logging.getLogger("vaultd.transport")

SERVICE_NAME = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name
MAX_RECEIVE = MAX_PIECE + (128 << 10)


@dataclass(frozen=True)
class TLSConfig:
    cert: Path  # the server's certificate chain (PEM)
    key: Path  # its private key (PEM)
    client_ca: Path  # the CA whose client certificates are trusted (PEM)
    require_client_cert: bool = True


@dataclass(frozen=True)
class ServerLimits:
    workers: int = 128
    max_concurrent_streams: int = 64  # per connection
    max_response_bytes: int = 4 << 20
    keepalive_time_ms: int = 60_000
    keepalive_timeout_ms: int = 20_000
    min_client_ping_interval_ms: int = 10_000
    max_connection_idle_ms: int = 300_000  # a connection without calls for 5 min is closed
    max_calls_per_identity: int | None = 96  # of ``workers``: the rest stays for everyone else

    def options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.max_receive_message_length", MAX_RECEIVE),
            ("grpc.max_send_message_length", self.max_response_bytes + (64 << 10)),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", self.min_client_ping_interval_ms),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.max_connection_idle_ms", self.max_connection_idle_ms),
            ("grpc.so_reuseport", 0),
        ]


def metrics_interceptor(metrics: Any) -> grpc.ServerInterceptor | None:
    """The Prometheus interceptor of ``vaultd.transport.metrics`` recording into ``metrics``."""
    if metrics is None:
        return None
    from vaultd.transport.metrics import MetricsInterceptor

    return MetricsInterceptor(metrics)


# A further service to serve: (full service name for reflection, function adding it to a server).
ExtraService = tuple[str, Callable[[grpc.Server], None]]


class _Malformed:
    """Stands for a request message whose bytes did not parse."""


_MALFORMED = _Malformed()
_REFUSAL = "a request message is not a valid {}; nothing was done"


class _DepositData:
    """A DepositRequest that holds only ``data`` (every message of a deposit but its first and,
    possibly, its last): ``data`` is a view into the received bytes, which protobuf would have
    copied twice, into its message and out of it again."""

    __slots__ = ("data",)

    def __init__(self, data: memoryview) -> None:
        self.data = data

    @staticmethod
    def HasField(name: str) -> bool:  # noqa: N802 (protobuf's name)
        return False


def _lenient(cls: Any) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return cls.FromString(raw)
        except Exception:  # DecodeError and friends: any bytes that are not a message
            return _MALFORMED

    if cls.DESCRIPTOR.full_name != vault_pb2.DepositRequest.DESCRIPTOR.full_name:
        return parse
    data_field = vault_pb2.DepositRequest.DESCRIPTOR.fields_by_name["data"].number

    def parse_deposit(raw: bytes) -> Any:
        data = only_field(raw, data_field)
        return _DepositData(data) if data is not None else parse(raw)

    return parse_deposit


def _lenient_handler(h: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """``h`` with a deserializer that never fails: the handler refuses what did not parse with
    INVALID_ARGUMENT (gRPC's own refusal, from its receive callback, leaves the HTTP/2 stream counted
    against the connection's max_concurrent_streams: after that many malformed requests the
    connection refused every new call)."""
    deserializer = h.request_deserializer
    cls = getattr(deserializer, "__self__", None)  # the generated code passes Message.FromString
    if cls is None or not hasattr(cls, "FromString"):
        return h
    what = cls.DESCRIPTOR.name
    behaviour: Any = h.unary_unary or h.unary_stream or h.stream_unary or h.stream_stream

    def run(request: Any, context: Any) -> Any:
        if h.request_streaming:
            def checked() -> Any:
                for msg in request:
                    if msg is _MALFORMED:
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT, _REFUSAL.format(what))
                    yield msg

            return behaviour(checked(), context)
        if request is _MALFORMED:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _REFUSAL.format(what))
        return behaviour(request, context)

    make = {(False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    return make[(h.request_streaming, h.response_streaming)](
        run, request_deserializer=_lenient(cls), response_serializer=_encoded_or(h.response_serializer))


def _encoded_or(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """A response serializer that sends a message the handler already encoded (``bytes``) as it
    is: Read yields its data messages encoded by the core, framed where the chunks are opened."""
    if serialize is None:
        return None

    def encode(message: Any) -> bytes:
        return message if type(message) is bytes else serialize(message)

    return encode


class _LenientRegistrar:
    """Stands for the server while generated ``add_*_to_server`` functions register a service: its
    method handlers are registered with deserializers that never fail (``_lenient_handler``)."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server
        self._pending: Any = None

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.flush()
        self._pending = handlers  # replaced when the registered handlers of the same service follow

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self._pending = None
        wrapped = {name: _lenient_handler(h) for name, h in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self._server.add_registered_method_handlers(service, wrapped)

    def flush(self) -> None:
        if self._pending is not None:
            self._server.add_generic_rpc_handlers(self._pending)
            self._pending = None


class VaultServer:
    """VaultService over TLS with health and reflection; ``start`` then ``stop``."""

    def __init__(
        self,
        vaults: VaultsAPI,
        *,
        listen: str,
        tls: TLSConfig,
        limits: ServerLimits = ServerLimits(),
        tokens: TokenAuthenticator | None = None,
        metrics: Any = None,
        extra_services: Iterable[ExtraService] = (),
        interceptors: Sequence[grpc.ServerInterceptor] | None = None,
        traffic: Traffic | None = None,
        health_poll_seconds: float = 1.0,
    ) -> None:
        self._vaults = vaults
        self._listen = listen
        self._limits = limits
        self._executor = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="grpc")
        if interceptors is None:
            # Outermost first: metrics see every final code, the access log sees the identity the
            # auth interceptor (innermost) establishes.
            chain: list[grpc.ServerInterceptor] = []
            m = metrics_interceptor(metrics)
            if m is not None:
                chain.append(m)
            chain += [AccessLogInterceptor(),
                      AuthInterceptor(tokens, max_calls_per_identity=limits.max_calls_per_identity,
                                      traffic=traffic)]
            interceptors = chain
        self._server = grpc.server(
            self._executor,
            interceptors=list(interceptors),
            options=limits.options(),
            maximum_concurrent_rpcs=limits.workers,
        )
        registrar = _LenientRegistrar(self._server)
        vault_pb2_grpc.add_VaultServiceServicer_to_server(  # type: ignore[no-untyped-call]
            VaultServicer(vaults, max_response_bytes=limits.max_response_bytes), registrar)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registrar)  # type: ignore[arg-type]
        names = [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME]
        for name, add in extra_services:
            add(registrar)  # type: ignore[arg-type]
            registrar.flush()
            names.append(name)
        registrar.flush()
        self._served = [SERVICE_NAME] + [n for n, _ in extra_services]
        reflection.enable_server_reflection(names, self._server)
        creds = grpc.ssl_server_credentials(
            [(tls.key.read_bytes(), tls.cert.read_bytes())],
            root_certificates=tls.client_ca.read_bytes(),
            require_client_auth=tls.require_client_cert,
        )
        self.port = self._server.add_secure_port(listen, creds)
        if self.port == 0:
            raise OSError(f"cannot listen on {listen}: address in use or not available")
        self._stopping = threading.Event()
        self._health_poll = health_poll_seconds
        self._poller: threading.Thread | None = None
        self._set_health()

    @property
    def address(self) -> str:
        host = self._listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def _set_health(self) -> None:
        try:
            ready = bool(self._vaults.ready())
        except Exception:
            ready = False
        status = (health_pb2.HealthCheckResponse.SERVING if ready and not self._stopping.is_set()
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ["", *self._served]:
            self.health.set(name, status)

    def _poll(self) -> None:
        while not self._stopping.wait(self._health_poll):
            self._set_health()

    def start(self) -> None:
        self._server.start()
        self._set_health()
        self._poller = threading.Thread(target=self._poll, name="health", daemon=True)
        self._poller.start()
        log.info("vaultd listening on %s", self.address)

    def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING, new calls are refused, calls in flight get ``grace`` seconds
        (then are cancelled: an unfinished deposit stores nothing); returns once every handler
        thread has returned, so that the store can be closed after it."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self._executor.shutdown(wait=True)
        if self._poller is not None:
            self._poller.join(timeout=5)

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))
