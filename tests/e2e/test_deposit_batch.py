"""DepositBatch through the real daemon (mutual TLS on loopback): each item is an independent deposit
with its own authorization, validation, storage, journal leaf and receipt; one that fails stores
nothing and leaves the others alone; request ids keep their idempotency per item; the call's bounds
refuse the whole call and store nothing."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from servers import RunningServer, journal_leaves, new_vault_id, raw_stub
from vaultd.client import BATCH_BYTES, BATCH_ITEMS, DepositItem, VaultClient
from vaultd.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable, VaultError
from vaultd.journal.receipt import verify_receipt
from vaultd.types import Receipt
from vaultd.v1 import vault_pb2 as pb
from vaultd.v1 import vault_pb2_grpc as pb_grpc

MiB = 1 << 20


def stored_chunk_bytes(srv: RunningServer, vault: str) -> int:
    with srv.daemon.vaults.store.read() as r:
        return sum(len(r.get_chunk(vault, cid) or b"") for cid, _ in r.iter_chunks(vault))


def receipts(results: list[Receipt | VaultError]) -> list[Receipt]:
    assert all(isinstance(r, Receipt) for r in results), results
    return [r for r in results if isinstance(r, Receipt)]




@pytest.fixture
def permits(vault_server: RunningServer) -> VaultClient:
    return vault_server.client("permits")


@pytest.fixture
def two_vaults(permits: VaultClient) -> tuple[str, str]:
    a, b = new_vault_id(), new_vault_id()
    permits.create_vault(a)
    permits.create_vault(b)
    return a, b


@pytest.fixture
def raw(vault_server: RunningServer) -> Iterator[pb_grpc.VaultServiceStub]:
    """The bare stub, on a channel that may send more than the server accepts."""
    with raw_stub(vault_server) as stub:
        yield stub


def item(vault: str, name: str, data: bytes, **kw: Any) -> pb.DepositSmallRequest:
    return pb.DepositSmallRequest(header=pb.DepositHeader(vault=vault, name=name, **kw), data=data)


def test_a_batch_across_two_vaults_is_stored_with_verifiable_receipts(
    vault_server: RunningServer, permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, b = two_vaults
    op = vault_server.client("op-admin")
    start = op.checkpoint().tree_size
    docs = [(a, "form-1", b"permit form one\n" * 30), (b, "form-2", os.urandom(5000)),
            (a, "form-3", b""), (b, "photo", os.urandom(300_000))]
    results = receipts(permits.deposit_many(
        [DepositItem(v, n, d, content_type="text/plain", metadata={"case": n}) for v, n, d in docs]))
    key = permits.journal_public_key().verifier_key
    indexes = []
    for (vault, name, data), r in zip(docs, results, strict=True):
        assert (r.stat.vault, r.stat.name, r.stat.version, r.stat.size) == (vault, name, 1, len(data))
        assert r.stat.sha256 == hashlib.sha256(data).digest()
        assert r.stat.content_type == "text/plain" and r.stat.metadata == {"case": name}
        assert r.stat.depositor == "service:permits" and r.request_id
        assert permits.read_bytes(vault, name) == data
        assert permits.stat(vault, name) == r.stat
        assert r.evidence, "every item has its own evidence"
        ev = json.loads(r.evidence)
        assert ev["kind"] == "deposit"
        assert verify_receipt(r.evidence, data, key).ok
        assert not verify_receipt(r.evidence, data + b"x", key).ok
        indexes.append(ev["leaf_index"])
        # the same journal entry the journal service hands out for that version
        assert json.loads(permits.receipt(vault, name))["leaf_index"] == ev["leaf_index"]
    assert len(set(indexes)) == len(docs) and min(indexes) >= start
    deposits = [lf for lf in journal_leaves(op, start) if lf.operation == "deposit"]
    assert sorted((lf.vault, lf.name) for lf in deposits) == sorted((v, n) for v, n, _ in docs)
    assert permits.count(a) == 2 and permits.count(b) == 2


def test_an_item_into_a_vault_it_may_not_touch_is_refused_alone(
    vault_server: RunningServer, permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, b = two_vaults
    op = vault_server.client("op-admin")
    start = op.checkpoint().tree_size
    results = permits.deposit_many([
        DepositItem(a, "ok-1", b"first"),
        DepositItem("taxation", "intrusion", b"not yours"),  # the policy names no such rule for permits
        DepositItem(b, "ok-2", b"second"),
    ])
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    assert isinstance(results[1], PermissionDenied)
    assert "service:permits" in str(results[1]) and "taxation" in str(results[1])
    assert permits.read_bytes(a, "ok-1") == b"first" and permits.read_bytes(b, "ok-2") == b"second"
    with pytest.raises(NotFound):
        vault_server.client("taxation").stat("taxation", "intrusion")  # nothing was made there either
    leaves = journal_leaves(op, start)
    denied = [lf for lf in leaves if lf.outcome == "denied"]
    assert [(lf.operation, lf.vault, lf.actor_name) for lf in denied] == [("deposit", "taxation", "permits")]
    assert sorted(lf.name for lf in leaves if lf.operation == "deposit" and lf.outcome != "denied") == [
        "ok-1", "ok-2"]


def test_an_item_with_a_wrong_sha256_stores_nothing_of_it(
    vault_server: RunningServer, permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, b = two_vaults
    good = os.urandom(20_000)
    results = permits.deposit_many([
        DepositItem(a, "good", good, expected_sha256=hashlib.sha256(good).digest()),
        DepositItem(b, "bad", os.urandom(20_000), expected_sha256=hashlib.sha256(b"something else").digest()),
    ])
    assert isinstance(results[0], Receipt) and results[0].stat.name == "good"
    assert isinstance(results[1], InvalidArgument)
    assert "expected SHA-256" in str(results[1]) and "nothing was stored" in str(results[1])
    with pytest.raises(NotFound):
        permits.stat(b, "bad")
    assert permits.count(b) == 0 and stored_chunk_bytes(vault_server, b) == 0
    assert permits.read_bytes(a, "good") == good


def test_retrying_a_batch_with_its_request_ids_returns_the_first_receipts(
    vault_server: RunningServer, permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, b = two_vaults
    items = [DepositItem(v, f"doc-{i}", os.urandom(3000 + i), request_id=f"batch-7-{i}")
             for i, v in enumerate((a, b, a, b))]
    first = receipts(permits.deposit_many(items))
    stored = stored_chunk_bytes(vault_server, a), stored_chunk_bytes(vault_server, b)
    again = receipts(permits.deposit_many(items))
    key = permits.journal_public_key().verifier_key
    for it, r1, r2 in zip(items, first, again, strict=True):
        assert r2.stat == r1.stat and r2.request_id == r1.request_id == it.request_id
        assert json.loads(r2.evidence or b"")["leaf_index"] == json.loads(r1.evidence or b"")["leaf_index"]
        assert verify_receipt(r2.evidence or b"", it.data, key).ok
    assert (stored_chunk_bytes(vault_server, a), stored_chunk_bytes(vault_server, b)) == stored
    assert permits.count(a) == 2 and permits.count(b) == 2
    assert [s.version for s in permits.list(a, versions=True)] == [1, 1]
    # a request id reused for other content is refused for that item alone
    other = permits.deposit_many([DepositItem(a, "doc-0", b"other content", request_id="batch-7-0"),
                                  DepositItem(a, "doc-9", b"new", request_id="batch-7-9")])
    assert isinstance(other[0], InvalidArgument) and "already used" in str(other[0])
    assert isinstance(other[1], Receipt) and permits.count(a) == 3


def test_two_items_with_the_same_name_are_two_versions(
    permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, _ = two_vaults
    results = receipts(permits.deposit_many([DepositItem(a, "letter", b"draft"),
                                             DepositItem(a, "letter", b"final")]))
    assert [r.stat.version for r in results] == [1, 2]
    assert permits.read_bytes(a, "letter") == b"final"
    assert permits.read_bytes(a, "letter", version=1) == b"draft"
    assert [s.version for s in permits.list(a, versions=True)] == [1, 2]


def test_items_the_message_shows_to_be_malformed_are_refused_alone(
    raw: pb_grpc.VaultServiceStub, permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, b = two_vaults
    resp = raw.DepositBatch(pb.DepositBatchRequest(items=[
        item(a, "one", b"1"),
        pb.DepositSmallRequest(data=b"no header"),
        item(b, "two", b"abc", expected_size=4),  # announced another size
        item(new_vault_id(), "three", b"3"),  # no such vault
        item(a, "", b"4"),  # no name
        item(b, "five", b"5"),
    ]), timeout=30)
    kinds = [r.WhichOneof("outcome") for r in resp.results]
    assert kinds == ["receipt", "error", "error", "error", "error", "receipt"]
    codes = [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
             grpc.StatusCode.INVALID_ARGUMENT]
    assert [r.error.code for r in resp.results[1:5]] == [c.value[0] for c in codes]
    assert "item 1" in resp.results[1].error.message and "header" in resp.results[1].error.message
    assert "announced 4" in resp.results[2].error.message
    assert [r.receipt.stat.name for r in (resp.results[0], resp.results[5])] == ["one", "five"]
    assert permits.count(a) == 1 and permits.count(b) == 1


def test_a_batch_over_its_bounds_stores_nothing(
    vault_server: RunningServer, raw: pb_grpc.VaultServiceStub, permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, b = two_vaults
    with pytest.raises(grpc.RpcError) as e:
        raw.DepositBatch(pb.DepositBatchRequest(
            items=[item(a, f"n{i}", b"x") for i in range(BATCH_ITEMS + 1)]), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {BATCH_ITEMS}" in (e.value.details() or "") and "split" in (e.value.details() or "")
    # more bytes than the server's message bound: gRPC refuses the message before any item is seen
    with pytest.raises(grpc.RpcError) as e:
        raw.DepositBatch(pb.DepositBatchRequest(
            items=[item(b, f"big{i}", os.urandom(MiB // 2)) for i in range(3)]), timeout=30)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert permits.count(a) == 0 and permits.count(b) == 0
    assert stored_chunk_bytes(vault_server, a) == stored_chunk_bytes(vault_server, b) == 0


def test_an_empty_batch_is_an_empty_answer(raw: pb_grpc.VaultServiceStub, permits: VaultClient) -> None:
    resp = raw.DepositBatch(pb.DepositBatchRequest(), timeout=30)
    assert list(resp.results) == []
    assert permits.deposit_many([]) == []


def test_the_client_splits_what_one_call_may_not_hold(
    permits: VaultClient, two_vaults: tuple[str, str],
) -> None:
    a, b = two_vaults
    many = [DepositItem(a, f"note-{i:03d}", b"note %d" % i) for i in range(BATCH_ITEMS + 44)]
    heavy = [DepositItem(b, f"scan-{i}", os.urandom(400_000)) for i in range(4)]  # 3 calls by bytes
    oversized = DepositItem(b, "too-big", bytes(MiB + 1))
    results = permits.deposit_many([*many, oversized, *heavy])
    assert isinstance(results[len(many)], InvalidArgument) and "Use deposit" in str(results[len(many)])
    ok = receipts(results[:len(many)] + results[len(many) + 1:])
    assert [r.stat.name for r in ok] == [it.name for it in [*many, *heavy]]
    assert permits.count(a) == len(many) and permits.count(b) == len(heavy)
    assert permits.read_bytes(b, "scan-3") == heavy[3].data
    assert BATCH_BYTES < 2 * 400_000 + 3 * 400_000  # the heavy items did need more than one call


def test_a_call_that_fails_as_a_whole_gives_its_error_to_each_item(vault_server: RunningServer) -> None:
    svc = vault_server.pki.service("permits")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with VaultClient(f"127.0.0.1:{port}", ca=vault_server.pki.ca.cert, cert=svc.cert, key=svc.key,
                     timeout=5) as c:
        results = c.deposit_many([DepositItem("citizen-x", "a", b"a"), DepositItem("citizen-x", "b", b"b")])
    assert len(results) == 2
    assert all(isinstance(r, Unavailable) for r in results), results


def test_the_items_of_a_call_commit_together(vault_server: RunningServer, permits: VaultClient,
                                             two_vaults: tuple[str, str]) -> None:
    a, b = two_vaults
    store = vault_server.daemon.vaults.store
    before = store.stats()
    results = receipts(permits.deposit_many([DepositItem((a, b)[i % 2], f"d{i}", os.urandom(4096))
                                             for i in range(128)]))
    after = store.stats()
    assert after.units - before.units == 128
    # group commits: the writer takes what is queued when it wakes, so the first units may go before
    # the last are queued (more of them on a loaded machine: 5 were seen with both CPUs busy), but a
    # few commits at most, where one call after another made 128
    commits = after.batches - before.batches
    assert commits <= 16, commits
    assert len({json.loads(r.evidence or b"")["checkpoint"] for r in results}) <= commits
