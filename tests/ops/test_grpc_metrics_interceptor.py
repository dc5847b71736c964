"""MetricsInterceptor against a real gRPC server over TLS on 127.0.0.1 (every RPC kind)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

import ops_service
from ops_service import SERVICE
from vaultd.metrics import Metrics
from vaultd.transport.metrics import split_method


def value(m: Metrics, name: str, **labels: str) -> float:
    v = m.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


@pytest.fixture()
def svc() -> Iterator[ops_service.Running]:
    running = ops_service.start()
    yield running
    running.close()


def handled(m: Metrics, method: str, rpc_type: str, code: str) -> float:
    return value(m, "vaultd_grpc_server_handled_total", grpc_service=SERVICE, grpc_method=method,
                 grpc_type=rpc_type, grpc_code=code)


def test_split_method() -> None:
    assert split_method("/vaultd.v1.Vault/Deposit") == ("vaultd.v1.Vault", "Deposit")
    assert split_method("garbage") == ("unknown", "garbage")


def test_unary_codes_counts_and_bytes(svc: ops_service.Running) -> None:
    m = svc.metrics
    echo = svc.stub("unary_unary", "Echo")
    for _ in range(3):
        assert echo(b"hello world", timeout=5) == b"hello world"
    with pytest.raises(grpc.RpcError) as e:
        echo(b"notfound", timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        echo(b"boom", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    with pytest.raises(grpc.RpcError) as e:
        echo(b"dataloss", timeout=5)
    assert e.value.code() == grpc.StatusCode.DATA_LOSS

    assert handled(m, "Echo", "unary", "OK") == 3
    assert handled(m, "Echo", "unary", "NOT_FOUND") == 1
    assert handled(m, "Echo", "unary", "UNKNOWN") == 1
    assert handled(m, "Echo", "unary", "DATA_LOSS") == 1
    lab = dict(grpc_service=SERVICE, grpc_method="Echo", grpc_type="unary")
    assert value(m, "vaultd_grpc_server_started_total", **lab) == 6
    assert value(m, "vaultd_grpc_server_handling_seconds_count", **lab) == 6
    assert value(m, "vaultd_grpc_server_msg_received_total", **lab) == 6
    # 3 echoes and the (empty) message returned with DATA_LOSS; abort and raise sent nothing
    assert value(m, "vaultd_grpc_server_msg_sent_total", **lab) == 4
    short = dict(grpc_service=SERVICE, grpc_method="Echo")
    assert value(m, "vaultd_grpc_server_received_bytes_total", **short) == 3 * 11 + 8 + 4 + 8
    assert value(m, "vaultd_grpc_server_sent_bytes_total", **short) == 3 * 11
    assert value(m, "vaultd_grpc_server_in_flight", **short) == 0


def test_latency_lands_in_the_right_bucket(svc: ops_service.Running) -> None:
    m = svc.metrics
    echo = svc.stub("unary_unary", "Echo")
    echo(b"sleep:120", timeout=5)
    lab = dict(grpc_service=SERVICE, grpc_method="Echo", grpc_type="unary")
    assert value(m, "vaultd_grpc_server_handling_seconds_bucket", le="0.1", **lab) == 0
    assert value(m, "vaultd_grpc_server_handling_seconds_bucket", le="0.25", **lab) == 1
    assert 0.12 <= value(m, "vaultd_grpc_server_handling_seconds_sum", **lab) < 1.0


def test_streams_count_messages_and_bytes(svc: ops_service.Running) -> None:
    m = svc.metrics
    pieces = list(svc.stub("unary_stream", "Split")(b"0123456789", timeout=5))
    assert pieces == [b"0123", b"4567", b"89"]
    lab = dict(grpc_service=SERVICE, grpc_method="Split", grpc_type="server_stream")
    assert value(m, "vaultd_grpc_server_msg_sent_total", **lab) == 3
    assert value(m, "vaultd_grpc_server_sent_bytes_total", grpc_service=SERVICE,
                 grpc_method="Split") == 10
    assert handled(m, "Split", "server_stream", "OK") == 1

    total = svc.stub("stream_unary", "Upload")(iter([b"a" * 1000] * 5), timeout=5)
    assert total == b"5000"
    lab = dict(grpc_service=SERVICE, grpc_method="Upload", grpc_type="client_stream")
    assert value(m, "vaultd_grpc_server_msg_received_total", **lab) == 5
    assert value(m, "vaultd_grpc_server_received_bytes_total", grpc_service=SERVICE,
                 grpc_method="Upload") == 5000
    assert handled(m, "Upload", "client_stream", "OK") == 1

    out = list(svc.stub("stream_stream", "Chat")(iter([b"ab", b"cd"]), timeout=5))
    assert out == [b"AB", b"CD"]
    lab = dict(grpc_service=SERVICE, grpc_method="Chat", grpc_type="bidi_stream")
    assert value(m, "vaultd_grpc_server_msg_received_total", **lab) == 2
    assert value(m, "vaultd_grpc_server_msg_sent_total", **lab) == 2
    assert handled(m, "Chat", "bidi_stream", "OK") == 1


def test_in_flight_stream_and_cancel(svc: ops_service.Running) -> None:
    m = svc.metrics
    short = dict(grpc_service=SERVICE, grpc_method="Slow")
    call = svc.stub("unary_stream", "Slow")(b"", timeout=10)
    assert next(call) == b"tick"
    assert value(m, "vaultd_grpc_server_in_flight", **short) == 1
    call.cancel()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and handled(m, "Slow", "server_stream", "CANCELLED") < 1:
        time.sleep(0.05)
    assert handled(m, "Slow", "server_stream", "CANCELLED") == 1
    assert value(m, "vaultd_grpc_server_in_flight", **short) == 0


def test_two_servers_keep_separate_counts() -> None:
    a, b = ops_service.start(), ops_service.start()
    try:
        a.stub("unary_unary", "Echo")(b"x", timeout=5)
        a.stub("unary_unary", "Echo")(b"x", timeout=5)
        b.stub("unary_unary", "Echo")(b"x", timeout=5)
        assert handled(a.metrics, "Echo", "unary", "OK") == 2
        assert handled(b.metrics, "Echo", "unary", "OK") == 1
    finally:
        a.close()
        b.close()


def test_unknown_method_is_not_counted(svc: ops_service.Running) -> None:
    with pytest.raises(grpc.RpcError) as e:
        svc.channel.unary_unary(f"/{SERVICE}/Nope")(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    text = svc.metrics.exposition().decode()
    assert 'grpc_method="Nope"' not in text
