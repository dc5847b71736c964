from __future__ import annotations

import json
import time

import pytest
from core_support import OPERATOR, PERMITS, random_bytes, stored_chunk_bytes

from vaultd.core.vaults import Vaults
from vaultd.errors import FailedPrecondition, IntegrityError, NotFound
from vaultd.types import DepositHeader

V = "citizen-bob"


def test_destroy_removes_last_reference_only(vaults: Vaults) -> None:
    data = random_bytes(2 << 20, 21)
    vaults.deposit(PERMITS, DepositHeader(V, "a"), [data[: 1 << 20], data[1 << 20 :]])
    vaults.deposit(PERMITS, DepositHeader(V, "b"), [data[: 1 << 20], data[1 << 20 :]])
    full = stored_chunk_bytes(vaults, V)
    rc = vaults.destroy(PERMITS, V, "a")
    assert rc.version == 1 and rc.actor == "service:permits"
    assert stored_chunk_bytes(vaults, V) == full  # still referenced by b
    assert b"".join(vaults.read(PERMITS, V, "b")[1]) == data
    vaults.destroy(PERMITS, V, "b")
    assert stored_chunk_bytes(vaults, V) == 0
    with pytest.raises(NotFound):
        vaults.stat(PERMITS, V, "a")


def test_destroy_latest_falls_back_and_versions_continue(vaults: Vaults) -> None:
    for i in range(3):
        vaults.deposit(PERMITS, DepositHeader(V, "n"), [b"v%d" % i])
    vaults.destroy(PERMITS, V, "n")  # latest (3)
    assert vaults.stat(PERMITS, V, "n").version == 2
    vaults.destroy(PERMITS, V, "n", version=1)
    assert vaults.stat(PERMITS, V, "n").version == 2
    vaults.destroy(PERMITS, V, "n")
    assert vaults.count(PERMITS, V) == 0
    r = vaults.deposit(PERMITS, DepositHeader(V, "n"), [b"again"])
    assert r.stat.version == 4  # version numbers are never reused


def test_retention_blocks_destroy(vaults: Vaults) -> None:
    future = int(time.time()) + 3600
    vaults.deposit(PERMITS, DepositHeader(V, "kept", retain_until=future), [b"x"])
    with pytest.raises(FailedPrecondition, match="retained until"):
        vaults.destroy(PERMITS, V, "kept")
    with pytest.raises(FailedPrecondition, match="extended"):
        vaults.set_retention(PERMITS, V, "kept", future - 10)
    st = vaults.set_retention(PERMITS, V, "kept", future + 10)
    assert st.retain_until == future + 10
    vaults.deposit(PERMITS, DepositHeader(V, "past", retain_until=int(time.time()) - 1), [b"x"])
    vaults.destroy(PERMITS, V, "past")


def test_legal_hold_blocks_destroy(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "h"), [b"x"])
    assert vaults.set_legal_hold(PERMITS, V, "h", True).legal_hold is True
    with pytest.raises(FailedPrecondition, match="legal hold"):
        vaults.destroy(PERMITS, V, "h")
    assert vaults.stat(PERMITS, V, "h").legal_hold is True
    vaults.set_legal_hold(PERMITS, V, "h", False)
    vaults.destroy(PERMITS, V, "h")


def test_a_damaged_retention_date_blocks_destruction(vaults: Vaults) -> None:
    """A retention date that is not an integer is damage, not a date that has passed: neither the
    version nor its vault is destroyed (DATA_LOSS naming the version)."""
    vaults.create_vault(PERMITS, "citizen-carol")
    vaults.deposit(PERMITS, DepositHeader("citizen-carol", "kept"), [b"x"])

    def damage(t) -> None:  # type: ignore[no-untyped-def]
        rec = json.loads(t.get_version("citizen-carol", "kept", 1))
        rec["retain_until"] = "2999-01-01"
        t.put_version("citizen-carol", "kept", 1, json.dumps(rec).encode(), t.get_manifest("citizen-carol", "kept", 1))

    vaults.store.write(damage)
    with pytest.raises(IntegrityError, match="'kept' version 1: its stored retention date is damaged"):
        vaults.destroy(PERMITS, "citizen-carol", "kept")
    with pytest.raises(IntegrityError, match="retention date is damaged"):
        vaults.destroy_vault(OPERATOR, "citizen-carol")
    assert vaults.count(PERMITS, "citizen-carol") == 1
