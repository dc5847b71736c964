"""Identities, policy and helpers shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator

from vaultd.core.vaults import Vaults
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


def stored_chunk_bytes(v: Vaults, vault: str) -> int:
    total = 0
    with v.store.read() as r:
        for cid, _ in r.iter_chunks(vault):
            c = r.get_chunk(vault, cid)
            assert c is not None
            total += len(c)
    return total


