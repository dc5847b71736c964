from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from core_support import PERMITS, pieces, random_bytes, stored_chunk_bytes

from vaultd.core.vaults import Vaults, _Deposit
from vaultd.errors import InvalidArgument, NotFound, ResourceExhausted
from vaultd.types import DepositHeader

V = "citizen-bob"


def test_deposit_and_read_back(vaults: Vaults) -> None:
    data = random_bytes(3 << 20)
    r = vaults.deposit(PERMITS, DepositHeader(V, "a/doc.pdf", "application/pdf", {"k": "v"}), pieces(data, 1 << 20))
    assert r.stat.version == 1 and r.stat.size == len(data)
    assert r.stat.sha256 == hashlib.sha256(data).digest()
    assert r.stat.depositor == "service:permits" and r.stat.content_type == "application/pdf"
    assert r.stat.metadata == {"k": "v"}
    stat, it = vaults.read(PERMITS, V, "a/doc.pdf")
    assert stat == r.stat
    assert b"".join(it) == data


def test_chunks_do_not_depend_on_message_split(vaults: Vaults) -> None:
    """Content-defined cuts carry over buffer ends: a second deposit split differently stores nothing."""
    data = random_bytes(20 << 20, seed=1)  # several 8 MiB buffers
    r1 = vaults.deposit(PERMITS, DepositHeader(V, "x"), pieces(data, 1 << 20))
    before = stored_chunk_bytes(vaults, V)
    r2 = vaults.deposit(PERMITS, DepositHeader(V, "y"), pieces(data, 77_777))
    assert r2.stored_bytes == 0 and r2.deduplicated_bytes == len(data)
    assert stored_chunk_bytes(vaults, V) == before
    assert r1.stored_bytes == before
    assert before < len(data) * 1.01  # nonce and tag per chunk only


def test_redeposit_makes_new_version_and_keeps_old(vaults: Vaults) -> None:
    a, b = random_bytes(100_000, 2), random_bytes(200_000, 3)
    vaults.deposit(PERMITS, DepositHeader(V, "n"), [a])
    r = vaults.deposit(PERMITS, DepositHeader(V, "n"), [b])
    assert r.stat.version == 2
    assert b"".join(vaults.read(PERMITS, V, "n")[1]) == b
    assert b"".join(vaults.read(PERMITS, V, "n", version=1)[1]) == a
    assert vaults.stat(PERMITS, V, "n").version == 2


def test_same_bytes_in_two_vaults_share_nothing(vaults: Vaults) -> None:
    vaults.create_vault(PERMITS, "citizen-eve")
    data = random_bytes(1 << 20, 4)
    vaults.deposit(PERMITS, DepositHeader(V, "d"), [data])
    r = vaults.deposit(PERMITS, DepositHeader("citizen-eve", "d"), [data])
    assert r.deduplicated_bytes == 0 and r.stored_bytes > len(data)
    with vaults.store.read() as t:
        ids_a = {c for c, _ in t.iter_chunks(V)}
        ids_b = {c for c, _ in t.iter_chunks("citizen-eve")}
    assert ids_a and ids_b and not ids_a & ids_b


def test_idempotent_retry(vaults: Vaults) -> None:
    data = random_bytes(500_000, 5)
    h = DepositHeader(V, "r", request_id="req-1")
    r1 = vaults.deposit(PERMITS, h, [data])
    used = vaults.store.stats().used_bytes
    r2 = vaults.deposit(PERMITS, h, [data])
    assert r2.stat == r1.stat and r2.stored_bytes == r1.stored_bytes
    assert vaults.stat(PERMITS, V, "r").version == 1  # no second version
    assert vaults.store.stats().used_bytes <= used + 8192
    r3 = vaults.deposit(PERMITS, DepositHeader(V, "r", request_id="req-2"), [data])
    assert r3.stat.version == 2 and r3.stored_bytes == 0


