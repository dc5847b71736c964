from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_support import OPERATOR, PERMITS, random_bytes

import vaultd.core.vaults as vaults_module
from vaultd.core.policy import Policy
from vaultd.core.vaults import Vaults, open_vaults
from vaultd.errors import Aborted, FailedPrecondition, NotFound, PermissionDenied
from vaultd.keys import FileKeyProvider, WrappedVaultKeys, unwrap_vault_keys
from vaultd.types import DepositHeader, Receipt

V = "citizen-bob"


def test_rotation_rewraps_without_reencrypting(vaults: Vaults) -> None:
    data = random_bytes(2 << 20, 41)
    vaults.deposit(PERMITS, DepositHeader(V, "d"), [data[: 1 << 20], data[1 << 20 :]])
    with vaults.store.read() as r:
        chunks_before = {c: r.get_chunk(V, c) for c, _ in r.iter_chunks(V)}
        wrapped_before = r.get_vault(V)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                assert b"".join(vaults.read(PERMITS, V, "d")[1]) == data
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
                return

    th = threading.Thread(target=reader)
    th.start()
    assert vaults.rotate_keys(OPERATOR) == 2
    stop.set()
    th.join()
    assert not errors
    with vaults.store.read() as r:
        assert {c: r.get_chunk(V, c) for c, _ in r.iter_chunks(V)} == chunks_before  # no re-encryption
        assert r.get_vault(V) != wrapped_before
    vaults._cache.clear()  # force unwrapping under the new KEK
    assert b"".join(vaults.read(PERMITS, V, "d")[1]) == data
    with pytest.raises(PermissionDenied):
        vaults.rotate_keys(PERMITS)


def test_rotation_survives_restart(tmp_path: Path, policy: Policy) -> None:
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 26)
    v.create_vault(PERMITS, V)
    v.deposit(PERMITS, DepositHeader(V, "d"), [b"persistent"])
    v.rotate_keys(OPERATOR)
    v.close()
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 26)
    try:
        assert v.ready()
        assert b"".join(v.read(PERMITS, V, "d")[1]) == b"persistent"
    finally:
        v.close()


def test_retire_after_rotation(tmp_path: Path, policy: Policy) -> None:
    """After a rotation re-wrapped every vault key, the old master key version is retired: a vault
    record saved before the rotation (as in an older backup) no longer unwraps, the vaults read on
    and the store opens again."""
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 26)
    v.create_vault(PERMITS, V)
    v.deposit(PERMITS, DepositHeader(V, "d"), [b"kept across retirement"])
    with v.store.read() as r:
        before = json.loads(r.get_vault(V))
    with pytest.raises(FailedPrecondition, match="current"):
        v.retire_key(OPERATOR, 1)
    assert v.rotate_keys(OPERATOR) == 2
    with pytest.raises(PermissionDenied):
        v.retire_key(PERMITS, 1)
    with pytest.raises(NotFound):
        v.retire_key(OPERATOR, 5)
    v.retire_key(OPERATOR, 1)
    assert v.keys.versions() == [2]
    with pytest.raises(NotFound):
        v.retire_key(OPERATOR, 1)
    old = WrappedVaultKeys(1, base64.b64decode(before["data_key"]), base64.b64decode(before["dedup_key"]),
                           before["data_key_version"])
    with pytest.raises(FailedPrecondition, match="version 1 is not in keyring"):
        unwrap_vault_keys(v.keys, V, old)
    v._cache.clear()
    assert b"".join(v.read(PERMITS, V, "d")[1]) == b"kept across retirement"
    v.create_vault(PERMITS, "citizen-new")
    v.close()
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 26)
    try:
        assert v.ready() and v.keys.versions() == [2]
        assert b"".join(v.read(PERMITS, V, "d")[1]) == b"kept across retirement"
        assert v.storage_counters()["kek_versions_in_use"] == 1
    finally:
        v.close()


