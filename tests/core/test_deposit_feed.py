"""The deposit buffer: one copy of each byte, whatever the pieces' types, sizes and reuse."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from core_support import PERMITS, random_bytes

from vaultd.core.vaults import Vaults
from vaultd.types import DepositHeader

V = "citizen-bob"


def reused_buffer(data: bytes, n: int) -> Iterator[bytearray]:
    """Pieces in one bytearray that the caller overwrites for every piece (as readinto does)."""
    buf = bytearray(n)
    for i in range(0, len(data), n):
        part = data[i : i + n]
        buf[: len(part)] = part
        yield buf if len(part) == n else buf[: len(part)]


def test_reused_mutable_pieces_are_copied_before_the_next_one(vaults: Vaults) -> None:
    for size in (100_000, 5 << 20):  # within one piece; over several buffers
        data = random_bytes(size, seed=size)
        r = vaults.deposit(PERMITS, DepositHeader(V, f"r{size}"), reused_buffer(data, 300_001))
        assert r.stat.sha256 == hashlib.sha256(data).digest()
        assert b"".join(vaults.read(PERMITS, V, f"r{size}")[1]) == data


def test_one_piece_and_many_pieces_store_the_same_chunks(vaults: Vaults) -> None:
    data = random_bytes(900_000, seed=7)
    r1 = vaults.deposit(PERMITS, DepositHeader(V, "one"), [data])
    r2 = vaults.deposit(PERMITS, DepositHeader(V, "many"), [data[i : i + 4096] for i in range(0, len(data), 4096)])
    assert r1.stored_bytes > len(data) and r2.stored_bytes == 0 and r2.deduplicated_bytes == len(data)
    assert b"".join(vaults.read(PERMITS, V, "many")[1]) == data
