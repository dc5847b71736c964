"""`vaultd serve` as a process: help, first run with --dev, graceful SIGTERM with deposits in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemon_process import DaemonProcess
from vaultd.errors import NotFound, VaultError

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path / "data", "--grace-period", "3")
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def test_help_explains_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "vaultd.cli.daemon", "serve", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0
    for opt in ("--data-dir", "--listen", "--metrics-listen", "--config", "--dev", "VAULTD_LISTEN",
                "SIGTERM", "127.0.0.1:7443"):
        assert opt in out.stdout, opt


def test_refuses_to_start_without_tls_files(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "vaultd.cli.daemon", "serve", "--data-dir", str(tmp_path),
                          "--listen", "127.0.0.1:0", "--metrics-listen", ""],
                         cwd=ROOT, capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 1
    assert "tls_cert is not set" in out.stderr


def test_first_run_makes_pki_keyring_policy_and_logs_requests(daemon: DaemonProcess) -> None:
    d = daemon.data_dir
    for p in ("pki/ca.pem", "pki/server.pem", "pki/svc-permits.pem", "pki/op-admin.pem", "policy.toml",
              "keyring.json"):
        assert (d / p).exists(), p
    assert (d / "keyring.json").stat().st_mode & 0o077 == 0
    with daemon.client() as c:
        c.create_vault("citizen-alice")
        c.deposit("citizen-alice", "hello.txt", b"SECRET-CONTENT-123")
    daemon._wait_for('"method":"/vaultd.v1.VaultService/DepositSmall"')
    with daemon.client("taxation") as c:
        with pytest.raises(VaultError):
            c.stat("permits", "x")
    denied = daemon._wait_for('"status":"PERMISSION_DENIED"')
    assert '"identity":"service:taxation"' in denied and '"method":"/vaultd.v1.VaultService/Stat"' in denied
    assert daemon.terminate() == 0
    lines = [line for line in daemon.log if "/vaultd.v1.VaultService/DepositSmall" in line]
    assert '"identity":"service:permits"' in lines[0] and '"vault":"citizen-alice"' in lines[0]
    assert '"status":"OK"' in lines[0] and "duration_seconds" in lines[0]
    assert not any("SECRET-CONTENT-123" in line for line in daemon.log)


def test_sigterm_lets_a_deposit_in_flight_finish(daemon: DaemonProcess) -> None:
    c = daemon.client()
    c.create_vault("citizen-bob")
    body = os.urandom(4 * MiB)
    started = threading.Event()

    def slow() -> Iterator[bytes]:
        for i in range(8):
            yield body[i * 512 * 1024:(i + 1) * 512 * 1024]
            started.set()
            time.sleep(0.15)  # ~1.2 s in all: well within the 3 s grace period

    result: dict[str, object] = {}
    t = threading.Thread(target=lambda: result.setdefault("r", c.deposit("citizen-bob", "big", slow())))
    t.start()
    assert started.wait(10)
    pki = daemon.data_dir / "pki"
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "op-admin-key.pem").read_bytes(),
                                         (pki / "op-admin.pem").read_bytes())
    with grpc.secure_channel(daemon.address, creds) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        daemon.proc.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    t.join(20)
    assert "r" in result, "the deposit in flight should have finished within the grace period"
    assert daemon.proc.wait(20) == 0
    c.close()
    again = DaemonProcess(daemon.data_dir)
    try:
        with again.client() as c2:
            assert c2.read_bytes("citizen-bob", "big") == body
    finally:
        again.terminate()


def test_sigterm_cancels_a_deposit_past_the_grace_period(daemon: DaemonProcess) -> None:
    c = daemon.client()
    c.create_vault("citizen-carol")
    started = threading.Event()

    def endless() -> Iterator[bytes]:
        for _ in range(1000):
            yield os.urandom(256 * 1024)
            started.set()
            time.sleep(0.1)

    failure: list[BaseException] = []

    def run() -> None:
        try:
            c.deposit("citizen-carol", "never", endless(), timeout=60)
        except VaultError as e:
            failure.append(e)

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(10)
    time.sleep(0.5)
    t0 = time.monotonic()
    assert daemon.terminate(timeout=30) == 0
    assert time.monotonic() - t0 < 15
    t.join(20)
    assert failure, "the endless deposit must fail when the daemon stops"
    c.close()
    again = DaemonProcess(daemon.data_dir)
    try:
        with again.client() as c2:
            with pytest.raises(NotFound):
                c2.stat("citizen-carol", "never")
            assert c2.count("citizen-carol") == 0
    finally:
        again.terminate()
