"""A connection keeps taking calls however its calls end.

Found by fuzz/fuzz_servicer.py (after about 5000 mixed calls on one connection, every new call on it
was refused with REFUSED_STREAM): gRPC counts an HTTP/2 stream against the connection's
``max_concurrent_streams`` until the server's call object is freed, and the access-log and metrics
interceptors kept the exception of every failed call in a local of the frame that the exception's
own traceback holds (and an exception the store writer handed over through a future stayed in a
local of the writer's frame, which its traceback holds too). That reference cycle kept the call (and its stream) alive until Python's cyclic
garbage collector happened to run, so how many failed calls piled up depended on the collector's
timing, not on any one kind of request. These tests switch the collector off, so that only
reference counting frees calls: a call left in a cycle is then never freed, deterministically.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from vaultd.cli.daemon import Daemon
from vaultd.client import VaultClient
from vaultd.config import Config
from vaultd.v1 import journal_pb2 as jpb
from vaultd.v1 import vault_pb2 as pb

STREAMS = 4  # max_concurrent_streams of the daemon under test: a leak shows after a few calls
VAULT = "citizen-streams"
V, J = "/vaultd.v1.VaultService/", "/vaultd.v1.JournalService/"


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    with tempfile.TemporaryDirectory(prefix="streams-") as tmp:
        data = Path(tmp)
        d = Daemon(Config(data_dir=data, listen="127.0.0.1:0", metrics_listen="", dev=True, map_size=1 << 26,
                          grace_period=0.5, workers=8, max_concurrent_streams=STREAMS))
        d.start()
        try:
            c = VaultClient.for_dev(d.address, data, "permits", server_name="localhost")
            c.create_vault(VAULT)
            c.deposit(VAULT, "doc", b"content " * 64)
            c.set_retention(VAULT, "doc", 4_000_000_000)  # shortening it later is refused by the writer
            c.close()
            yield d
        finally:
            d.stop(0.5)


@pytest.fixture
def channel(daemon: Daemon) -> Iterator[grpc.Channel]:
    c = VaultClient.for_dev(daemon.address, daemon.config.data_dir, "permits", server_name="localhost")
    try:
        yield c._channel
    finally:
        c.close()


def _calls(ch: grpc.Channel) -> dict[str, Callable[[], object]]:
    """One call of each way a call can end, on ``ch``: its status code is returned."""
    good_deposit = [pb.DepositRequest(header=pb.DepositHeader(vault=VAULT, name="n"), data=b"abcd",
                                      end=pb.DepositEnd(size=4)).SerializeToString()]
    unary, stream_out, stream_in = ch.unary_unary, ch.unary_stream, ch.stream_unary
    return {
        "unary ok": lambda: unary(J + "GetCheckpoint")(b"", timeout=10),
        "unary not found": lambda: unary(V + "Stat")(
            pb.StatRequest(vault=VAULT, name="absent").SerializeToString(), timeout=10),
        "unary malformed": lambda: unary(V + "Stat")(b"\xff\xff\xff", timeout=10),
        "unary refused by policy": lambda: unary(V + "CreateVault")(
            pb.CreateVaultRequest(vault="other").SerializeToString(), timeout=10),
        "unary refused in the store writer": lambda: unary(V + "SetRetention")(
            pb.SetRetentionRequest(vault=VAULT, name="doc", retain_until=0).SerializeToString(), timeout=10),
        "journal invalid": lambda: unary(J + "GetConsistencyProof")(
            jpb.GetConsistencyProofRequest(old_size=5, new_size=2).SerializeToString(), timeout=10),
        "server stream ok": lambda: list(stream_out(V + "Read")(
            pb.ReadRequest(vault=VAULT, name="doc").SerializeToString(), timeout=10)),
        "server stream not found": lambda: list(stream_out(V + "Read")(
            pb.ReadRequest(vault=VAULT, name="absent").SerializeToString(), timeout=10)),
        "server stream malformed": lambda: list(stream_out(V + "Read")(b"\xff\xff", timeout=10)),
        "client stream ok": lambda: stream_in(V + "Deposit")(iter(good_deposit), timeout=10),
        "client stream without header": lambda: stream_in(V + "Deposit")(iter([b""]), timeout=10),
        "client stream malformed": lambda: stream_in(V + "Deposit")(iter([b"\xff\xff"]), timeout=10),
    }


def _code(fn: Callable[[], object]) -> grpc.StatusCode:
    """The call's status. A refused stream (UNAVAILABLE) is tried once more a second later: a loaded
    server may be late releasing finished streams, whereas streams held by a leak stay held (the
    collector is off in these tests), so the second try is refused too."""
    for attempt in range(2):
        try:
            fn()
        except grpc.RpcError as e:
            code: grpc.StatusCode = e.code()
            if code == grpc.StatusCode.UNAVAILABLE and attempt == 0:
                time.sleep(1.0)
                continue
            return code
        return grpc.StatusCode.OK
    raise AssertionError("unreachable")


def _server_calls_in_cycles() -> int:
    """Server call contexts that only the cyclic collector would free."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        n = sum(1 for o in gc.garbage
                if type(o).__name__ == "_Context" and type(o).__module__ == "grpc._server")
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return n


def test_no_call_outcome_leaves_its_server_call_in_a_reference_cycle(channel: grpc.Channel) -> None:
    leaked: dict[str, int] = {}
    for name, fn in _calls(channel).items():
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                _code(fn)
        finally:
            gc.enable()
        n = _server_calls_in_cycles()
        if n:
            leaked[name] = n
    assert leaked == {}, f"server calls kept alive by reference cycles (by outcome): {leaked}"


def test_mixed_failing_calls_never_exhaust_one_connection(channel: grpc.Channel) -> None:
    """The fuzzer's symptom, without depending on when the collector runs: many times more failed
    calls than the connection has streams, with the collector off, then a normal call."""
    calls = _calls(channel)
    codes: dict[str, set[str]] = {}
    gc.collect()
    gc.disable()
    try:
        for _ in range(4 * STREAMS):
            for name, fn in calls.items():
                codes.setdefault(name, set()).add(_code(fn).name)
        final = _code(calls["unary ok"])
    finally:
        gc.enable()
    assert all("UNAVAILABLE" not in c for c in codes.values()), codes
    assert final == grpc.StatusCode.OK
    assert codes["unary ok"] == {"OK"} and codes["server stream ok"] == {"OK"}
    assert codes["client stream ok"] == {"OK"}
    assert codes["unary not found"] == {"NOT_FOUND"} and codes["server stream not found"] == {"NOT_FOUND"}
    assert codes["unary malformed"] == codes["client stream malformed"] == {"INVALID_ARGUMENT"}
    assert codes["unary refused by policy"] == {"PERMISSION_DENIED"}
    assert codes["unary refused in the store writer"] == {"FAILED_PRECONDITION"}
