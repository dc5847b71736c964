from __future__ import annotations

from pathlib import Path

import pytest
from core_support import PERMITS, pieces, random_bytes

from vaultd.core.policy import Policy
from vaultd.core.vaults import open_vaults
from vaultd.errors import ResourceExhausted
from vaultd.keys import FileKeyProvider
from vaultd.types import DepositHeader

V = "citizen-bob"


def test_full_map_refuses_deposits_reads_keep_working(tmp_path: Path, policy: Policy) -> None:
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=4 << 20)
    try:
        v.create_vault(PERMITS, V)
        small = random_bytes(200_000, 51)
        v.deposit(PERMITS, DepositHeader(V, "small"), [small])
        with pytest.raises(ResourceExhausted, match="map is full"):
            v.deposit(PERMITS, DepositHeader(V, "big"), pieces(random_bytes(12 << 20, 52), 1 << 20))
        assert b"".join(v.read(PERMITS, V, "small")[1]) == small
        assert v.count(PERMITS, V) == 1
        with v.store.read() as r:
            assert list(r.iter_pending()) == []
        assert v.check(PERMITS, V).ok
    finally:
        v.close()


def test_growing_map_accepts_the_deposit(tmp_path: Path, policy: Policy) -> None:
    v = open_vaults(
        tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=4 << 20, max_map_size=64 << 20
    )
    try:
        v.create_vault(PERMITS, V)
        data = random_bytes(12 << 20, 53)
        v.deposit(PERMITS, DepositHeader(V, "big"), pieces(data, 1 << 20))
        assert b"".join(v.read(PERMITS, V, "big")[1]) == data
        assert v.store.stats().map_size > 4 << 20
    finally:
        v.close()
