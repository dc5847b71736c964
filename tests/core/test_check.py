from __future__ import annotations

import json

import pytest
from core_support import OPERATOR, PERMITS, pieces, random_bytes
from store_support import put_manifest_sealed

from vaultd.core.vaults import MAX_CHECK_PROBLEMS, Vaults
from vaultd.errors import IntegrityError, InvalidArgument, NotFound
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
    # the recorded SHA-256 is one of the facts the version record's MAC covers
    assert "missing" in whats[0][1] and "does not match its MAC" in whats[1][1]


def _flip_chunk(vaults: Vaults, cid: bytes) -> None:
    def corrupt(t) -> None:  # type: ignore[no-untyped-def]
        sealed = bytearray(t.get_chunk(V, cid))
        sealed[100] ^= 1
        t.raw.put(V.encode() + b"\0" + cid, bytes(sealed), db=vaults.store._dbs["chunks"])

    vaults.store.write(corrupt)


def test_check_of_a_name_covers_every_version(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "a"), [random_bytes(200_000, 41)])
    vaults.deposit(PERMITS, DepositHeader(V, "a"), [random_bytes(200_000, 42)])
    with vaults.store.read() as r:
        older = r.get_manifest(V, "a", 1)[:32]
    _flip_chunk(vaults, older)
    rep = vaults.check(PERMITS, V, "a")
    assert rep.objects == 2
    assert [(p.name, p.version) for p in rep.problems] == [("a", 1)]
    assert vaults.check(PERMITS, V, "a", 2).ok
    assert not vaults.check(PERMITS, V, "a", 1).ok
    with pytest.raises(InvalidArgument, match="name"):
        vaults.check(PERMITS, V, version=1)  # a version needs its name: never the whole vault instead


def test_version_destroyed_during_the_check_is_no_damage(vaults: Vaults) -> None:
    data = random_bytes(3 << 20, 43)
    vaults.deposit(PERMITS, DepositHeader(V, "gone"), pieces(data, 1 << 20))
    vaults.deposit(PERMITS, DepositHeader(V, "kept"), [b"kept"])
    read_chunk = vaults._stored_chunk
    reads = []

    def destroy_after_first_read(vault: str, cid: bytes) -> bytes | None:
        sealed = read_chunk(vault, cid)
        reads.append(cid)
        if len(reads) == 1:  # the check has begun the latest version of "gone": it is destroyed under it
            vaults.destroy(PERMITS, V, "gone")
        return sealed

    vaults._stored_chunk = destroy_after_first_read  # type: ignore[method-assign]
    rep = vaults.check(PERMITS, V)
    assert rep.ok, rep.problems
    assert rep.objects == 1 and rep.bytes == 4
    assert 1 < len(reads) < 5  # it found a chunk of "gone" missing, then moved on

    vaults.deposit(PERMITS, DepositHeader(V, "gone"), pieces(data, 1 << 20))  # version 2
    reads.clear()
    with pytest.raises(NotFound, match="destroyed while it was checked"):
        vaults.check(PERMITS, V, "gone", 2)
    vaults.deposit(PERMITS, DepositHeader(V, "gone"), pieces(data, 1 << 20))  # version 3
    vaults.deposit(PERMITS, DepositHeader(V, "gone"), [b"last"])  # version 4
    reads.clear()
    rep = vaults.check(PERMITS, V, "gone")  # 4 is destroyed once 3 is begun: 3 alone is reported
    assert rep.ok and rep.objects == 1 and rep.bytes == len(data)


def _rewrite_record(vaults: Vaults, name: str, change) -> None:  # type: ignore[no-untyped-def]
    def unit(t) -> None:  # type: ignore[no-untyped-def]
        rec = json.loads(t.get_version(V, name, 1))
        change(rec)
        t.put_version(V, name, 1, json.dumps(rec).encode(), t.get_manifest(V, name, 1))

    vaults.store.write(unit)


def test_damaged_records_are_problems(vaults: Vaults) -> None:
    for name in ("no-size", "bad-digest", "fine"):
        vaults.deposit(PERMITS, DepositHeader(V, name), [name.encode()])
    _rewrite_record(vaults, "no-size", lambda rec: rec.pop("size"))
    _rewrite_record(vaults, "bad-digest", lambda rec: rec.update(sha256="not hex at all"))
    rep = vaults.check(PERMITS, V)
    assert rep.objects == 3 and rep.bytes == len("no-size") + len("bad-digest") + len("fine")
    whats = sorted((p.name, p.what) for p in rep.problems)
    assert [n for n, _ in whats] == ["bad-digest", "no-size"]
    assert all(w.startswith("record damaged") for _, w in whats)
    assert "SHA-256" in whats[0][1] and "size" in whats[1][1]
    one = vaults.check(PERMITS, V, "no-size", 1)
    assert len(one.problems) == 1 and one.problems[0].what.startswith("record damaged")


def test_a_record_nested_past_the_parser_is_damage(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "deep"), [b"x"])
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError, not ValueError
    vaults.store.write(lambda t: t.put_version(V, "deep", 1, deep, t.get_manifest(V, "deep", 1)))
    with pytest.raises(IntegrityError, match="damaged"):
        vaults.stat(PERMITS, V, "deep")
    rep = vaults.check(PERMITS, V, "deep", 1)
    assert [p.what for p in rep.problems] == ["record damaged: it is not a JSON object"]


def test_problems_listed_are_bounded(vaults: Vaults) -> None:
    vaults.deposit(PERMITS, DepositHeader(V, "a"), [b"one"])
    vaults.deposit(PERMITS, DepositHeader(V, "b"), [b"two"])

    def many_missing(t) -> None:  # type: ignore[no-untyped-def]
        for name, n in (("a", 700), ("b", 800)):
            manifest = b"".join(bytes([i >> 8, i & 255]) + b"\x07" * 30 + b"\0\0\0\1" for i in range(n))
            put_manifest_sealed(vaults, t, V, name, 1, manifest)

    vaults.store.write(many_missing)
    rep = vaults.check(PERMITS, V)
    assert len(rep.problems) == MAX_CHECK_PROBLEMS and rep.problems_omitted == 500
    assert all("missing" in p.what for p in rep.problems) and not rep.ok
    rep = vaults.check(PERMITS, V, "b")
    assert len(rep.problems) == 800 and rep.problems_omitted == 0
