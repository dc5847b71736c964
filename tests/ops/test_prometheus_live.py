"""A real Prometheus server scrapes a real vaultd under traffic.

The test starts vaultd (gRPC over mutual TLS on 127.0.0.1, real LMDB, metrics on an ephemeral
port) and the Debian ``prometheus`` binary (temporary storage, 1 s scrape interval, a free port
on 127.0.0.1), sends known traffic through the real client, then asks Prometheus's HTTP API
whether request counters, latency histograms, bytes and storage gauges moved as the traffic says.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from servers import RunningServer, new_vault_id, start_server
from vaultd.errors import NotFound

PROMETHEUS = shutil.which("prometheus")
if PROMETHEUS is None:  # a failure, not a skip
    raise RuntimeError("prometheus not found: install the Debian package 'prometheus' (scripts/setup)")

SERVICE = "vaultd.v1.VaultService"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, root: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: vaultd\n    scrape_interval: 1s\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = (root / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=root)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if urllib.request.urlopen(self.url + "/-/ready", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("prometheus not ready in 30 s")

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        body = json.load(urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5))
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_for(self, expr: str, check: Callable[[float | None], bool], timeout: float = 20) -> float | None:
        deadline = time.monotonic() + timeout
        v = None
        while time.monotonic() < deadline:
            v = self.value(expr)
            if check(v):
                return v
            time.sleep(0.5)
        raise AssertionError(f"{expr} = {v} after {timeout} s")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture()
def daemon(tmp_path: Path) -> Iterator[RunningServer]:
    srv = start_server(tmp_path / "vaultd", metrics_listen="127.0.0.1:0")
    yield srv
    srv.stop()


def metrics_endpoint(srv: RunningServer) -> str:
    port = srv.daemon.metrics_port  # the port the daemon's metrics endpoint chose
    assert port is not None, "the daemon started no metrics endpoint"
    return f"127.0.0.1:{port}"


def test_prometheus_sees_traffic_and_storage(daemon: RunningServer, tmp_path: Path) -> None:
    prom = Prometheus(tmp_path / "prom", metrics_endpoint(daemon))
    try:
        prom.wait_for('up{job="vaultd"}', lambda v: v == 1)
        prom.wait_for("vaultd_store_objects", lambda v: v == 0)
        assert prom.value("vaultd_store_logical_bytes") == 0
        assert prom.value("vaultd_key_kek_versions_in_use") == 0  # no vault yet
        leaves_before = prom.value("vaultd_journal_leaves")
        assert leaves_before is not None
        used_before = prom.value("vaultd_lmdb_map_used_bytes")
        assert used_before is not None and used_before > 0
        assert prom.value("vaultd_lmdb_map_size_bytes") == 1 << 30

        client = daemon.client("permits")
        vault = new_vault_id()
        client.create_vault(vault)
        sizes = [1000, 50_000, 300_000, 2_500_000]  # the last one is several 1 MiB messages
        blobs = [os.urandom(n) for n in sizes]
        for i, blob in enumerate(blobs):
            client.deposit(vault, f"doc-{i}", blob)
        for i, blob in enumerate(blobs[:2]):
            assert client.read_bytes(vault, f"doc-{i}") == blob
        for _ in range(3):
            with pytest.raises(NotFound):
                client.stat(vault, "missing")
        for i in range(len(blobs)):
            client.stat(vault, f"doc-{i}")

        def sel(method: str, **labels: str) -> str:
            extra = "".join(f',{k}="{v}"' for k, v in labels.items())
            return f'{{job="vaultd",grpc_service="{SERVICE}",grpc_method=~"{method}"{extra}}}'

        # the client sends small documents in one unary DepositSmall, larger ones streamed
        deposits = "Deposit|DepositSmall"

        handled = "sum(vaultd_grpc_server_handled_total{})"
        prom.wait_for(handled.format(sel(deposits, grpc_code="OK")), lambda v: v == 4)
        assert prom.value(handled.format(sel("CreateVault", grpc_code="OK"))) == 1
        prom.wait_for(handled.format(sel("Read", grpc_code="OK")), lambda v: v == 2)
        prom.wait_for(handled.format(sel("Stat", grpc_code="NOT_FOUND")), lambda v: v == 3)
        prom.wait_for(handled.format(sel("Stat", grpc_code="OK")), lambda v: v == 4)
        assert prom.value(f"sum(vaultd_grpc_server_started_total{sel('Stat')})") == 7

        # latency histograms: one observation per call, every one under the +Inf bucket, and a
        # plausible total time
        assert prom.value(f"sum(vaultd_grpc_server_handling_seconds_count{sel(deposits)})") == 4
        assert prom.value(
            f'sum(vaultd_grpc_server_handling_seconds_bucket{sel(deposits, le="+Inf")})') == 4
        deposit_seconds = prom.value(f"sum(vaultd_grpc_server_handling_seconds_sum{sel(deposits)})")
        assert deposit_seconds is not None and 0 < deposit_seconds < 60
        # a rate needs the series to move between two scrapes: more calls now it is known
        for _ in range(5):
            client.stat(vault, "doc-0")
        prom.wait_for(handled.format(sel("Stat", grpc_code="OK")), lambda v: v == 9)
        p99 = prom.wait_for("histogram_quantile(0.99, sum by (le) (rate("
                            f"vaultd_grpc_server_handling_seconds_bucket{sel('Stat')}[1m])))",
                            lambda v: v is not None and v == v)  # not NaN
        assert p99 is not None and 0 < p99 <= 1.0

        # bytes: every deposited byte came in, every read byte went out (plus protobuf framing)
        received = prom.value(f"sum(vaultd_grpc_server_received_bytes_total{sel(deposits)})")
        assert received is not None and sum(sizes) <= received < sum(sizes) * 1.01 + 10_000
        sent = prom.value(f"sum(vaultd_grpc_server_sent_bytes_total{sel('Read')})")
        assert sent is not None and sum(sizes[:2]) <= sent < sum(sizes[:2]) * 1.01 + 10_000
        msgs = prom.value(f"sum(vaultd_grpc_server_msg_received_total{sel(deposits)})")
        # at least one message per deposit, and three for 2.5 MB (data messages are <= 1 MiB)
        assert msgs is not None and msgs >= 3 + 3
        streamed = prom.value(f"sum(vaultd_grpc_server_msg_received_total{sel('Deposit')})")
        assert streamed is not None and streamed >= 3

        # no call in flight once the traffic is over
        assert prom.value(f"sum(vaultd_grpc_server_in_flight{{job=\"vaultd\"}})") == 0

        # storage gauges follow the deposits
        prom.wait_for("vaultd_store_objects", lambda v: v == 4)
        assert prom.value("vaultd_store_object_versions") == 4
        assert prom.value("vaultd_store_vaults") == 1
        chunks = prom.value("vaultd_store_chunks")
        assert chunks is not None and chunks >= 4
        stored = prom.value("vaultd_store_stored_bytes")
        assert stored is not None and stored >= sum(sizes)  # random data: nothing to deduplicate
        used_after = prom.value("vaultd_lmdb_map_used_bytes")
        assert used_after is not None and used_after >= used_before + sum(sizes)
        assert prom.value("vaultd_ready") == 1
        # logical bytes: exactly what was deposited, counted by the core with each deposit
        assert prom.value("vaultd_store_logical_bytes") == sum(sizes)
        assert prom.value("vaultd_key_kek_versions_in_use") == 1
        assert prom.value("vaultd_key_kek_current_version") == 1

        # the writer, the Rust core and the journal record what the traffic made them do
        commits = prom.value('vaultd_writer_transactions_total{outcome="committed"}')
        assert commits is not None and commits >= 5  # the vault and 4 deposits at least
        assert (prom.value("vaultd_writer_batch_operations_count") or 0) == commits
        assert (prom.value("vaultd_writer_commit_seconds_sum") or 0) > 0
        ingested = prom.value('vaultd_crypto_batch_bytes_sum{operation="ingest"}')
        assert ingested == sum(sizes)
        opened = prom.value('vaultd_crypto_batch_items_sum{operation="open"}')
        assert opened is not None and opened >= 2  # at least one chunk per document read
        leaves = prom.value("vaultd_journal_leaves")
        # create, 4 deposits, 2 reads at least (denied attempts add leaves too)
        assert leaves is not None and leaves >= leaves_before + 7
        assert prom.value("vaultd_journal_leaves_appended_total") == leaves - leaves_before
        signed = prom.value("vaultd_journal_last_checkpoint_timestamp_seconds")
        assert signed is not None and abs(signed - time.time()) < 60
        client.inclusion_proof(0)
        client.inclusion_proof(1)
        prom.wait_for('vaultd_journal_proofs_served_total{kind="inclusion"}', lambda v: v == 2)
        assert prom.value('vaultd_journal_proofs_served_total{kind="consistency"}') == 0
        for role in ("server", "client_ca", "citizen_ca"):
            expiry = prom.value(f'vaultd_certificate_expiry_timestamp_seconds{{role="{role}"}}')
            assert expiry is not None and expiry > time.time() + 86400, role

        # a second deposit of the same content adds a version, not stored bytes
        client.deposit(vault, "doc-3", blobs[3])
        prom.wait_for("vaultd_store_object_versions", lambda v: v == 5)
        assert prom.value("vaultd_store_objects") == 4
        stored_again = prom.value("vaultd_store_stored_bytes")
        assert stored_again is not None and stored_again < stored + 100_000
        prom.wait_for(handled.format(sel(deposits, grpc_code="OK")), lambda v: v == 5)
        prom.wait_for("vaultd_store_logical_bytes", lambda v: v == sum(sizes) + sizes[3])
        # destroying a version gives its bytes back
        client.destroy(vault, "doc-0")
        prom.wait_for("vaultd_store_logical_bytes", lambda v: v == sum(sizes) + sizes[3] - sizes[0])
    finally:
        prom.close()
