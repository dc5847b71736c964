from __future__ import annotations

import json

import pytest
from core_support import OPERATOR, PERMITS, pieces, random_bytes

from vaultd.core.vaults import Vaults
from vaultd.errors import IntegrityError
from vaultd.types import DepositHeader

V = "citizen-bob"


def _first_chunk(vaults: Vaults) -> bytes:
    with vaults.store.read() as r:
        return next(iter(r.iter_chunks(V)))[0]


def test_check_clean(vaults: Vaults) -> None:
    data = random_bytes(3 << 20, 31)
    vaults.deposit(PERMITS, DepositHeader(V, "a"), pieces(data, 1 << 20))
    vaults.deposit(PERMITS, DepositHeader(V, "b"), [b"small"])
    rep = vaults.check(PERMITS, V)
    assert rep.ok and rep.objects == 2 and rep.bytes == len(data) + 5 and rep.chunks >= 4
    assert vaults.check(PERMITS, V, "b").objects == 1
    assert vaults.check(OPERATOR, V).ok  # whole-store check by an operator


def test_check_finds_a_flipped_bit_and_read_refuses(vaults: Vaults) -> None:
    data = random_bytes(3 << 20, 32)
    vaults.deposit(PERMITS, DepositHeader(V, "a"), pieces(data, 1 << 20))
    cid = _first_chunk(vaults)

    def corrupt(t) -> None:  # type: ignore[no-untyped-def]
        sealed = bytearray(t.get_chunk(V, cid))
        sealed[100] ^= 1
        t.raw.put(V.encode() + b"\0" + cid, bytes(sealed), db=vaults.store._dbs["chunks"])

    vaults.store.write(corrupt)
    rep = vaults.check(PERMITS, V)
    assert not rep.ok and len(rep.problems) == 1
    assert rep.problems[0].name == "a" and "authentication" in rep.problems[0].what
    with pytest.raises(IntegrityError):
        b"".join(vaults.read(PERMITS, V, "a")[1])


def test_check_finds_missing_chunk_and_wrong_digest(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "a"), [b"hello"])
    vaults.deposit(PERMITS, DepositHeader(V, "b"), [b"world"])

    def damage(t) -> None:  # type: ignore[no-untyped-def]
        rec = json.loads(t.get_version(V, "b", 1))
        rec["sha256"] = "00" * 32
        t.put_version(V, "b", 1, json.dumps(rec).encode(), t.get_manifest(V, "b", 1))
        man = t.get_manifest(V, "a", 1)
        t.raw.delete(V.encode() + b"\0" + man[:32], db=vaults.store._dbs["chunks"])

    vaults.store.write(damage)
    rep = vaults.check(PERMITS, V)
    whats = sorted((p.name, p.what) for p in rep.problems)
    assert [n for n, _ in whats] == ["a", "b"]
    assert "missing" in whats[0][1] and "SHA-256" in whats[1][1]
