"""Damage on disk under the real daemon: bits flipped in a chunk's sealed bytes, in a manifest, in a
version record, in a journal node (written offline into LMDB with the daemon stopped) and in the
LMDB file itself. Reads fail with DATA_LOSS naming the object, Check reports exactly the damaged
versions, and no byte that fails its check is handed out (what a read yields before failing is a
prefix of the original document). The core-level cases (tests/core/test_check.py) and the journal's
own tamper tests (tests/journal/test_tamper.py) are not repeated here.
"""

from __future__ import annotations

import json
import os
import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest

from daemon_proc import DaemonProcess  # type: ignore[import-not-found]
from vaultd.client import VaultClient
from vaultd.errors import IntegrityError, VaultError
from vaultd.journal.tree import DB_TREE, record_slots

VAULT = "citizen-damage"
_ENTRY = struct.Struct(">32sI")


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A stopped daemon's data folder holding a few objects of several chunks each (all distinct)."""
    data = tmp_path_factory.mktemp("damage") / "data"
    docs = {f"doc{i}": random.Random(i).randbytes(300_000 + 1000 * i) for i in range(6)}
    d = DaemonProcess(data).start()
    try:
        with d.client("permits") as c:
            c.create_vault(VAULT)
            for name, doc in docs.items():
                c.deposit(VAULT, name, doc)
    finally:
        d.stop()
    return data, docs


def _copy(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path) -> Path:
    import shutil

    src, _ = stocked
    dst = tmp_path / "data"
    shutil.copytree(src, dst)
    return dst


def _edit(data: Path, fn: Callable[[lmdb.Environment, lmdb.Transaction], None]) -> None:
    env = lmdb.open(str(data / "store"), max_dbs=64, subdir=True)
    try:
        with env.begin(write=True) as txn:
            fn(env, txn)
    finally:
        env.close()


def _version_key(name: str, version: int = 1) -> bytes:
    return VAULT.encode() + b"\x00" + name.encode() + b"\x00" + struct.pack(">Q", version)


