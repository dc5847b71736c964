"""A tiny gRPC test service (raw bytes, no protobuf) behind the real MetricsInterceptor, over TLS
on 127.0.0.1, used by the interceptor tests and the Prometheus test until the daemon serves.

Methods of ``vaultd.test.Echo``:
- ``Echo`` (unary): returns the request; ``notfound`` aborts NOT_FOUND, ``boom`` raises,
  ``dataloss`` sets DATA_LOSS, ``sleep:<ms>`` sleeps that long first;
- ``Split`` (server stream): the request cut in pieces of 4 bytes;
- ``Upload`` (client stream): the total length of the pieces, as decimal text;
- ``Chat`` (bidi): each piece back, upper-cased;
- ``Slow`` (server stream): one piece every 50 ms, forever (to be cancelled).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc

from ops_tls import make_tls
from vaultd.metrics import Metrics
from vaultd.transport.metrics import MetricsInterceptor

SERVICE = "vaultd.test.Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"notfound":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    if request == b"boom":
        raise RuntimeError("boom")
    if request == b"dataloss":
        context.set_code(grpc.StatusCode.DATA_LOSS)
        context.set_details("chunk failed its tag")
        return b""
    if request.startswith(b"sleep:"):
        time.sleep(int(request[6:]) / 1000)
    return request


def _split(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(0, len(request), 4):
        yield request[i:i + 4]


def _upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return str(sum(len(r) for r in requests)).encode()


def _chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for r in requests:
        yield r.upper()


def _slow(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    while context.is_active():
        yield b"tick"
        time.sleep(0.05)


HANDLERS = {
    "Echo": grpc.unary_unary_rpc_method_handler(_echo),
    "Split": grpc.unary_stream_rpc_method_handler(_split),
    "Upload": grpc.stream_unary_rpc_method_handler(_upload),
    "Chat": grpc.stream_stream_rpc_method_handler(_chat),
    "Slow": grpc.unary_stream_rpc_method_handler(_slow),
}


@dataclass
class Running:
    metrics: Metrics
    server: grpc.Server
    channel: grpc.Channel

    def stub(self, kind: str, method: str):  # noqa: ANN201
        path = f"/{SERVICE}/{method}"
        return getattr(self.channel, kind)(path)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=None).wait(5)


def start(metrics: Metrics | None = None) -> Running:
    m = metrics or Metrics()
    tls = make_tls()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[MetricsInterceptor(m)],
        options=[("grpc.max_receive_message_length", 1 << 20)],
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, HANDLERS)])
    creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}", grpc.ssl_channel_credentials(root_certificates=tls.ca_pem),
        options=[("grpc.ssl_target_name_override", "localhost")])
    grpc.channel_ready_future(channel).result(timeout=10)
    m.set_certificate_expiry("server", tls.not_after.timestamp())
    return Running(m, server, channel)