def test_retire_refused_while_a_vault_key_uses_the_version(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "d"), [b"still under version 1"])
    vaults.keys.rotate()  # a new version, nothing re-wrapped yet (a rotation cut short)
    with pytest.raises(FailedPrecondition, match="still wraps the keys of 1 vault"):
        vaults.retire_key(OPERATOR, 1)
    # the record is checked as well as the counter: a counter gone wrong does not retire a used key
    vaults.store.write(lambda t: t.add_stat("kek/1", -1))
    with pytest.raises(FailedPrecondition, match="citizen-bob"):
        vaults.retire_key(OPERATOR, 1)
    assert vaults.keys.versions() == [1, 2]
    vaults._cache.clear()
    assert b"".join(vaults.read(PERMITS, V, "d")[1]) == b"still under version 1"


def test_a_vault_wrapped_under_a_version_retired_meanwhile_is_not_created(
    vaults: Vaults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vault keys are wrapped before the creating transaction; a retirement in between aborts it."""
    real = vaults_module.wrap_vault_keys

    def wrap_then_retire(*args: Any, **kwargs: Any) -> Any:
        w = real(*args, **kwargs)
        monkeypatch.setattr(vaults_module, "wrap_vault_keys", real)  # the rotation below wraps too
        vaults.rotate_keys(OPERATOR)
        vaults.retire_key(OPERATOR, w.kek_version)
        return w

    monkeypatch.setattr(vaults_module, "wrap_vault_keys", wrap_then_retire)
    with pytest.raises(Aborted, match="retired meanwhile"):
        vaults.create_vault(PERMITS, "citizen-late")
    with vaults.store.read() as r:
        assert r.get_vault("citizen-late") is None


def test_destroy_vault_shreds_keys_and_content(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "d"), [random_bytes(300_000, 42)])
    with pytest.raises(PermissionDenied):
        vaults.destroy_vault(PERMITS, V)
    vaults.destroy_vault(OPERATOR, V)
    with vaults.store.read() as r:
        assert r.get_vault(V) is None
        assert list(r.iter_chunks(V)) == [] and list(r.iter_objects(V)) == []
    with pytest.raises(NotFound):
        vaults.read(PERMITS, V, "d")
    with pytest.raises(NotFound):
        vaults.destroy_vault(OPERATOR, V)


def test_crash_mid_deposit_is_rolled_back_on_open(tmp_path: Path, policy: Policy) -> None:
    """A staged part left pending (as a crash would leave it) is rolled back when the store opens."""
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 28)
    v.create_vault(PERMITS, V)
    from vaultd.core.vaults import _Deposit

    d = _Deposit(v, V, *v._vault_keys_of(V))
    data = random_bytes(40 << 20, 43)
    for i in range(0, len(data), 1 << 20):
        d.feed(data[i : i + (1 << 20)])
    for _, f in d.staged:
        f.result()
    with v.store.read() as r:
        assert list(r.iter_pending()) and list(r.iter_chunks(V))
    v.close()  # the deposit never committed nor rolled back
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 28)
    try:
        with v.store.read() as r:
            assert list(r.iter_pending()) == [] and list(r.iter_chunks(V)) == []
    finally:
        v.close()


def _fill(v: Vaults, n: int) -> None:
    for i in range(n):
        v.deposit(PERMITS, DepositHeader(V, f"old-{i}"), [random_bytes(20_000, 100 + i)])


def _leftovers(v: Vaults) -> list[object]:
    with v.store.read() as r:
        return [*r.iter_objects(V), *r.iter_chunks(V), *(p for p in r.iter_purging() if p == V)]


def test_vault_created_again_during_its_purge_is_refused(
    vaults: Vaults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the records of a destroyed vault are being removed (several units), its id cannot be
    created again: the removal would take the new vault's deposits with it. Once it is done, the id
    is free and the new vault keeps what is deposited."""
    monkeypatch.setattr(vaults_module, "PURGE_BATCH", 5)
    _fill(vaults, 6)
    write = vaults.store.write
    calls: list[object] = []
    refused: list[str] = []

    def hooked(unit, size_hint=0):  # type: ignore[no-untyped-def]
        calls.append(unit)
        if len(calls) == 3:  # the shred and one purge unit are done, more to come
            assert _leftovers(vaults)
            with pytest.raises(FailedPrecondition, match="still being erased; retry shortly") as e:
                vaults.create_vault(PERMITS, V)
            refused.append(str(e.value))
            with pytest.raises(NotFound):
                vaults.deposit(PERMITS, DepositHeader(V, "new"), [b"acknowledged"])
        return write(unit, size_hint)

    monkeypatch.setattr(vaults.store, "write", hooked)
    vaults.destroy_vault(OPERATOR, V)
    monkeypatch.setattr(vaults.store, "write", write)
    assert refused and len(calls) > 3
    assert _leftovers(vaults) == []
    vaults.create_vault(PERMITS, V)
    r = vaults.deposit(PERMITS, DepositHeader(V, "new"), [b"acknowledged"])
    assert r.stat.version == 1
    assert b"".join(vaults.read(PERMITS, V, "new")[1]) == b"acknowledged"


def test_purge_interrupted_by_a_crash_is_finished_at_open(tmp_path: Path, policy: Policy) -> None:
    """A crash after the keys were shredded but before the records were removed: the next open
    finishes the removal, and the vault id created again starts empty."""
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 28)
    v.create_vault(PERMITS, V)
    _fill(v, 3)
    v.store.write(v._shred_unit(OPERATOR, V))  # the shred commits; the process dies before the purge
    assert _leftovers(v)
    with pytest.raises(FailedPrecondition, match="still being erased"):
        v.create_vault(PERMITS, V)
    v.close()
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 28)
    try:
        assert _leftovers(v) == []
        v.create_vault(PERMITS, V)
        assert v.list(PERMITS, V)[0] == [] and v.count(PERMITS, V) == 0
        with pytest.raises(NotFound):
            v.stat(PERMITS, V, "old-0")
        r = v.deposit(PERMITS, DepositHeader(V, "old-0"), [b"new content"])
        assert r.stat.version == 1
        assert b"".join(v.read(PERMITS, V, "old-0")[1]) == b"new content"
    finally:
        v.close()


