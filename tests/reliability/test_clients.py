"""Clients that misbehave, over real gRPC against the daemon process: streams cancelled or dropped at
every step, 1 ms deadlines on every verb, thousands of concurrent calls, slow readers, retries with
the same request id racing each other, and messages at and one byte over every bound. The daemon
must answer each clearly, keep serving, and keep nothing of what it did not acknowledge.
(tests/e2e/test_bad_inputs.py covers single cases in-process; these push the real process.)
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from daemon_proc import DaemonProcess, pending_count, store_structure  # type: ignore[import-not-found]
from vaultd.errors import InvalidArgument
from vaultd.v1 import vault_pb2 as pb
from vaultd.v1 import vault_pb2_grpc as pb_grpc

MiB = 1 << 20
VAULT = "citizen-hostile"
WORKERS = 24


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    data = tmp_path_factory.mktemp("hostile") / "data"
    d = DaemonProcess(data, env={"VAULTD_WORKERS": str(WORKERS)}).start()
    with d.client("permits") as c:
        c.create_vault(VAULT)
    try:
        yield d
    finally:
        d.stop()
    assert store_structure(data) == []


def _channel(d: DaemonProcess, **opts: Any) -> grpc.Channel:
    pki = d.data_dir / "pki"
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "svc-permits-key.pem").read_bytes(),
                                         (pki / "svc-permits.pem").read_bytes())
    options = [("grpc.ssl_target_name_override", "localhost"), ("grpc.max_send_message_length", 8 * MiB),
               *opts.items()]
    return grpc.secure_channel(d.address, creds, options)


@pytest.fixture
def stub(daemon: DaemonProcess) -> Iterator[pb_grpc.VaultServiceStub]:
    ch = _channel(daemon)
    yield pb_grpc.VaultServiceStub(ch)
    ch.close()


def _settled(d: DaemonProcess, name_prefix: str, timeout: float = 10.0) -> None:
    """Nothing of the refused deposits stays: no object, no staged part, a sound store."""
    deadline = time.monotonic() + timeout
    with d.client("permits") as c:
        while True:
            left = [s.name for s in c.list(VAULT, name_prefix)]
            pend = pending_count(d.data_dir)
            if not left and pend == 0:
                break
            assert time.monotonic() < deadline, (left, pend)
            time.sleep(0.05)
    assert store_structure(d.data_dir) == []


def _hdr(name: str, **kw: Any) -> pb.DepositRequest:
    return pb.DepositRequest(header=pb.DepositHeader(vault=VAULT, name=name, **kw))


def _code(fn: Any) -> grpc.StatusCode:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


# -- streams cancelled or dropped at every step ----------------------------------------------------

@pytest.mark.parametrize("step", ["after-header", "after-first-piece", "mid-stream", "before-end", "never-ended"])
def test_deposit_cancelled_at_every_step(daemon: DaemonProcess, stub: pb_grpc.VaultServiceStub, step: str) -> None:
    name = f"cancel-{step}"
    pieces = 12  # 12 MiB: at least one staged part commits before the cancel
    gate = threading.Event()

    def requests() -> Iterator[pb.DepositRequest]:
        yield _hdr(name)
        if step == "after-header":
            gate.set()
            time.sleep(30)
        for i in range(pieces):
            yield pb.DepositRequest(data=os.urandom(MiB))
            if (step == "after-first-piece" and i == 0) or (step == "mid-stream" and i == 9):
                gate.set()
                time.sleep(30)
        if step == "before-end":
            gate.set()
            time.sleep(30)
        if step == "never-ended":
            gate.set()
            return  # half-close without the end marker
        yield pb.DepositRequest(end=pb.DepositEnd(size=pieces * MiB))

    fut = stub.Deposit.future(requests(), timeout=60)
    assert gate.wait(30)
    time.sleep(0.3)
    if step != "never-ended":
        assert fut.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            fut.result(timeout=30)
    else:  # the stream ended without its end marker: incomplete, refused
        with pytest.raises(grpc.RpcError) as e:
            fut.result(timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _settled(daemon, name)


def test_dropped_connection_mid_deposit(daemon: DaemonProcess) -> None:
    ch = _channel(daemon)
    s = pb_grpc.VaultServiceStub(ch)
    sent = threading.Event()

    def requests() -> Iterator[pb.DepositRequest]:
        yield _hdr("dropped")
        for _ in range(10):
            yield pb.DepositRequest(data=os.urandom(MiB))
        sent.set()
        time.sleep(30)

    fut = s.Deposit.future(requests(), timeout=60)
    assert sent.wait(30)
    ch.close()  # the connection goes away under the stream
    with pytest.raises(grpc.RpcError):
        fut.result(timeout=30)
    _settled(daemon, "dropped")


def test_reads_cancelled_and_slow(daemon: DaemonProcess, stub: pb_grpc.VaultServiceStub) -> None:
    body = os.urandom(20 * MiB)
    with daemon.client("permits", timeout=60) as c:
        c.deposit(VAULT, "big-read", body)
    # cancelled after the stat, after one piece, mid-way
    for after in (0, 1, 7):
        call = stub.Read(pb.ReadRequest(vault=VAULT, name="big-read"), timeout=30)
        for i, _ in enumerate(call):
            if i >= after:
                break
        call.cancel()
    # a slow reader: one message a quarter second, then the whole is still exact
    got = bytearray()
    call = stub.Read(pb.ReadRequest(vault=VAULT, name="big-read", length=4 * MiB), timeout=30)
    for msg in call:
        if msg.WhichOneof("payload") == "data":
            got += msg.data
            time.sleep(0.25)
    assert bytes(got) == body[:4 * MiB]
    # many readers that stop reading at once: the server keeps serving others
    calls = [stub.Read(pb.ReadRequest(vault=VAULT, name="big-read"), timeout=30) for _ in range(20)]
    for call in calls:
        next(call)
    with daemon.client("permits") as c:
        assert c.read_bytes(VAULT, "big-read", offset=5, length=100) == body[5:105]
    for call in calls:
        call.cancel()


# -- deadlines of a millisecond ---------------------------------------------------------------------

def test_one_millisecond_deadlines_on_every_verb(daemon: DaemonProcess, stub: pb_grpc.VaultServiceStub) -> None:
    with daemon.client("permits") as c:
        c.deposit(VAULT, "deadline-target", os.urandom(3 * MiB))
    calls = {
        "CreateVault": lambda: stub.CreateVault(pb.CreateVaultRequest(vault="citizen-deadline"), timeout=0.001),
        "Deposit": lambda: stub.Deposit(iter([_hdr("deadline-doc"), pb.DepositRequest(data=os.urandom(2 * MiB)),
                                              pb.DepositRequest(end=pb.DepositEnd(size=2 * MiB))]), timeout=0.001),
        "Read": lambda: list(stub.Read(pb.ReadRequest(vault=VAULT, name="deadline-target"), timeout=0.001)),
        "Stat": lambda: stub.Stat(pb.StatRequest(vault=VAULT, name="deadline-target"), timeout=0.001),
        "List": lambda: stub.List(pb.ListRequest(vault=VAULT), timeout=0.001),
        "Count": lambda: stub.Count(pb.CountRequest(vault=VAULT), timeout=0.001),
        "Check": lambda: stub.Check(pb.CheckRequest(vault=VAULT), timeout=0.001),
        "Destroy": lambda: stub.Destroy(pb.DestroyRequest(vault=VAULT, name="deadline-target"), timeout=0.001),
    }
    seen: Counter[str] = Counter()
    for _ in range(20):
        for verb, fn in calls.items():
            code = _code(fn)
            assert code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK, grpc.StatusCode.ALREADY_EXISTS,
                            grpc.StatusCode.NOT_FOUND), (verb, code)
            seen[code.name] += 1
    assert seen["DEADLINE_EXCEEDED"] > 0
    # whatever the deadline cut, the deposit is either whole or absent
    with daemon.client("permits") as c:
        for st in c.list(VAULT, "deadline-doc", versions=True):
            got = c.read_bytes(VAULT, st.name, version=st.version)
            assert hashlib.sha256(got).digest() == st.sha256 and st.size == 2 * MiB
    deadline = time.monotonic() + 10
    while pending_count(daemon.data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending_count(daemon.data_dir) == 0
    assert store_structure(daemon.data_dir) == []


# -- thousands of concurrent calls ------------------------------------------------------------------

def test_thousands_of_concurrent_calls_are_bounded(daemon: DaemonProcess) -> None:
    """2000 calls at once over 40 connections: each is served or refused with RESOURCE_EXHAUSTED
    (the worker bound), never left hanging; the daemon serves normally afterwards."""
    with daemon.client("permits") as c:
        c.deposit(VAULT, "crowd", os.urandom(2 * MiB))
    channels = [_channel(daemon) for _ in range(40)]
    stubs = [pb_grpc.VaultServiceStub(ch) for ch in channels]
    futures = []
    for i in range(2000):
        s = stubs[i % len(stubs)]
        if i % 4 == 0:  # slow, long calls that hold a worker
            futures.append(s.Check.future(pb.CheckRequest(vault=VAULT), timeout=60))
        elif i % 4 == 1:
            futures.append(s.Deposit.future(iter([_hdr(f"crowd-{i}"), pb.DepositRequest(data=os.urandom(1000)),
                                                  pb.DepositRequest(end=pb.DepositEnd(size=1000))]), timeout=60))
        else:
            futures.append(s.Stat.future(pb.StatRequest(vault=VAULT, name="crowd"), timeout=60))
    codes: Counter[str] = Counter()
    for f in futures:
        try:
            f.result(timeout=90)
            codes["OK"] += 1
        except grpc.RpcError as e:
            codes[e.code().name] += 1
    for ch in channels:
        ch.close()
    print(dict(codes))
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] > 0 and sum(codes.values()) == 2000
    assert daemon.alive()
    with daemon.client("permits") as c:
        # every acknowledged crowd deposit is whole; the refused ones are absent
        for st in c.list(VAULT, "crowd-"):
            assert c.read_bytes(VAULT, st.name) and st.size == 1000
        assert c.stat(VAULT, "crowd").size == 2 * MiB


# -- retries with the same request id racing ----------------------------------------------------------

def test_racing_retries_store_once(daemon: DaemonProcess) -> None:
    body = os.urandom(5 * MiB)
    rid = uuid.uuid4().hex
    clients = [daemon.client("permits", timeout=60) for _ in range(8)]
    try:
        with ThreadPoolExecutor(8) as ex:
            receipts = list(ex.map(lambda c: c.deposit(VAULT, "retried", body, request_id=rid), clients))
    finally:
        for c in clients:
            c.close()
    versions = {r.stat.version for r in receipts}
    assert len(versions) == 1, versions
    with daemon.client("permits") as c:
        assert [s.version for s in c.list(VAULT, "retried", versions=True)] == [versions.pop()]
        assert c.read_bytes(VAULT, "retried") == body
    # the same request id with other content is refused, never stored as a new version
    with daemon.client("permits") as c:
        try:
            r = c.deposit(VAULT, "retried", b"other", request_id=rid)
        except InvalidArgument:
            pass
        else:
            assert r.stat.sha256 == hashlib.sha256(body).digest()
        assert len(list(c.list(VAULT, "retried", versions=True))) == 1


# -- at and one byte over every bound ------------------------------------------------------------------

# Found by this test: the journal's deposit/destroy index keys once carried the whole object name,
# so a name longer than about 490 bytes exceeded LMDB's 511-byte key bound; they now carry its SHA-256.

BOUNDS: list[Any] = [
    # (what, at the bound, one over)
    ("name bytes (LMDB key bound)", {"name": "n" * 400}, {"name": "\x00" * 400}),
    ("name bytes", {"name": "n" * 1024}, {"name": "n" * 1025}),
    ("name bytes (multi-byte)", {"name": "é" * 512}, {"name": "é" * 512 + "n"}),
    ("metadata entries", {"metadata": {f"k{i}": "v" for i in range(64)}},
     {"metadata": {f"k{i}": "v" for i in range(65)}}),
    ("metadata key", {"metadata": {"k" * 128: "v"}}, {"metadata": {"k" * 129: "v"}}),
    ("metadata value", {"metadata": {"k": "v" * 1024}}, {"metadata": {"k": "v" * 1025}}),
    ("content type", {"content_type": "t" * 256}, {"content_type": "t" * 257}),
    ("request id", {"request_id": "r" * 128}, {"request_id": "r" * 129}),
    ("vault id", {"vault": "citizen-" + "v" * 120}, {"vault": "citizen-" + "v" * 121}),
]


@pytest.mark.parametrize("what,at,over", BOUNDS)
def test_at_and_one_over_every_bound(daemon: DaemonProcess, stub: pb_grpc.VaultServiceStub, what: str,
                                     at: dict[str, Any], over: dict[str, Any]) -> None:
    def deposit(fields: dict[str, Any]) -> grpc.StatusCode:
        fields = dict(fields)
        vault = fields.pop("vault", VAULT)
        name = fields.pop("name", f"bound-{uuid.uuid4().hex[:8]}")
        hdr = pb.DepositHeader(vault=vault, name=name, **fields)
        return _code(lambda: stub.Deposit(iter([pb.DepositRequest(header=hdr, data=b"x"),
                                                pb.DepositRequest(end=pb.DepositEnd(size=1))]), timeout=30))

    if "vault" in at:  # a vault id at the bound can be created, one over cannot
        stub.CreateVault(pb.CreateVaultRequest(vault=at["vault"]), timeout=10)
        assert _code(lambda: stub.CreateVault(pb.CreateVaultRequest(vault=over["vault"]), timeout=10)) == \
            grpc.StatusCode.INVALID_ARGUMENT
    assert deposit(at) == grpc.StatusCode.OK, what
    assert deposit(over) == grpc.StatusCode.INVALID_ARGUMENT, what


def test_data_pieces_at_and_over_one_mebibyte(daemon: DaemonProcess, stub: pb_grpc.VaultServiceStub) -> None:
    body = os.urandom(MiB)
    ok = stub.Deposit(iter([_hdr("piece-at"), pb.DepositRequest(data=body), pb.DepositRequest(end=pb.DepositEnd(size=MiB))]),
                      timeout=30)
    assert ok.stat.size == MiB
    code = _code(lambda: stub.Deposit(iter([_hdr("piece-over"), pb.DepositRequest(data=body + b"x"),
                                            pb.DepositRequest(end=pb.DepositEnd(size=MiB + 1))]), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # the header and the data in one message at the bound
    ok = stub.Deposit(iter([pb.DepositRequest(header=pb.DepositHeader(vault=VAULT, name="piece-one"), data=body,
                                              end=pb.DepositEnd(size=MiB))]), timeout=30)
    assert ok.stat.size == MiB
    _settled(daemon, "piece-over")
    # page size: 1000 is the bound, larger is clamped or refused, never unbounded
    resp = stub.List(pb.ListRequest(vault=VAULT, page_size=1000), timeout=30)
    assert len(resp.objects) <= 1000
    code = _code(lambda: stub.List(pb.ListRequest(vault=VAULT, page_size=1001), timeout=30))
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    code = _code(lambda: stub.List(pb.ListRequest(vault=VAULT, page_token="%%%not-a-token"), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_malformed_stream_messages_do_not_exhaust_the_connection(daemon: DaemonProcess) -> None:
    """Found by fuzz/fuzz_servicer.py: a request message whose bytes do not parse used to be refused by
    gRPC's own receive callback, leaving its HTTP/2 stream counted on the connection; after 64 such
    calls the connection refused every call (REFUSED_STREAM). Now the handler refuses it cleanly."""
    ch = _channel(daemon)
    try:
        raw = ch.stream_unary("/vaultd.v1.VaultService/Deposit")
        good = pb.DepositRequest(header=pb.DepositHeader(vault=VAULT, name="malformed"), data=b"abcd").SerializeToString()
        codes: Counter[str] = Counter()
        for i in range(150):
            msgs = [b"\x00\x00"] if i % 2 else [good, b"\xff\xff\xff", pb.DepositRequest(end=pb.DepositEnd(size=4)).SerializeToString()]
            try:
                raw(iter(msgs), timeout=10)
                codes["OK"] += 1
            except grpc.RpcError as e:
                codes[e.code().name] += 1
        assert codes == {"INVALID_ARGUMENT": 150}, codes
        # the same for unary requests, and for the journal service
        for path in ("/vaultd.v1.VaultService/Stat", "/vaultd.v1.VaultService/CreateVault",
                     "/vaultd.v1.JournalService/GetConsistencyProof"):
            call = ch.unary_unary(path)
            for _ in range(70):
                with pytest.raises(grpc.RpcError) as e:
                    call(b"\xff\xff\xff", timeout=10)
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stat = pb_grpc.VaultServiceStub(ch).Count(pb.CountRequest(vault=VAULT), timeout=10)
        assert stat.count >= 0
    finally:
        ch.close()
    _settled(daemon, "malformed")
