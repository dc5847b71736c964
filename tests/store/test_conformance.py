"""The store conformance suite: every Store implementation must pass these tests.

Run against each implementation listed in ``IMPLEMENTATIONS`` (today: LMDB in a temporary folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vaultd.store import LmdbStore, open_store
from vaultd.store.interface import Store


def _lmdb(tmp: Path) -> LmdbStore:
    return open_store(tmp / "lmdb", map_size=64 << 20)


IMPLEMENTATIONS: dict[str, Callable[[Path], Store]] = {"lmdb": _lmdb}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = IMPLEMENTATIONS[request.param](tmp_path)
    yield s
    s.close()


CID = [bytes([i]) * 32 for i in range(8)]


def test_vault_records(store: Store) -> None:
    with store.read() as r:
        assert r.get_vault("a") is None
    store.write(lambda t: (t.put_vault("b", b"B"), t.put_vault("a", b"A")))
    with store.read() as r:
        assert r.get_vault("a") == b"A"
        assert list(r.iter_vaults()) == [("a", b"A"), ("b", b"B")]
        assert list(r.iter_vaults(after="a")) == [("b", b"B")]
        assert list(r.iter_vaults(after="aa")) == [("b", b"B")]  # not a vault: the next one
        assert list(r.iter_vaults(after="")) == [("a", b"A"), ("b", b"B")]
        assert list(r.iter_vaults(after="b")) == []
    assert store.write(lambda t: t.delete_vault("a")).value is True
    assert store.write(lambda t: t.delete_vault("a")).value is False
    with store.read() as r:
        assert [v for v, _ in r.iter_vaults()] == ["b"]


def test_objects_prefix_order_and_after(store: Store) -> None:
    names = ["b/2", "a", "b/1", "b", "c", "b/10"]

    def unit(t) -> None:  # type: ignore[no-untyped-def]
        for n in names:
            t.put_object("v", n, n.encode())
        t.put_object("w", "b/9", b"other vault")

    store.write(unit)
    with store.read() as r:
        assert [n for n, _ in r.iter_objects("v")] == sorted(names)
        assert [n for n, _ in r.iter_objects("v", "b/")] == ["b/1", "b/10", "b/2"]
        assert [n for n, _ in r.iter_objects("v", "b/", after="b/1")] == ["b/10", "b/2"]
        assert [n for n, _ in r.iter_objects("v", "", after="b/2")] == ["c"]
        assert r.get_object("v", "b/1") == b"b/1"
        assert r.get_object("w", "b/1") is None
        assert list(r.iter_objects("w")) == [("b/9", b"other vault")]


def test_long_names_are_distinct_and_listed(store: Store) -> None:
    base = "x" * 500
    n1, n2 = base + "1", base + "2"
    store.write(lambda t: (t.put_object("v", n1, b"1"), t.put_object("v", n2, b"2")))
    with store.read() as r:
        assert r.get_object("v", n1) == b"1" and r.get_object("v", n2) == b"2"
        assert sorted(n for n, _ in r.iter_objects("v", base)) == [n1, n2]
        assert [n for n, _ in r.iter_objects("v", base + "2")] == [n2]


def test_versions_and_manifests(store: Store) -> None:
    def unit(t) -> None:  # type: ignore[no-untyped-def]
        for v in (1, 2, 300):
            t.put_version("v", "doc", v, b"rec%d" % v, b"man%d" % v)
        t.put_version("v", "doc2", 1, b"other", b"m")

    store.write(unit)
    with store.read() as r:
        assert [v for v, _ in r.iter_versions("v", "doc")] == [1, 2, 300]
        assert [v for v, _ in r.iter_versions("v", "doc", reverse=True)] == [300, 2, 1]
        assert [v for v, _ in r.iter_versions("v", "doc2", reverse=True)] == [1]
        assert r.get_version("v", "doc", 2) == b"rec2"
        assert r.get_manifest("v", "doc", 300) == b"man300"
    assert store.write(lambda t: t.delete_version("v", "doc", 2)).value is True
    with store.read() as r:
        assert r.get_version("v", "doc", 2) is None and r.get_manifest("v", "doc", 2) is None
        assert [v for v, _ in r.iter_versions("v", "doc")] == [1, 300]


def test_chunk_references(store: Store) -> None:
    assert store.write(lambda t: t.add_chunk_ref("v", CID[0], b"sealed0")).value == 1
    assert store.write(lambda t: t.add_chunk_ref("v", CID[0], None)).value == 2
    assert store.write(lambda t: t.add_chunk_ref("v", CID[0], b"ignored")).value == 3
    with store.read() as r:
        assert r.get_chunk("v", CID[0]) == b"sealed0"
        assert r.chunk_refs("v", CID[0]) == 3
        assert r.chunk_refs("w", CID[0]) == 0  # vaults share nothing
    with pytest.raises(KeyError):
        store.write(lambda t: t.add_chunk_ref("v", CID[1], None))
    for expect in (2, 1, 0):
        assert store.write(lambda t: t.drop_chunk_ref("v", CID[0])).value == expect
    with store.read() as r:
        assert r.get_chunk("v", CID[0]) is None and r.chunk_refs("v", CID[0]) == 0
    with pytest.raises(KeyError):
        store.write(lambda t: t.drop_chunk_ref("v", CID[0]))


def test_iter_chunks_per_vault(store: Store) -> None:
    def unit(t) -> None:  # type: ignore[no-untyped-def]
        for c in CID[:3]:
            t.add_chunk_ref("v", c, b"x")
        t.add_chunk_ref("v", CID[1], None)
        t.add_chunk_ref("vv", CID[4], b"y")

    store.write(unit)
    with store.read() as r:
        assert list(r.iter_chunks("v")) == [(CID[0], 1), (CID[1], 2), (CID[2], 1)]
        assert list(r.iter_chunks("vv")) == [(CID[4], 1)]


def test_requests(store: Store) -> None:
    store.write(lambda t: t.put_request("v", "service:a", "r1", b"first"))
    with store.read() as r:
        assert r.get_request("v", "service:a", "r1") == b"first"
        assert r.get_request("v", "service:b", "r1") is None
        assert r.get_request("w", "service:a", "r1") is None
    assert store.write(lambda t: t.delete_requests("v")).value == 1
    with store.read() as r:
        assert r.get_request("v", "service:a", "r1") is None


def test_pending(store: Store) -> None:
    store.write(lambda t: (t.put_pending(b"k1", b"a"), t.put_pending(b"k2", b"b")))
    with store.read() as r:
        assert list(r.iter_pending()) == [(b"k1", b"a"), (b"k2", b"b")]
    assert store.write(lambda t: t.delete_pending(b"k1")).value is True
    with store.read() as r:
        assert list(r.iter_pending()) == [(b"k2", b"b")]


def test_purging_marks(store: Store) -> None:
    with store.read() as r:
        assert not r.is_purging("v") and list(r.iter_purging()) == []
    store.write(lambda t: (t.put_purging("w"), t.put_purging("v")))
    with store.read() as r:
        assert r.is_purging("v") and not r.is_purging("x")
        assert list(r.iter_purging()) == ["v", "w"]
    assert store.write(lambda t: t.delete_purging("v")).value is True
    assert store.write(lambda t: t.delete_purging("v")).value is False
    with store.read() as r:
        assert list(r.iter_purging()) == ["w"]


def test_purge_vault(store: Store) -> None:
    def unit(t) -> None:  # type: ignore[no-untyped-def]
        for i in range(5):
            t.put_object("v", f"n{i}", b"h")
            t.put_version("v", f"n{i}", 1, b"r", b"m")
            t.add_chunk_ref("v", CID[i], b"s")
        t.put_object("v2", "keep", b"h")

    store.write(unit)
    total = 0
    while (n := store.write(lambda t: t.purge_vault("v", 7)).value) > 0:
        assert n <= 7
        total += n
    assert total == 25
    with store.read() as r:
        assert list(r.iter_objects("v")) == [] and list(r.iter_chunks("v")) == []
        assert r.get_object("v2", "keep") == b"h"


def test_failing_unit_leaves_nothing(store: Store) -> None:
    def bad(t) -> None:  # type: ignore[no-untyped-def]
        t.put_vault("x", b"1")
        t.add_chunk_ref("x", CID[0], b"s")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write(bad)
    with store.read() as r:
        assert r.get_vault("x") is None and r.chunk_refs("x", CID[0]) == 0


def test_chunk_bytes_survive_transaction(store: Store) -> None:
    payload = os.urandom(300_000)
    store.write(lambda t: t.add_chunk_ref("v", CID[0], payload))
    with store.read() as r:
        got = r.get_chunk("v", CID[0])
    assert got == payload  # a copy, valid after the read transaction ended


def test_stats_and_close(store: Store) -> None:
    store.write(lambda t: t.put_vault("a", b"x"))
    s = store.stats()
    assert s.units >= 1 and s.batches >= 1 and 0 < s.used_bytes <= s.map_size
    assert store.is_open()
