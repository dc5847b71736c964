"""Every verb end to end: a real daemon over mutual TLS on loopback, a real LMDB."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from servers import RunningServer, new_vault_id
from store_support import put_manifest_sealed
from vaultd.v1 import vault_pb2 as pb
from vaultd import crypto
from vaultd.client import DepositItem, VaultClient
from vaultd.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)


def stored_chunk_bytes(srv: RunningServer, vault: str) -> int:
    """Bytes of sealed chunks the store holds for ``vault``, read from LMDB itself."""
    total = 0
    with srv.daemon.vaults.store.read() as r:
        for chunk_id, _refs in r.iter_chunks(vault):
            sealed = r.get_chunk(vault, chunk_id)
            assert sealed is not None
            total += len(sealed)
    return total


@pytest.fixture
def permits(client_for: Callable[..., VaultClient]) -> VaultClient:
    return client_for("permits")


def test_create_deposit_read_stat(permits: VaultClient) -> None:
    vault = new_vault_id()
    info = permits.create_vault(vault)
    assert info.vault == vault and info.key_version >= 1
    with pytest.raises(AlreadyExists):
        permits.create_vault(vault)
    data = os.urandom(2_500_000)
    r = permits.deposit(vault, "permits/2024/A-001.pdf", data, content_type="application/pdf",
                        metadata={"case": "A-001"}, expected_sha256=hashlib.sha256(data).digest())
    assert r.stat.version == 1 and r.stat.size == len(data)
    assert r.stat.sha256 == hashlib.sha256(data).digest()
    assert r.stat.depositor == "service:permits"
    assert r.stored_bytes >= len(data) and r.deduplicated_bytes == 0
    s = permits.stat(vault, "permits/2024/A-001.pdf")
    assert (s.object_id, s.content_type, s.metadata) == (r.stat.object_id, "application/pdf", {"case": "A-001"})
    assert abs(s.deposited_at_ns / 1e9 - time.time()) < 60
    assert permits.read_bytes(vault, "permits/2024/A-001.pdf") == data
    # offset and length, across the 1 MiB message boundary
    assert permits.read_bytes(vault, "permits/2024/A-001.pdf", offset=1_000_000, length=100_000) == \
        data[1_000_000:1_100_000]
    assert permits.read_bytes(vault, "permits/2024/A-001.pdf", offset=2_400_000) == data[2_400_000:]


def test_read_streams_whole_chunks_joined_in_messages_of_at_most_1_mib(permits: VaultClient) -> None:
    """A read sends its chunks (256 KiB on average) joined into messages of at most 1 MiB, not one
    message per chunk; ranges that start or end inside a chunk still give exactly their bytes."""
    vault = new_vault_id()
    permits.create_vault(vault)
    data = os.urandom(12 << 20)
    permits.deposit(vault, "big", data)
    _, pieces = permits.read(vault, "big")
    sizes = [len(p) for p in pieces]
    assert sum(sizes) == len(data) and max(sizes) <= 1 << 20
    assert len(sizes) <= 24, sizes  # about 46 chunks of 256 KiB: one message per chunk would be 40 or more
    for offset, length in ((0, 1), (300_000, 5_000_000), (1 << 20, 1 << 20), ((12 << 20) - 7, None)):
        got = permits.read_bytes(vault, "big", offset=offset, length=length)
        assert got == data[offset:None if length is None else offset + length]


def test_read_to_file_and_deposit_from_file(permits: VaultClient, tmp_path: Path) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(3 << 20))
    seen: list[tuple[int, int | None]] = []
    permits.deposit(vault, "doc", src, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (3 << 20, 3 << 20) and len(seen) == 3
    out = tmp_path / "out.bin"
    st = permits.read_to(vault, "doc", out)
    assert out.read_bytes() == src.read_bytes() and st.size == 3 << 20


def test_empty_object(permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    r = permits.deposit(vault, "empty", b"")
    assert r.stat.size == 0 and r.stat.sha256 == hashlib.sha256(b"").digest()
    assert permits.read_bytes(vault, "empty") == b""


def test_versions(permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    bodies = [os.urandom(1000 + i) for i in range(3)]
    for b in bodies:
        permits.deposit(vault, "contract", b)
    assert permits.stat(vault, "contract").version == 3
    for v, b in enumerate(bodies, start=1):
        assert permits.read_bytes(vault, "contract", version=v) == b
        assert permits.stat(vault, "contract", version=v).size == len(b)
    assert [s.version for s in permits.list(vault, versions=True)] == [1, 2, 3]
    assert [s.version for s in permits.list(vault)] == [3]
    d = permits.destroy(vault, "contract", version=2)
    assert (d.version, d.actor) == (2, "service:permits")
    with pytest.raises(NotFound):
        permits.read_bytes(vault, "contract", version=2)
    assert permits.read_bytes(vault, "contract", version=1) == bodies[0]
    assert [s.version for s in permits.list(vault, versions=True)] == [1, 3]


def test_list_pages_prefix_and_count(permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    names = [f"a/{i:03d}" for i in range(25)] + [f"b/{i}" for i in range(5)]
    for n in names:
        permits.deposit(vault, n, n.encode())
    page, token = permits.list_page(vault, "a/", page_size=10)
    assert [s.name for s in page] == names[:10] and token
    assert [s.name for s in permits.list(vault, "a/", page_size=7)] == names[:25]
    assert [s.name for s in permits.list(vault)] == sorted(names)
    assert permits.count(vault) == 30
    assert permits.count(vault, "b/") == 5
    assert permits.count(vault, "c/") == 0


def test_check_and_destroy(permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    data = os.urandom(1 << 20)
    permits.deposit(vault, "x", data)
    permits.deposit(vault, "y", os.urandom(10))
    rep = permits.check(vault)
    assert rep.ok and rep.objects == 2 and rep.bytes == len(data) + 10 and rep.chunks >= 2
    rep = permits.check(vault, "x")
    assert rep.ok and rep.objects == 1 and rep.bytes == len(data)
    permits.destroy(vault, "x")
    with pytest.raises(NotFound):
        permits.stat(vault, "x")
    with pytest.raises(NotFound):
        permits.destroy(vault, "x")
    assert permits.count(vault) == 1


def test_check_needs_a_name_for_a_version_and_bounds_its_list(vault_server: RunningServer,
                                                              permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    permits.deposit(vault, "x", b"one")
    with pytest.raises(InvalidArgument, match="name"):
        permits.check(vault, version=1)

    def many_missing(t) -> None:  # type: ignore[no-untyped-def]
        manifest = b"".join(i.to_bytes(2, "big") + b"\x07" * 30 + b"\0\0\0\1" for i in range(1500))
        put_manifest_sealed(vault_server.daemon.vaults, t, vault, "x", 1, manifest)

    vault_server.daemon.vaults.store.write(many_missing)
    rep = permits.check(vault)
    assert len(rep.problems) == 1000 and rep.problems_omitted == 500 and not rep.ok


def test_check_stops_at_its_deadline(vault_server: RunningServer, permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    permits.deposit_many([DepositItem(vault, f"doc-{i}", b"document %d" % i) for i in range(100)])
    vaults = vault_server.daemon.vaults
    read_chunk = vaults._stored_chunk
    reads = []

    def slow(v: str, cid: bytes) -> bytes | None:  # 100 chunks: 2 s to check them all
        reads.append(cid)
        time.sleep(0.02)
        return read_chunk(v, cid)

    vaults._stored_chunk = slow  # type: ignore[method-assign]
    try:
        with pytest.raises(DeadlineExceeded):
            permits.check(vault, timeout=0.5)
        time.sleep(0.3)  # the server stops at its next object too
        stopped_at = len(reads)
        time.sleep(0.3)
        assert len(reads) == stopped_at and stopped_at < 50
        # a caller that goes away stops it the same way
        reads.clear()
        call = permits._stub.Check.future(pb.CheckRequest(vault=vault), metadata=permits._metadata)
        time.sleep(0.3)
        call.cancel()
        time.sleep(0.3)
        stopped_at = len(reads)
        time.sleep(0.3)
        assert len(reads) == stopped_at and stopped_at < 50
    finally:
        del vaults._stored_chunk  # type: ignore[method-assign]


def test_dedup_within_a_vault_not_across(vault_server: RunningServer, permits: VaultClient) -> None:
    a, b = new_vault_id(), new_vault_id()
    permits.create_vault(a)
    permits.create_vault(b)
    data = random.Random(20261202).randbytes(4 << 20)  # fixed: the edit's growth below is reproducible
    r1 = permits.deposit(a, "one", data)
    stored_after_first = stored_chunk_bytes(vault_server, a)
    assert len(data) <= stored_after_first <= len(data) * 1.01
    r2 = permits.deposit(a, "two", data)  # same bytes, another name
    assert r2.stored_bytes == 0 and r2.deduplicated_bytes == len(data)
    assert stored_chunk_bytes(vault_server, a) == stored_after_first
    # a small edit in the middle stores only the chunks around it
    edited = data[:2_000_000] + b"EDIT" + data[2_000_000:]
    permits.deposit(a, "three", edited)
    growth = stored_chunk_bytes(vault_server, a) - stored_after_first
    # content-defined chunks resynchronise after the edit: the chunk holding it and at most the next
    # are new (1.4 MiB was seen for some contents; a whole new copy would be 4 MiB)
    assert 0 < growth <= 2 * (crypto.DEFAULT_MAX_SIZE + crypto.NONCE_SIZE + crypto.TAG_SIZE), growth
    # identical bytes in another vault share nothing
    r3 = permits.deposit(b, "one", data)
    assert r3.deduplicated_bytes == 0 and r3.stored_bytes >= len(data)
    assert stored_chunk_bytes(vault_server, b) >= len(data)
    assert r1.stat.object_id != r3.stat.object_id
    # destroying the last reference removes the chunks
    permits.destroy(b, "one")
    assert stored_chunk_bytes(vault_server, b) == 0


def test_retention_and_legal_hold(permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    future = int(time.time()) + 3600
    r = permits.deposit(vault, "kept", b"legal", retain_until=future)
    assert r.stat.retain_until == future
    with pytest.raises(FailedPrecondition):
        permits.destroy(vault, "kept")
    assert permits.set_retention(vault, "kept", future + 10).retain_until == future + 10
    with pytest.raises((FailedPrecondition, InvalidArgument)):
        permits.set_retention(vault, "kept", future - 10)  # never shortened
    permits.deposit(vault, "held", b"evidence")
    assert permits.set_legal_hold(vault, "held", True).legal_hold is True
    with pytest.raises(FailedPrecondition):
        permits.destroy(vault, "held")
    assert permits.read_bytes(vault, "held") == b"evidence"
    assert permits.set_legal_hold(vault, "held", False).legal_hold is False
    permits.destroy(vault, "held")
    # a retention date in the past does not block
    permits.deposit(vault, "expired", b"x")
    permits.set_retention(vault, "expired", int(time.time()) - 5)
    permits.destroy(vault, "expired")


def test_retention_beyond_year_9999_is_refused(vault_server: RunningServer, permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    last = 253402300799  # 9999-12-31T23:59:59Z
    with pytest.raises(InvalidArgument, match="9999"):
        permits.deposit(vault, "far", b"x", retain_until=10**17)
    with pytest.raises(NotFound):
        permits.stat(vault, "far")
    permits.deposit(vault, "kept", b"x")
    with pytest.raises(InvalidArgument, match="9999"):
        permits.set_retention(vault, "kept", last + 1)
    assert permits.set_retention(vault, "kept", last).retain_until == last
    with pytest.raises(FailedPrecondition, match="9999-12-31T23:59:59Z"):
        permits.destroy(vault, "kept")
    # a date no calendar can name, stored before such dates were refused: still a plain refusal
    store = vault_server.daemon.vaults.store

    def far_future(t) -> None:  # type: ignore[no-untyped-def]
        rec = json.loads(t.get_version(vault, "kept", 1))
        rec["retain_until"] = 10**17
        t.put_version(vault, "kept", 1, json.dumps(rec).encode(), t.get_manifest(vault, "kept", 1))

    store.write(far_future)
    with pytest.raises(FailedPrecondition, match=str(10**17)):
        permits.destroy(vault, "kept")


def test_idempotent_retry(vault_server: RunningServer, permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    data = os.urandom(300_000)
    r1 = permits.deposit(vault, "form", data, request_id="req-42")
    stored = stored_chunk_bytes(vault_server, vault)
    r2 = permits.deposit(vault, "form", data, request_id="req-42")
    assert r2.stat == r1.stat and r2.request_id == "req-42"
    assert stored_chunk_bytes(vault_server, vault) == stored
    assert [s.version for s in permits.list(vault, versions=True)] == [1]
    r3 = permits.deposit(vault, "form", data, request_id="req-43")
    assert r3.stat.version == 2
    # a streamed deposit (its data messages received as views of the messages) retried the same way
    big = os.urandom(3 * (1 << 20) + 5)
    s1 = permits.deposit(vault, "plan", big, request_id="req-44")
    stored = stored_chunk_bytes(vault_server, vault)
    s2 = permits.deposit(vault, "plan", big, request_id="req-44")
    assert s2.stat == s1.stat and stored_chunk_bytes(vault_server, vault) == stored
    with pytest.raises(InvalidArgument, match="already used for another deposit"):
        permits.deposit(vault, "plan", big[:-1] + bytes([big[-1] ^ 1]), request_id="req-44")
    assert permits.read_bytes(vault, "plan") == big


def test_rotation_keeps_reads_working(client_for: Callable[..., VaultClient]) -> None:
    permits, admin = client_for("permits"), client_for("op-admin")
    vault = new_vault_id()
    before = permits.create_vault(vault).key_version
    data = os.urandom(200_000)
    permits.deposit(vault, "doc", data)
    v = admin.rotate_keys()
    assert v > before
    assert permits.read_bytes(vault, "doc") == data
    permits.deposit(vault, "doc2", data)
    assert permits.check(vault).ok
    assert admin.rotate_keys() == v + 1
    assert permits.read_bytes(vault, "doc2") == data


def test_unknown_vault_and_object(permits: VaultClient) -> None:
    vault = new_vault_id()  # allowed by the policy, never created
    with pytest.raises(NotFound):
        permits.deposit(vault, "x", b"data")
    with pytest.raises(NotFound):
        permits.stat(vault, "x")
    with pytest.raises(NotFound):
        permits.read_bytes(vault, "x")
    permits.create_vault(vault)
    with pytest.raises(NotFound):
        permits.stat(vault, "missing")
    with pytest.raises(NotFound):
        permits.read_bytes(vault, "missing")
    permits.deposit(vault, "x", b"data")
    with pytest.raises(NotFound):
        permits.stat(vault, "x", version=7)


def test_destroy_vault_shreds_it(client_for: Callable[..., VaultClient]) -> None:
    permits = client_for("permits")
    vault = new_vault_id()
    permits.create_vault(vault)
    permits.deposit(vault, "x", b"secret")
    with pytest.raises(PermissionDenied):  # a whole vault is the operators' to destroy
        permits.destroy_vault(vault)
    assert permits.read_bytes(vault, "x") == b"secret"
    client_for("op-admin").destroy_vault(vault)
    with pytest.raises(NotFound):
        permits.read_bytes(vault, "x")


def test_destroy_vault_refused_while_a_version_is_held(client_for: Callable[..., VaultClient]) -> None:
    """DestroyVault is FAILED_PRECONDITION while any version in the vault is under legal hold: the
    vault and its content stay whole; once the hold is lifted it is destroyed."""
    permits, admin = client_for("permits"), client_for("op-admin")
    vault = new_vault_id()
    permits.create_vault(vault)
    permits.deposit(vault, "free", b"free")
    permits.deposit(vault, "held", b"held v1")
    permits.deposit(vault, "held", b"held v2")
    permits.set_legal_hold(vault, "held", True, version=1)
    with pytest.raises(FailedPrecondition, match=r"1 version\(s\).*'held' version 1 is under legal hold"):
        admin.destroy_vault(vault)
    assert permits.read_bytes(vault, "held", version=1) == b"held v1"
    assert permits.read_bytes(vault, "free") == b"free" and permits.count(vault) == 2
    permits.set_legal_hold(vault, "held", False, version=1)
    admin.destroy_vault(vault)
    with pytest.raises(NotFound):
        permits.stat(vault, "free")


def test_destroy_vault_refused_while_a_version_is_retained(client_for: Callable[..., VaultClient]) -> None:
    """DestroyVault is FAILED_PRECONDITION while a retention date of a version is in the future; a
    vault whose retention dates have all passed is destroyed."""
    permits, admin = client_for("permits"), client_for("op-admin")
    vault = new_vault_id()
    permits.create_vault(vault)
    permits.deposit(vault, "a", b"a", retain_until=int(time.time()) + 3600)
    permits.deposit(vault, "b", b"b", retain_until=int(time.time()) + 7200)
    with pytest.raises(FailedPrecondition, match=r"2 version\(s\).*'a' version 1 is retained until"):
        admin.destroy_vault(vault)
    assert permits.read_bytes(vault, "b") == b"b"

    expired = new_vault_id()
    permits.create_vault(expired)
    permits.deposit(expired, "old", b"old", retain_until=int(time.time()) - 5)
    admin.destroy_vault(expired)
    with pytest.raises(NotFound):
        permits.stat(expired, "old")


def test_concurrent_deposits_and_reads(permits: VaultClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    vault = new_vault_id()
    permits.create_vault(vault)
    bodies = {f"doc-{i:02d}": os.urandom(16 << 10) for i in range(48)}
    with ThreadPoolExecutor(16) as pool:
        receipts = list(pool.map(lambda kv: permits.deposit(vault, kv[0], kv[1]), bodies.items()))
        assert sorted(r.stat.name for r in receipts) == sorted(bodies)
        back = dict(zip(bodies, pool.map(lambda n: permits.read_bytes(vault, n), bodies)))
    assert back == bodies
    assert permits.count(vault) == len(bodies)