def _flip(value: bytes, rng: random.Random, lo: int = 0) -> bytes:
    b = bytearray(value)
    i = rng.randrange(lo, len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _manifest(data: Path, name: str) -> list[tuple[bytes, int]]:
    env = lmdb.open(str(data / "store"), max_dbs=64, subdir=True, readonly=True)
    try:
        with env.begin() as txn:
            raw = txn.get(_version_key(name), db=env.open_db(b"manifests", txn=txn, create=False))
    finally:
        env.close()
    return list(_ENTRY.iter_unpack(raw))


def _read_guarded(c: VaultClient, name: str, original: bytes) -> bytes | VaultError:
    """Read ``name``; whatever arrives before an error must be a prefix of the original."""
    got = bytearray()
    try:
        _, pieces = c.read(VAULT, name)
        for p in pieces:
            got += p
    except VaultError as e:
        assert original.startswith(bytes(got)), f"{name}: damaged bytes were handed out before the error"
        return e
    return bytes(got)


def _serve(data: Path) -> Iterator[VaultClient]:
    d = DaemonProcess(data).start()
    try:
        with d.client("permits", timeout=30) as c:
            yield c
    finally:
        d.kill()


def _expect_damage(data: Path, docs: dict[str, bytes], damaged: str, what: str) -> None:
    for c in _serve(data):
        for name, doc in docs.items():
            res = _read_guarded(c, name, doc)
            if name == damaged:
                assert isinstance(res, IntegrityError), f"{name}: {res!r}"
                assert name in str(res), f"the error does not name the object: {res}"
            else:
                assert res == doc
        report = c.check(VAULT)
        assert {(p.name, p.version) for p in report.problems} == {(damaged, 1)}, report.problems
        assert all(what in p.what for p in report.problems), report.problems
        report = c.check(VAULT, damaged)
        assert not report.ok
        # a range read that avoids the damaged chunk still works
        for name in docs:
            if name != damaged:
                assert c.read_bytes(VAULT, name, offset=1000, length=5000) == docs[name][1000:6000]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flipped_bit_in_a_sealed_chunk(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path, seed: int) -> None:
    data = _copy(stocked, tmp_path)
    _, docs = stocked
    rng = random.Random(seed)
    name = rng.choice(sorted(docs))
    cid, _ = rng.choice(_manifest(data, name))

    def flip(env: lmdb.Environment, txn: lmdb.Transaction) -> None:
        db = env.open_db(b"chunks", txn=txn)
        k = VAULT.encode() + b"\x00" + cid
        txn.put(k, _flip(txn.get(k, db=db), rng), db=db)

    _edit(data, flip)
    _expect_damage(data, docs, name, "chunk")


def test_flipped_bit_in_a_manifest(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    data = _copy(stocked, tmp_path)
    _, docs = stocked
    rng = random.Random(7)

    def flip(env: lmdb.Environment, txn: lmdb.Transaction) -> None:
        db = env.open_db(b"manifests", txn=txn)
        k = _version_key("doc2")
        raw = txn.get(k, db=db)
        b = bytearray(raw)
        b[len(b) - 36 + rng.randrange(32)] ^= 0x10  # in the last entry's chunk id
        txn.put(k, bytes(b), db=db)

    _edit(data, flip)
    _expect_damage(data, docs, "doc2", "does not match its MAC")  # the manifest is under the record's MAC


def test_truncated_manifest(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    data = _copy(stocked, tmp_path)
    _, docs = stocked

    def cut(env: lmdb.Environment, txn: lmdb.Transaction) -> None:
        db = env.open_db(b"manifests", txn=txn)
        k = _version_key("doc4")
        txn.put(k, txn.get(k, db=db)[:-5], db=db)

    _edit(data, cut)
    _expect_damage(data, docs, "doc4", "does not match its MAC")


def test_garbled_version_record(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    data = _copy(stocked, tmp_path)
    _, docs = stocked

    def garble(env: lmdb.Environment, txn: lmdb.Transaction) -> None:
        db = env.open_db(b"versions", txn=txn)
        k = _version_key("doc1")
        raw = txn.get(k, db=db)
        txn.put(k, raw[:10] + b"\xff" + raw[11:], db=db)

    _edit(data, garble)
    for c in _serve(data):
        with pytest.raises(IntegrityError, match="doc1"):
            c.read_bytes(VAULT, "doc1")
        with pytest.raises(IntegrityError, match="doc1"):
            c.stat(VAULT, "doc1")
        assert c.read_bytes(VAULT, "doc0") == docs["doc0"]
        report = c.check(VAULT)
        assert {(p.name, p.version) for p in report.problems} == {("doc1", 1)}, report.problems


def test_wrong_size_in_the_version_record(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    data = _copy(stocked, tmp_path)
    _, docs = stocked

    def resize(env: lmdb.Environment, txn: lmdb.Transaction) -> None:
        db = env.open_db(b"versions", txn=txn)
        k = _version_key("doc3")
        rec = json.loads(txn.get(k, db=db))
        rec["sha256"] = "00" * 32
        txn.put(k, json.dumps(rec).encode(), db=db)

    _edit(data, resize)
    for c in _serve(data):
        report = c.check(VAULT)
        assert {(p.name, p.version) for p in report.problems} == {("doc3", 1)}
        assert "does not match its MAC" in report.problems[0].what
        with pytest.raises(IntegrityError, match="doc3"):  # refused by the server before any byte
            c.read_bytes(VAULT, "doc3")
        # the client compares the SHA-256 of what it received with the object's: refused
        with pytest.raises(IntegrityError):
            c.read_to(VAULT, "doc3", tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_flipped_bits_in_data_mdb(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    """Bits flipped in the LMDB file, at the sealed bytes of one chunk (found in the file) and then at
    random places: every read returns the original document or fails; never other bytes."""
    data = _copy(stocked, tmp_path)
    _, docs = stocked
    cid, _ = _manifest(data, "doc5")[-1]
    env = lmdb.open(str(data / "store"), max_dbs=64, subdir=True, readonly=True)
    with env.begin() as txn:
        sealed = bytes(txn.get(VAULT.encode() + b"\x00" + cid, db=env.open_db(b"chunks", txn=txn, create=False)))
    env.close()
    path = data / "store" / "data.mdb"
    raw = bytearray(path.read_bytes())
    at = raw.find(sealed[:4096])
    assert at >= 0
    raw[at + 3000] ^= 0x04
    path.write_bytes(bytes(raw))
    _expect_damage(data, docs, "doc5", "chunk")

    rng = random.Random(11)
    for _ in range(40):
        i = rng.randrange(len(raw))
        raw[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(raw))
    d = DaemonProcess(data)
    try:
        d.start()
    except RuntimeError:
        return  # LMDB has no page checksums: refusing to start on a damaged file is a clean outcome
    try:
        with d.client("permits", timeout=30) as c:
            for name, doc in docs.items():
                if not d.alive():
                    break
                res = _read_guarded(c, name, doc)
                assert isinstance(res, VaultError) or res == doc
    finally:
        d.kill()


def test_flipped_journal_node_is_reported_by_the_audit(stocked: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    """A stored journal hash altered on disk: the full audit names that node and only it, while the
    data itself stays readable (the journal is evidence beside the data, not in its read path)."""
    from daemon_proc import journal_audit  # type: ignore[import-not-found]

    data = _copy(stocked, tmp_path)
    _, docs = stocked
    assert journal_audit(data) == []
    data2 = _copy(stocked, tmp_path / "again")
    flipped: list[bytes] = []

    def flip(env: lmdb.Environment, txn: lmdb.Transaction) -> None:
        db = env.open_db(DB_TREE, txn=txn)
        keys = [bytes(k) for k in txn.cursor(db=db).iternext(values=False)]
        # the hash of a pair of leaves in the middle (stored in the record of its second leaf)
        k = next(k for k in keys[len(keys) // 2:] if record_slots(int.from_bytes(k, "big")) >= 2)
        level = 1
        v = bytearray(txn.get(k, db=db))
        v[32 * level + 5] ^= 0x01
        txn.put(k, bytes(v), db=db)
        flipped.append((k, level))

    _edit(data2, flip)
    problems = journal_audit(data2)
    # the altered node is named, and at most its parent besides (whose hash no longer matches it)
    k, level = flipped[0]
    last = int.from_bytes(k, "big")  # key: the last leaf the subtree covers
    assert f"(level {level}, index {((last + 1) >> level) - 1})" in problems[0], problems
    assert 1 <= len(problems) <= 2, problems
    for c in _serve(data2):
        for name, doc in docs.items():
            assert c.read_bytes(VAULT, name) == doc