def test_expected_sha256_mismatch_stores_nothing(vaults: Vaults) -> None:
    data = random_bytes(20 << 20, 6)  # large enough to stage parts before the mismatch is known
    staged = []
    real_stage = _Deposit._stage

    def spy(self: _Deposit) -> None:
        real_stage(self)
        staged.append(1)

    _Deposit._stage = spy  # type: ignore[method-assign]
    try:
        with pytest.raises(InvalidArgument, match="expected SHA-256"):
            vaults.deposit(PERMITS, DepositHeader(V, "bad", expected_sha256=b"\0" * 32), pieces(data, 1 << 20))
    finally:
        _Deposit._stage = real_stage  # type: ignore[method-assign]
    assert staged  # parts were written before the mismatch was known, and rolled back
    assert stored_chunk_bytes(vaults, V) == 0
    with pytest.raises(NotFound):
        vaults.stat(PERMITS, V, "bad")
    ok = vaults.deposit(PERMITS, DepositHeader(V, "good", expected_sha256=hashlib.sha256(data).digest()), pieces(data, 1 << 20))
    assert ok.stat.size == len(data)


def test_cancelled_stream_leaves_nothing(vaults: Vaults) -> None:
    data = random_bytes(40 << 20, 7)

    def broken() -> Iterator[bytes]:
        yield from pieces(data[: 36 << 20], 1 << 20)  # past two staged parts
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        vaults.deposit(PERMITS, DepositHeader(V, "cut"), broken())
    assert stored_chunk_bytes(vaults, V) == 0
    with vaults.store.read() as r:
        assert list(r.iter_pending()) == [] and list(r.iter_chunks(V)) == []


def test_bounds(vaults: Vaults) -> None:
    with pytest.raises(InvalidArgument, match="at most"):
        vaults.deposit(PERMITS, DepositHeader(V, "big-piece"), [b"x" * ((1 << 20) + 1)])
    for bad in ["", "a\x00b", "tab\there", "x" * 1025]:
        with pytest.raises(InvalidArgument):
            vaults.deposit(PERMITS, DepositHeader(V, bad), [b"x"])
    with pytest.raises(InvalidArgument):
        vaults.deposit(PERMITS, DepositHeader(V, "m", metadata={f"k{i}": "v" for i in range(65)}), [b"x"])
    with pytest.raises(InvalidArgument):
        vaults.deposit(PERMITS, DepositHeader(V, "m", metadata={"k": "v" * 1025}), [b"x"])
    with pytest.raises(InvalidArgument):
        vaults.deposit(PERMITS, DepositHeader("citizen-Bad Vault", "m"), [b"x"])
    with pytest.raises(NotFound):
        vaults.deposit(PERMITS, DepositHeader("citizen-nobody", "m"), [b"x"])
    vaults.max_object_size = 3 << 20
    with pytest.raises(ResourceExhausted, match="maximum size"):
        vaults.deposit(PERMITS, DepositHeader(V, "too-big"), pieces(random_bytes(4 << 20), 1 << 20))
    assert stored_chunk_bytes(vaults, V) == 0


def test_long_name_and_empty_object(vaults: Vaults) -> None:
    name = "é" * 512  # 1024 bytes
    vaults.deposit(PERMITS, DepositHeader(V, name), [b"hello"])
    assert b"".join(vaults.read(PERMITS, V, name)[1]) == b"hello"
    r = vaults.deposit(PERMITS, DepositHeader(V, "empty"), [])
    assert r.stat.size == 0 and r.stat.sha256 == hashlib.sha256(b"").digest()
    assert b"".join(vaults.read(PERMITS, V, "empty")[1]) == b""


def test_concurrent_deposits(vaults: Vaults) -> None:
    import threading

    out: dict[int, object] = {}

    def one(i: int) -> None:
        out[i] = vaults.deposit(PERMITS, DepositHeader(V, f"c{i}"), [random_bytes(16 << 10, 100 + i)])

    ts = [threading.Thread(target=one, args=(i,)) for i in range(32)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 32
    assert vaults.count(PERMITS, V, "c") == 32
    assert vaults.store.stats().batches < 40  # grouped commits
