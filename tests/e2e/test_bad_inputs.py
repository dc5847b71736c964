"""Bad inputs end to end: broken, cancelled, truncated and oversized streams, wrong hashes,
deadlines, malformed requests, a full map. Each one answers the right status and stores nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from servers import RunningServer, new_vault_id, raw_stub
from vaultd.client import DepositItem, VaultClient
from vaultd.core.vaults import MAX_META, stat_wire_size
from vaultd.errors import (
    Cancelled, DeadlineExceeded, InvalidArgument, NotFound, ResourceExhausted, VaultError,
)
from vaultd.transport import convert
from vaultd.v1 import vault_pb2 as pb
from vaultd.v1 import vault_pb2_grpc as pb_grpc
from vaultd.wire import varint_len

MiB = 1 << 20


def stored_chunk_bytes(srv: RunningServer, vault: str) -> int:
    with srv.daemon.vaults.store.read() as r:
        return sum(len(r.get_chunk(vault, cid) or b"") for cid, _ in r.iter_chunks(vault))


def pending(srv: RunningServer) -> int:
    with srv.daemon.vaults.store.read() as r:
        return sum(1 for _ in r.iter_pending())


def assert_nothing_stored(srv: RunningServer, c: VaultClient, vault: str, name: str) -> None:
    deadline = time.monotonic() + 5  # the server may still be unwinding the cancelled call
    while True:
        try:
            c.stat(vault, name)
            found = True
        except NotFound:
            found = False
        if not found and stored_chunk_bytes(srv, vault) == 0 and pending(srv) == 0:
            break
        assert time.monotonic() < deadline, (
            f"a failed deposit left data behind: object {found}, "
            f"chunk bytes {stored_chunk_bytes(srv, vault)}, pending {pending(srv)}")
        time.sleep(0.05)
    assert c.count(vault) == 0


@pytest.fixture
def setup(vault_server: RunningServer) -> tuple[RunningServer, VaultClient, str]:
    c = vault_server.client("permits")
    vault = new_vault_id()
    c.create_vault(vault)
    return vault_server, c, vault


@pytest.fixture
def raw(vault_server: RunningServer) -> Iterator[pb_grpc.VaultServiceStub]:
    """A bare stub that may send what the client library never would (large messages)."""
    with raw_stub(vault_server) as stub:
        yield stub


def header(vault: str, name: str, **kw: Any) -> pb.DepositRequest:
    return pb.DepositRequest(header=pb.DepositHeader(vault=vault, name=name, **kw))


def data(b: bytes) -> pb.DepositRequest:
    return pb.DepositRequest(data=b)


def end(size: int) -> pb.DepositRequest:
    return pb.DepositRequest(end=pb.DepositEnd(size=size))


def code_of(stub_call: Callable[[], Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        stub_call()
    return e.value.code()  # type: ignore[no-any-return]


def test_client_breaks_the_stream_midway(setup: Any) -> None:
    srv, c, vault = setup

    def pieces() -> Iterator[bytes]:
        yield os.urandom(MiB)
        yield os.urandom(MiB)
        raise RuntimeError("the source file went away")

    with pytest.raises(VaultError):
        c.deposit(vault, "broken", pieces())
    assert_nothing_stored(srv, c, vault, "broken")


def test_cancelled_stream_stores_nothing(setup: Any, raw: pb_grpc.VaultServiceStub) -> None:
    srv, c, vault = setup
    sent = []

    def messages() -> Iterator[pb.DepositRequest]:
        yield header(vault, "cancelled")
        for _ in range(20):  # a large deposit: 20 MiB, more than one staged part
            sent.append(1)
            yield data(os.urandom(MiB))
        time.sleep(30)  # never finishes: cancelled below

    fut = raw.Deposit.future(messages(), timeout=60)
    deadline = time.monotonic() + 10
    while len(sent) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    fut.cancel()
    assert fut.cancelled() or fut.exception().code() == grpc.StatusCode.CANCELLED
    assert_nothing_stored(srv, c, vault, "cancelled")


def test_truncated_stream_stores_nothing(setup: Any, raw: pb_grpc.VaultServiceStub) -> None:
    srv, c, vault = setup
    body = os.urandom(MiB + 10)
    # fewer bytes than the header announced
    code = code_of(lambda: raw.Deposit(iter([header(vault, "short", expected_size=len(body) + 500),
                                             data(body[:MiB]), data(body[MiB:]), end(len(body))]),
                                       timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # more bytes than announced
    code = code_of(lambda: raw.Deposit(iter([header(vault, "long", expected_size=100),
                                             data(body[:MiB]), end(MiB)]), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # a stream that stops without its end message (no size announced): truncated
    code = code_of(lambda: raw.Deposit(iter([header(vault, "cut"), data(body[:MiB])]), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # an end message that counts other bytes than arrived
    code = code_of(lambda: raw.Deposit(iter([header(vault, "miscounted"), data(body[:MiB]), end(MiB + 1)]),
                                       timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    for name in ("short", "long", "cut", "miscounted"):
        assert_nothing_stored(srv, c, vault, name)
    # the same stream, complete, is stored
    r = raw.Deposit(iter([header(vault, "whole"), data(body[:MiB]), data(body[MiB:]), end(len(body))]),
                    timeout=10)
    assert r.stat.size == len(body) and c.read_bytes(vault, "whole") == body


def test_oversized_messages(setup: Any, raw: pb_grpc.VaultServiceStub) -> None:
    srv, c, vault = setup
    # one byte over the 1 MiB data bound: refused by the servicer
    code = code_of(lambda: raw.Deposit(iter([header(vault, "big"), data(os.urandom(MiB + 1))]), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # far over it: refused by gRPC's receive bound before any handler sees it (gRPC then ends the
    # request stream as if the client had half-closed: the missing end message keeps it out)
    for _ in range(5):
        code = code_of(lambda: raw.Deposit(iter([header(vault, "big"), data(os.urandom(3 * MiB)), end(3 * MiB)]),
                                           timeout=10))
        assert code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
    assert_nothing_stored(srv, c, vault, "big")
    # the client library cuts large pieces itself
    r = c.deposit(vault, "fine", iter([os.urandom(3 * MiB + 7)]))
    assert r.stat.size == 3 * MiB + 7


def test_malformed_streams(setup: Any, raw: pb_grpc.VaultServiceStub) -> None:
    srv, c, vault = setup
    assert code_of(lambda: raw.Deposit(iter([data(b"no header")]), timeout=10)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: raw.Deposit(iter([]), timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: raw.Deposit(iter([header(vault, "two"), data(b"x"), header(vault, "two")]),
                                       timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT
    assert_nothing_stored(srv, c, vault, "two")
    # the end marker closes the deposit: the server reads nothing after it
    raw.Deposit(iter([header(vault, "after"), data(b"x"), end(1), data(b"y")]), timeout=10)
    assert c.read_bytes(vault, "after") == b"x"


def test_wrong_hash_stores_nothing(setup: Any) -> None:
    srv, c, vault = setup
    body = os.urandom(2 * MiB)
    # the sender's promise is broken: INVALID_ARGUMENT (DATA_LOSS is kept for stored data)
    with pytest.raises(InvalidArgument) as e:
        c.deposit(vault, "doc", body, expected_sha256=hashlib.sha256(b"something else").digest())
    assert "SHA-256" in str(e.value) and "nothing was stored" in str(e.value)
    assert_nothing_stored(srv, c, vault, "doc")
    with pytest.raises(InvalidArgument):
        c.deposit(vault, "doc", body, expected_sha256=b"\x00" * 5)


def test_deadline_stops_a_slow_deposit(setup: Any) -> None:
    srv, c, vault = setup

    def slow() -> Iterator[bytes]:
        for _ in range(50):
            yield os.urandom(64 << 10)
            time.sleep(0.1)

    t0 = time.monotonic()
    with pytest.raises((DeadlineExceeded, Cancelled)):
        c.deposit(vault, "slow", slow(), timeout=1.0)
    assert time.monotonic() - t0 < 4
    assert_nothing_stored(srv, c, vault, "slow")


@pytest.mark.parametrize("vault,name,meta", [
    # vault ids the policy's citizen-* pattern matches, so that validation (not policy) refuses
    ("citizen-Bad_Vault", "x", {}),
    ("citizen-a/b", "x", {}),
    ("citizen-" + "v" * 121, "x", {}),
    (None, "", {}),
    (None, "a\x00b", {}),
    (None, "x" * 1025, {}),
    (None, "x", {f"k{i}": "v" for i in range(65)}),
    (None, "x", {"k": "v" * 1025}),
])
def test_out_of_bounds_requests(setup: Any, vault: str | None, name: str, meta: dict[str, str]) -> None:
    srv, c, good = setup
    with pytest.raises(InvalidArgument):
        c.deposit(vault or good, name, b"x", metadata=meta)
    assert c.count(good) == 0


def test_object_larger_than_the_bound(server_factory: Callable[..., RunningServer]) -> None:
    srv = server_factory(max_object_size=2 * MiB)
    c = srv.client("permits")
    c.create_vault("permits")
    with pytest.raises(ResourceExhausted):
        c.deposit("permits", "huge", os.urandom(3 * MiB))
    assert_nothing_stored(srv, c, "permits", "huge")
    assert c.deposit("permits", "ok", os.urandom(MiB)).stat.size == MiB


def test_full_map_answers_resource_exhausted_and_reads_keep_working(
    server_factory: Callable[..., RunningServer],
) -> None:
    srv = server_factory(map_size=12 * MiB)
    c = srv.client("permits")
    c.create_vault("permits")
    kept: dict[str, bytes] = {}
    with pytest.raises(ResourceExhausted) as e:
        for i in range(20):
            body = os.urandom(MiB)
            c.deposit("permits", f"doc-{i}", body)
            kept[f"doc-{i}"] = body
    assert kept, "the map should hold at least one deposit"
    assert "full" in str(e.value).lower() or "map" in str(e.value).lower()
    for name, body in kept.items():
        assert c.read_bytes("permits", name) == body
    assert c.count("permits") == len(kept)
    assert c.check("permits").ok


def test_one_message_deposit(setup: Any, raw: pb_grpc.VaultServiceStub) -> None:
    srv, c, vault = setup
    one = pb.DepositRequest(header=pb.DepositHeader(vault=vault, name="one"), data=b"all in one",
                            end=pb.DepositEnd(size=10))
    assert raw.Deposit(iter([one]), timeout=10).stat.size == 10
    assert c.read_bytes(vault, "one") == b"all in one"
    other = new_vault_id()
    c.create_vault(other)
    bad = pb.DepositRequest(header=pb.DepositHeader(vault=other, name="bad"), data=b"all in one",
                            end=pb.DepositEnd(size=11))
    assert code_of(lambda: raw.Deposit(iter([bad]), timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT
    assert_nothing_stored(srv, c, other, "bad")


def _reads_in_flight(srv: RunningServer) -> float:
    v = srv.daemon.metrics.registry.get_sample_value(
        "vaultd_grpc_server_in_flight", {"grpc_service": "vaultd.v1.VaultService", "grpc_method": "Read"})
    assert v is not None
    return float(v)


def test_abandoned_and_late_reads_stop_on_the_server(setup: Any) -> None:
    srv, c, vault = setup
    c.deposit(vault, "big", os.urandom(24 * MiB))
    # the client takes one piece and walks away
    _, data = c.read(vault, "big")
    assert len(next(data)) > 0
    data.close()
    # a slow reader past its deadline
    _, slow = c.read(vault, "big", timeout=1.0)
    with pytest.raises(DeadlineExceeded):
        for _ in slow:
            time.sleep(0.3)
    deadline = time.monotonic() + 5
    while _reads_in_flight(srv) > 0:
        assert time.monotonic() < deadline, "the server kept streaming to a client that left"
        time.sleep(0.05)
    assert c.read_bytes(vault, "big", offset=24 * MiB - 5) and c.count(vault) == 1


def test_deposit_small(setup: Any, raw: pb_grpc.VaultServiceStub) -> None:
    srv, c, vault = setup
    r = raw.DepositSmall(pb.DepositSmallRequest(header=pb.DepositHeader(vault=vault, name="s", expected_size=3),
                                                data=b"abc"), timeout=10)
    assert r.stat.size == 3 and c.read_bytes(vault, "s") == b"abc"
    assert raw.DepositSmall(pb.DepositSmallRequest(header=pb.DepositHeader(vault=vault, name="e")),
                            timeout=10).stat.size == 0
    other = new_vault_id()
    c.create_vault(other)
    cases = [
        (pb.DepositSmallRequest(data=b"no header"), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DepositSmallRequest(header=pb.DepositHeader(vault=other, name="x", expected_size=4), data=b"abc"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DepositSmallRequest(header=pb.DepositHeader(vault=other, name="x"), data=os.urandom(MiB + 1)),
         grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DepositSmallRequest(header=pb.DepositHeader(vault=other, name="x"), data=os.urandom(2 * MiB)),
         grpc.StatusCode.RESOURCE_EXHAUSTED),
        (pb.DepositSmallRequest(header=pb.DepositHeader(vault=other, name="x",
                                                        expected_sha256=hashlib.sha256(b"other").digest()),
                                data=b"abc"), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for req, code in cases:
        assert code_of(lambda: raw.DepositSmall(req, timeout=10)) == code
    assert_nothing_stored(srv, c, other, "x")


def test_client_uses_one_call_for_small_bytes_and_a_stream_otherwise(vault_server: RunningServer, setup: Any) -> None:
    srv, c, vault = setup

    def handled(method: str) -> float:
        v = srv.daemon.metrics.registry.get_sample_value(
            "vaultd_grpc_server_handled_total",
            {"grpc_service": "vaultd.v1.VaultService", "grpc_method": method,
             "grpc_type": "unary" if method == "DepositSmall" else "client_stream", "grpc_code": "OK"})
        return float(v or 0)

    small0, stream0 = handled("DepositSmall"), handled("Deposit")
    c.deposit(vault, "a", os.urandom(MiB))
    c.deposit(vault, "b", os.urandom(MiB + 1))
    c.deposit(vault, "c", iter([b"x"]))
    assert (handled("DepositSmall") - small0, handled("Deposit") - stream0) == (1, 2)


def test_list_page_token_not_of_this_listing_is_invalid_argument(setup: Any, raw: pb_grpc.VaultServiceStub) -> None:
    srv, c, vault = setup
    other = new_vault_id()
    c.create_vault(other)
    for v in (vault, other):
        for n in ("a/1", "a/2", "b/1", "b/2"):
            c.deposit(v, n, b"x")

    def list_code(req: pb.ListRequest) -> grpc.StatusCode:
        try:
            raw.List(req, timeout=10)
        except grpc.RpcError as e:
            return e.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    def tok(v: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(v).encode()).decode()

    first = raw.List(pb.ListRequest(vault=vault, prefix="a/", page_size=1), timeout=10)
    token = first.next_page_token
    assert token and list_code(pb.ListRequest(vault=vault, prefix="a/", page_size=1, page_token=token)) == \
        grpc.StatusCode.OK
    for bad in (tok([1, 0]), tok(["\ud800", 0]), tok([["a"], 0]), "%%%not-a-token", "x" * 10_000):
        assert list_code(pb.ListRequest(vault=vault, prefix="a/", page_size=1, page_token=bad)) == \
            grpc.StatusCode.INVALID_ARGUMENT, bad
    # the token of one listing replayed on another: other vault, other prefix, versions
    for req in (pb.ListRequest(vault=other, prefix="a/", page_size=1, page_token=token),
                pb.ListRequest(vault=vault, prefix="b/", page_size=1, page_token=token),
                pb.ListRequest(vault=vault, prefix="a/", page_size=1, page_token=token, versions=True)):
        assert list_code(req) == grpc.StatusCode.INVALID_ARGUMENT, req


def test_list_of_large_entries_ends_the_page_at_the_response_bound(
        setup: Any, raw: pb_grpc.VaultServiceStub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries with metadata at its bounds: a page of 1000 would be far over the response bound, so
    the core ends the page at it, and the servicer asks the core once per page."""
    srv, c, vault = setup
    md = {f"{i:02d}".ljust(128, "k"): "v" * 1024 for i in range(MAX_META)}
    names = [f"big/{i:03d}" for i in range(130)]
    results = c.deposit_many([DepositItem(vault, n, n.encode(), metadata=md) for n in names])
    assert not [r for r in results if isinstance(r, Exception)]
    core = srv.daemon.vaults
    calls: list[Any] = []
    real = core.list

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("max_bytes"))
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "list", counted)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = raw.List(pb.ListRequest(vault=vault, prefix="big/", page_size=1000, page_token=token), timeout=30)
        pages += 1
        assert len(calls) == pages and calls[-1], calls  # one call to the core per page, with a byte bound
        assert resp.ByteSize() <= 4 * MiB
        for m in resp.objects:  # the core's estimate bounds each entry's encoded size
            assert stat_wire_size(convert.stat_from_pb(m)) >= m.ByteSize() + 1 + varint_len(m.ByteSize())
        seen += [m.name for m in resp.objects]
        token = resp.next_page_token
        if pages == 1:
            assert token and 40 < len(resp.objects) < len(names)
        if not token:
            break
    assert seen == names
