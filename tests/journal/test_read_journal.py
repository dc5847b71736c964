"""Reads in the journal, through the real core, store and journal: a read is a leaf committed as it
starts, and a read whose leaf cannot be written is not served."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, wait
from pathlib import Path

import lmdb
import pytest

from vaultd.core.policy import Policy
from vaultd.core.vaults import open_vaults
from vaultd.errors import ResourceExhausted, Unavailable
from vaultd.journal.hook import JournalHook, leaf_factory, open_journal
from vaultd.journal.leaf import Leaf
from vaultd.keys.file import FileKeyProvider
from vaultd.types import DepositHeader, Identity

SVC = Identity("service", "permits")
POLICY = {"rule": [{"identity": "service:permits", "vaults": ["permits"],
                    "verbs": ["create", "deposit", "read", "stat", "journal"]}]}


def _open(tmp_path: Path, map_size: int):  # type: ignore[no-untyped-def]
    hook = JournalHook()
    vaults = open_vaults(tmp_path, policy=Policy.from_dict(POLICY), key_provider=FileKeyProvider(tmp_path / "keys"),
                         map_size=map_size, leaf_factory=leaf_factory, journal=hook, after_commit=hook.after_commit)
    journal = open_journal(vaults.store.env, tmp_path / "journal", name="vaultd.test/journal", fsync=False)
    hook.bind(journal)
    return vaults, journal


def test_a_read_is_journaled_before_its_bytes_are_served(tmp_path: Path) -> None:
    vaults, journal = _open(tmp_path, 1 << 26)
    try:
        vaults.create_vault(SVC, "permits")
        vaults.deposit(SVC, DepositHeader("permits", "a.txt"), [b"alpha" * 1000])
        size = journal.tree.size()
        stat, data = vaults.read(SVC, "permits", "a.txt", offset=10, length=20)
        assert b"".join(data) == (b"alpha" * 1000)[10:30]
        assert journal.tree.size() == size + 1
        leaf = Leaf.decode(journal.tree.leaf(size))
        assert (leaf.operation, leaf.name, leaf.version, leaf.sha256, leaf.actor_name) == (
            "read", "a.txt", 1, stat.sha256, "permits")
        assert leaf.extra_dict == {"range": b"10-30"}  # the depositor's own read: no delivery
        assert journal.first_read_index("permits", "a.txt", 1) is None
    finally:
        vaults.close()
        journal.close()


def test_reads_go_on_with_deferred_leaves_when_the_map_is_full(tmp_path: Path) -> None:
    """A full map: reads are still served, their leaves wait in a bounded backlog (the journal does not
    grow); once the backlog is full, a read is refused and not one byte of it is served."""
    vaults, journal = _open(tmp_path, 1 << 20)
    try:
        vaults.create_vault(SVC, "permits")
        doc = os.urandom(200_000)
        vaults.deposit(SVC, DepositHeader("permits", "doc"), [doc])
        with pytest.raises(ResourceExhausted):
            vaults.deposit(SVC, DepositHeader("permits", "big"), [os.urandom(1 << 20)])
        for i in range(2000):  # fill what is left with small deposits, until not even one fits
            try:
                vaults.deposit(SVC, DepositHeader("permits", f"s{i}"), [os.urandom(64)])
            except ResourceExhausted:
                break
        else:
            pytest.fail("the map never filled")
        vaults.deferred_reads.limit = 8
        committed = 0
        for _ in range(5000):  # read until the map is full for the reads' own leaves too
            size = journal.tree.size()
            _, data = vaults.read(SVC, "permits", "doc")
            assert b"".join(data) == doc
            if journal.tree.size() == size:
                break
            committed += 1
        else:
            pytest.fail("the reads' leaves never filled the map")
        assert len(vaults.deferred_reads) == 1
        size = journal.tree.size()
        for _ in range(7):  # served, deferred
            _, data = vaults.read(SVC, "permits", "doc")
            assert b"".join(data) == doc
        assert len(vaults.deferred_reads) == 8 and journal.tree.size() == size
        stat, data = vaults.read(SVC, "permits", "doc")  # the metadata is known before the leaf
        served: list[bytes] = []
        with pytest.raises(ResourceExhausted, match="this read was not served"):
            for piece in data:
                served.append(piece)
        assert served == [] and journal.tree.size() == size and len(vaults.deferred_reads) == 8
    finally:
        vaults.close()
        journal.close()


@pytest.mark.parametrize("failure", ["unit aborted", "never run", "submit refused"])
def test_deferred_entries_survive_a_read_that_is_never_started(tmp_path: Path, failure: str) -> None:
    """The deferred entry of a read already served is kept when a later read is created but never
    streamed (its client went away before the first message) while the store still cannot commit,
    and is committed once it can: the unit that would carry it takes it only as it runs, and puts
    it back when it does not commit."""
    vaults, journal = _open(tmp_path, 1 << 26)
    try:
        vaults.create_vault(SVC, "permits")
        vaults.deposit(SVC, DepositHeader("permits", "doc"), [b"the document"])
        size = journal.tree.size()
        submit = vaults.store.submit
        entries: list[Future[object]] = []  # the journal entries of the reads under the failure

        def map_full(t: object) -> None:
            raise lmdb.MapFullError("mdb_put: MDB_MAP_FULL: Environment mapsize limit reached")

        def failing(unit, size_hint=0):  # type: ignore[no-untyped-def]
            """Units run in the writer as usual, and their transaction meets a full map."""
            entries.append(submit(lambda t: (unit(t), map_full(t)), size_hint))
            return entries[-1]

        vaults.store.submit = failing  # type: ignore[method-assign]
        _, data = vaults.read(SVC, "permits", "doc")  # read 1: served, its entry deferred
        assert b"".join(data) == b"the document"
        assert len(vaults.deferred_reads) == 1 and journal.tree.size() == size

        if failure == "never run":  # the store refuses the unit without running it
            def refused(unit, size_hint=0):  # type: ignore[no-untyped-def]
                f: Future[object] = Future()
                f.set_exception(ResourceExhausted("the storage map is full"))
                entries.append(f)
                return f

            vaults.store.submit = refused  # type: ignore[method-assign]
        elif failure == "submit refused":  # the store is shutting down: submit itself raises
            def closing(unit, size_hint=0):  # type: ignore[no-untyped-def]
                raise Unavailable("the store is shutting down")

            vaults.store.submit = closing  # type: ignore[method-assign]
        try:
            _, data2 = vaults.read(SVC, "permits", "doc")  # read 2: created, then closed unread
            data2.close()  # type: ignore[attr-defined]
        except Unavailable:
            assert failure == "submit refused"
        wait(entries, timeout=10)  # every entry under the failure has met it
        deadline = time.monotonic() + 10  # (and its done-callbacks have run)
        while len(vaults.deferred_reads) != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(vaults.deferred_reads) == 1  # read 1's entry is still waiting; read 2 was not served

        vaults.store.submit = submit  # type: ignore[method-assign]
        _, data = vaults.read(SVC, "permits", "doc")  # the store commits again
        assert b"".join(data) == b"the document"
        assert len(vaults.deferred_reads) == 0
        assert journal.tree.size() == size + 2  # read 1's deferred entry, then read 3's
        reads = [Leaf.decode(journal.tree.leaf(i)) for i in range(size, size + 2)]
        assert [leaf.operation for leaf in reads] == ["read", "read"]
        assert reads[0].time_ns < reads[1].time_ns  # read 1's entry kept its own time
    finally:
        vaults.close()
        journal.close()
