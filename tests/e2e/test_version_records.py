"""Version records and manifests are authenticated: each carries a MAC, under a key derived from the
vault's data key, over the version's immutable facts and its manifest. A record altered in the store
(chunks reordered or taken from another document, a different size or SHA-256) is refused by Read
before any byte with DATA_LOSS, by Stat, List, SetRetention and SetLegalHold, and reported by Check; every deposit path writes a record
that verifies. Real daemon over mutual TLS on loopback, real LMDB."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable

import grpc
import pytest

from servers import RunningServer, new_vault_id, raw_stub
from vaultd.client import DepositItem, VaultClient
from vaultd.core.vaults import _check_version_mac
from vaultd.errors import IntegrityError
from vaultd.types import Receipt
from vaultd.v1 import vault_pb2 as pb

ENTRY = struct.Struct(">32sI")
MAC_MISMATCH = "does not match its MAC: altered in storage"


@pytest.fixture
def permits(client_for: Callable[..., VaultClient]) -> VaultClient:
    return client_for("permits")


def _alter(srv: RunningServer, vault: str, name: str, *, record: Callable[[dict], None] | None = None,
           manifest: Callable[[list[tuple[bytes, int]]], None] | None = None) -> None:
    """Rewrite version 1 of ``name`` in the store, as someone with access to its files could."""

    def unit(t) -> None:  # type: ignore[no-untyped-def]
        rec = json.loads(t.get_version(vault, name, 1))
        entries = list(ENTRY.iter_unpack(t.get_manifest(vault, name, 1)))
        if record is not None:
            record(rec)
        if manifest is not None:
            manifest(entries)
        t.put_version(vault, name, 1, json.dumps(rec).encode(), b"".join(ENTRY.pack(*e) for e in entries))

    srv.daemon.vaults.store.write(unit)


def _assert_refused(srv: RunningServer, c: VaultClient, vault: str, name: str) -> None:
    """Read answers DATA_LOSS as its first answer (not even the stat is sent), Stat refuses the
    record, Check reports it."""
    with raw_stub(srv) as stub:
        call = stub.Read(pb.ReadRequest(vault=vault, name=name))
        with pytest.raises(grpc.RpcError) as e:
            next(call)
        assert e.value.code() == grpc.StatusCode.DATA_LOSS
        assert MAC_MISMATCH in (e.value.details() or "") and repr(name) in (e.value.details() or "")
    with pytest.raises(IntegrityError, match=MAC_MISMATCH):
        c.read_bytes(vault, name)
    with pytest.raises(IntegrityError, match=MAC_MISMATCH):
        c.stat(vault, name)
    for versions in (False, True):  # List serves the same facts as Stat: it checks them the same way
        with pytest.raises(IntegrityError, match=MAC_MISMATCH):
            list(c.list(vault, versions=versions))
    with pytest.raises(IntegrityError, match=MAC_MISMATCH):  # no hold or retention on an altered record
        c.set_legal_hold(vault, name, True)
    with pytest.raises(IntegrityError, match=MAC_MISMATCH):
        c.set_retention(vault, name, 4_000_000_000)
    rep = c.check(vault)
    assert [(p.name, p.version) for p in rep.problems] == [(name, 1)]
    assert MAC_MISMATCH in rep.problems[0].what
    assert not c.check(vault, name).ok


def _two_documents(c: VaultClient) -> tuple[str, bytes]:
    vault = new_vault_id()
    c.create_vault(vault)
    doc = os.urandom(3 << 20)  # several chunks
    c.deposit(vault, "contract", doc)
    c.deposit(vault, "other", os.urandom(100_000))
    return vault, doc


def test_swapped_manifest_entries_are_refused(vault_server: RunningServer, permits: VaultClient) -> None:
    vault, _ = _two_documents(permits)

    def swap(entries: list[tuple[bytes, int]]) -> None:
        assert len(entries) >= 2
        entries[0], entries[1] = entries[1], entries[0]

    _alter(vault_server, vault, "contract", manifest=swap)
    _assert_refused(vault_server, permits, vault, "contract")
    assert permits.read_bytes(vault, "other")  # the other document is untouched


def test_spliced_chunk_of_another_document_is_refused(vault_server: RunningServer, permits: VaultClient) -> None:
    vault, _ = _two_documents(permits)
    with vault_server.daemon.vaults.store.read() as r:
        foreign = ENTRY.unpack(r.get_manifest(vault, "other", 1)[: ENTRY.size])

    def splice(entries: list[tuple[bytes, int]]) -> None:
        entries[-1] = foreign

    _alter(vault_server, vault, "contract", manifest=splice)
    _assert_refused(vault_server, permits, vault, "contract")


@pytest.mark.parametrize("change", [
    lambda rec: rec.update(sha256="00" * 32),
    lambda rec: rec.update(size=rec["size"] - 1),
    lambda rec: rec.update(depositor="service:taxation"),
    lambda rec: rec.update(metadata={"case": "B-002"}),
    lambda rec: rec.pop("mac"),  # a record without a MAC is not taken for one written before it
], ids=["sha256", "size", "depositor", "metadata", "no-mac"])
def test_altered_facts_are_refused(vault_server: RunningServer, permits: VaultClient,
                                   change: Callable[[dict], None]) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    permits.deposit(vault, "doc", os.urandom(200_000), metadata={"case": "A-001"})
    _alter(vault_server, vault, "doc", record=change)
    with raw_stub(vault_server) as stub:
        with pytest.raises(grpc.RpcError) as e:
            next(stub.Read(pb.ReadRequest(vault=vault, name="doc")))
        assert e.value.code() == grpc.StatusCode.DATA_LOSS
    with pytest.raises(IntegrityError, match="MAC"):
        permits.stat(vault, "doc")
    rep = permits.check(vault)
    assert len(rep.problems) == 1 and "MAC" in rep.problems[0].what


def test_retention_and_hold_are_not_covered(vault_server: RunningServer, permits: VaultClient) -> None:
    """Retention and legal hold change after the deposit: the record still verifies."""
    vault = new_vault_id()
    permits.create_vault(vault)
    data = os.urandom(50_000)
    permits.deposit(vault, "doc", data)
    permits.set_retention(vault, "doc", 4_000_000_000)
    permits.set_legal_hold(vault, "doc", True)
    s = permits.stat(vault, "doc")
    assert s.retain_until == 4_000_000_000 and s.legal_hold
    assert permits.read_bytes(vault, "doc") == data and permits.check(vault).ok


def test_every_deposit_path_writes_a_record_that_verifies(vault_server: RunningServer,
                                                         permits: VaultClient) -> None:
    vault = new_vault_id()
    permits.create_vault(vault)
    docs = {
        "empty": b"",
        "small": b"a small document",  # DepositSmall
        "streamed": os.urandom(3 << 20),  # Deposit, several messages and chunks
        "staged": os.urandom(20 << 20),  # Deposit, staged in parts before its final unit
    }
    for name, data in docs.items():
        permits.deposit(vault, name, data, content_type="text/plain", metadata={"k": name},
                        request_id=f"req-{name}")
    batch = {f"batch/{i}": os.urandom(1000 + i) for i in range(5)}  # DepositBatch
    results = permits.deposit_many([DepositItem(vault, n, d, metadata={"i": n}) for n, d in batch.items()])
    assert all(isinstance(r, Receipt) for r in results), results
    docs.update(batch)
    permits.deposit(vault, "small", b"its second version")  # a later version of an object
    docs["small"] = b"its second version"

    vaults = vault_server.daemon.vaults
    keys = vaults._vault_keys(vault)
    with vaults.store.read() as r:
        records = [(nm, v, json.loads(raw), r.get_manifest(vault, nm, v) or b"")
                   for nm, _ in r.iter_objects(vault) for v, raw in r.iter_versions(vault, nm)]
    assert len(records) == len(docs) + 1
    for nm, v, rec, manifest in records:
        _check_version_mac(keys, vault, nm, v, rec, manifest)  # raises on a mismatch
        assert "retain_until" in rec and "legal_hold" in rec
    for name, data in docs.items():
        assert permits.stat(vault, name).size == len(data)
        assert permits.read_bytes(vault, name) == data
    rep = permits.check(vault)
    assert rep.ok and rep.objects == len(docs) + 1, rep.problems
