"""The daemon's Prometheus endpoint: RED per method from the interceptor, store and key gauges."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable

from servers import RunningServer
from vaultd.errors import NotFound


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scrape(server_factory: Callable[..., RunningServer]) -> None:
    port = free_port()
    srv = server_factory(metrics_listen=f"127.0.0.1:{port}")
    c = srv.client("permits")
    c.create_vault("citizen-m")
    c.deposit("citizen-m", "a", b"12345")
    try:
        c.stat("citizen-m", "missing")
    except NotFound:
        pass
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    lines = [line for line in text.splitlines() if not line.startswith("#")]

    def value(prefix: str) -> float:
        found = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix)]
        assert found, prefix
        return found[0]

    assert value("vaultd_ready ") == 1.0
    assert value("vaultd_lmdb_map_used_bytes ") > 0
    assert value("vaultd_key_kek_current_version ") >= 1
    assert value('vaultd_certificate_expiry_timestamp_seconds{role="server"}') > 0
    assert value('vaultd_grpc_server_handled_total{grpc_code="OK",grpc_method="DepositSmall"') == 1.0
    assert value('vaultd_grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="Stat"') == 1.0
    assert "citizen-m" not in text  # never a vault id as a label