def _empty(v: Vaults) -> None:
    with v.store.read() as r:
        assert list(r.iter_objects(V)) == [] and list(r.iter_chunks(V)) == []
        assert list(r.iter_pending()) == []
    assert v.count(PERMITS, V) == 0


def test_deposit_into_a_vault_created_again_meanwhile_is_aborted(vaults: Vaults) -> None:
    """A deposit sealed under the keys of a vault that is destroyed and created again before its
    final unit commits is refused (ABORTED), not acknowledged into the new vault unreadable."""
    d = vaults._prepare_deposit(PERMITS, DepositHeader(V, "late"), [random_bytes(100_000, 3)])
    assert not isinstance(d, Receipt)
    vaults.destroy_vault(OPERATOR, V)
    vaults.create_vault(PERMITS, V)
    d.submit()
    with pytest.raises(Aborted, match="destroyed and created again during the deposit; deposit again"):
        d.finish()
    _empty(vaults)
    with pytest.raises(NotFound):
        vaults.stat(PERMITS, V, "late")
    data = random_bytes(100_000, 3)  # deposited again: under the new vault's keys, readable
    vaults.deposit(PERMITS, DepositHeader(V, "late"), [data])
    assert b"".join(vaults.read(PERMITS, V, "late")[1]) == data


def test_staged_parts_into_a_vault_created_again_meanwhile_are_aborted(vaults: Vaults) -> None:
    """A large deposit whose vault is destroyed and created again while its parts are staged: the
    next part is refused (ABORTED) and nothing of it is left in the new vault."""
    data = random_bytes(30 << 20, 44)

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(data), 1 << 20):
            if i == 12 << 20:  # one part staged in the old vault
                vaults.destroy_vault(OPERATOR, V)
                vaults.create_vault(PERMITS, V)
            yield data[i : i + (1 << 20)]

    with pytest.raises(Aborted, match="destroyed and created again during the deposit"):
        vaults.deposit(PERMITS, DepositHeader(V, "large"), pieces())
    _empty(vaults)
