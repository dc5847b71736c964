from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vaultd.core.policy import Policy
from vaultd.core.vaults import Vaults, open_vaults
from vaultd.keys import FileKeyProvider
from vaultd.types import Identity

ALL = ["create", "deposit", "read", "stat", "list", "count", "check", "destroy", "retention", "hold", "journal"]

POLICY = {
    "rule": [
        {"identity": "service:permits", "vaults": ["citizen-*", "permits"], "verbs": ALL},
        {"identity": "service:taxation", "vaults": ["taxation"], "verbs": ALL},
        {"identity": "citizen:*", "vaults": ["{self}"], "verbs": ["read", "stat", "list", "count", "check"]},
        {"identity": "operator:*", "verbs": ["admin"]},
    ]
}

PERMITS = Identity("service", "permits")
TAX = Identity("service", "taxation")
OPERATOR = Identity("operator", "alice")


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def random_bytes(n: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


@pytest.fixture
def policy() -> Policy:
    return Policy.from_dict(POLICY)


@pytest.fixture
def vaults(tmp_path: Path, policy: Policy) -> Iterator[Vaults]:
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 30)
    v.create_vault(PERMITS, "citizen-bob")
    yield v
    v.close()


def stored_chunk_bytes(v: Vaults, vault: str) -> int:
    total = 0
    with v.store.read() as r:
        for cid, _ in r.iter_chunks(vault):
            c = r.get_chunk(vault, cid)
            assert c is not None
            total += len(c)
    return total


__all__ = ["PERMITS", "TAX", "OPERATOR", "pieces", "random_bytes", "stored_chunk_bytes", "os"]
