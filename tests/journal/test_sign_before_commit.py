"""Signing a batch's tree head before its commit (Journal.draft_head / sign_draft / install_head, and
JournalHook.before_commit / after_commit): the draft is taken and signed in the write transaction,
and installed only once the commit is durable; a draft whose commit fails is never published, and a
draft that does not match storage is not signed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lmdb
import pytest

from vaultd.errors import IntegrityError
from vaultd.journal.hook import JournalHook
from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import verify_receipt
from vaultd.journal.signer import Ed25519Signer
from vaultd.store.interface import Committed

from stored_tree import put_hash

from vaultd.journal.tree import frontier_ranges

NAME = "vaultd.test/journal"


def _leaf(i: int) -> bytes:
    return Leaf.make("deposit", vault="permits", name=f"doc-{i}", version=1,
                     sha256=hashlib.sha256(b"doc %d" % i).digest(), actor_kind="service",
                     actor_name="permits", time_ns=1000 + i).encode()


def _open(tmp: Path) -> tuple[lmdb.Environment, Journal]:
    env = lmdb.open(str(tmp / "db"), max_dbs=16, map_size=1 << 26)
    return env, Journal(env, Ed25519Signer.load_or_create(tmp / "journal.key", NAME), state_dir=tmp / "state")


def _first_head(env: lmdb.Environment, j: Journal) -> None:
    _signed_head_of(env, j, 1)


def _signed_head_of(env: lmdb.Environment, j: Journal, n: int) -> None:
    """Leaves 0..n-1 appended in one transaction, then a head signed from storage."""
    with env.begin(write=True) as txn:
        for i in range(n):
            j.append(txn, _leaf(i))
    j.sign_head()


def test_draft_signed_and_installed_after_commit(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    _first_head(env, j)
    with env.begin(write=True) as txn:
        idx = [j.append(txn, _leaf(i)) for i in (1, 2, 3)]
        draft = j.draft_head(txn)
    assert draft is not None and draft.size == 4 and draft.prev.checkpoint.size == 1
    signed = j.sign_draft(draft)
    assert signed is not None
    head, ext = signed
    assert j.head().checkpoint.size == 1  # nothing is current before install
    assert j.install_head(draft, head, ext) is head and j.head() is head
    receipts = j.batch_receipts(head, [("deposit", i, _leaf(i)) for i in idx], ext=ext)
    for i, rec in zip(idx, receipts):
        assert rec is not None
        res = verify_receipt(rec, b"doc %d" % i, j.verifier.vkey())
        assert res.ok, res.report()
    # the head signed from the draft is the one signing from storage would give
    assert head.checkpoint.root == j.tree.root(4)
    env.close()


def test_first_batch_after_the_empty_head_is_signed_before_the_commit(tmp_path: Path) -> None:
    """A new journal's first head is the empty tree: a draft over it is signed (every tree extends
    the empty one), not sent back to the synchronous path."""
    env, j = _open(tmp_path)
    assert j.sign_head().checkpoint.size == 0
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(0))
        j.append(txn, _leaf(1))
        draft = j.draft_head(txn)
    assert draft is not None and draft.prev.checkpoint.size == 0
    signed = j.sign_draft(draft)
    assert signed is not None
    assert signed[0].checkpoint.size == 2 and signed[0].checkpoint.root == j.tree.root(2)
    env.close()


def test_draft_of_failed_commit_is_never_installed(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    _first_head(env, j)
    txn = env.begin(write=True)
    j.append(txn, _leaf(1))
    draft = j.draft_head(txn)
    assert draft is not None
    signed = j.sign_draft(draft)
    txn.abort()  # the commit failed: the hook never installs the draft
    assert signed is not None and j.head().checkpoint.size == 1
    # the next batch reuses the index; its head is consistent with the last published one
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(7))
    head = j.sign_head()
    assert head.checkpoint.size == 2 and head.checkpoint.root == j.tree.root(2)
    assert head.checkpoint.root != signed[0].checkpoint.root  # a tree that never was durable
    env.close()


def test_draft_not_matching_storage_is_not_signed(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    _first_head(env, j)
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(1))
        put_hash(txn, j.tree, 1, 0, b"\x00" * 32)  # the stored hash of leaves 0..1 altered
        draft = j.draft_head(txn)
    assert draft is not None
    assert j.sign_draft(draft) is None
    with pytest.raises(IntegrityError):  # and the path after the commit refuses, naming it
        j.sign_head()
    env.close()


def test_signed_range_altered_between_batches_is_found(tmp_path: Path) -> None:
    """The draft reads only the frontier ranges holding new leaves. A signed range altered in storage
    since (leaves 0..3 of a head of 6) is found by the check of any proof through it, and refuses
    the draft of the first batch whose appends hash it into a new range."""
    env, j = _open(tmp_path)
    _signed_head_of(env, j, 6)
    with env.begin(write=True) as txn:
        put_hash(txn, j.tree, 2, 0, b"\x00" * 32)  # leaves 0..3, a range of the signed frontier
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(6))  # size 7: the new range is leaves 6..6; 0..3 is not read again
        draft = j.draft_head(txn)
        assert draft is not None and set(draft.stored) == {(6, 7)}
    signed = j.sign_draft(draft)
    assert signed is not None
    head, ext = signed
    # the root of the leaves as appended (hashlib), not of the altered storage
    h = [hashlib.sha256(b"\x00" + _leaf(i)).digest() for i in range(7)]
    n = lambda a, b: hashlib.sha256(b"\x01" + a + b).digest()  # noqa: E731
    assert head.checkpoint.root == n(n(n(h[0], h[1]), n(h[2], h[3])), n(n(h[4], h[5]), h[6]))
    assert j.install_head(draft, head, ext) is head
    with pytest.raises(IntegrityError, match="leaf 5 or the stored hashes on its path were altered"):
        j.receipt("deposit", 5)  # its proof carries the altered hash of leaves 0..3
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(7))  # size 8: its appends hash the stored 0..3 into the range 0..7
        draft = j.draft_head(txn)
        assert draft is not None and set(draft.stored) == {(0, 8)}
    assert j.sign_draft(draft) is None
    with pytest.raises(IntegrityError, match="not consistent with the signed checkpoint of size 7"):
        j.sign_head()
    env.close()


def test_hook_signs_before_the_commit_and_falls_back(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    _first_head(env, j)
    hook = JournalHook()
    hook.bind(j)
    try:
        for batch_no, leaves in enumerate(([1], [2, 3], [4])):
            with env.begin(write=True) as txn:
                units = [Committed(None, [_leaf(i)], [j.append(txn, _leaf(i))]) for i in leaves]
                hook.before_commit(txn, units)
                if batch_no == 1:
                    hook._draft = None  # a batch whose draft is lost: signed from storage after the commit
            hook.after_commit(units)
            for i, c in zip(leaves, units):
                assert c.evidence is not None
                res = verify_receipt(c.evidence, b"doc %d" % i, j.verifier.vkey())
                assert res.ok, res.report()
            assert j.head().checkpoint.size == 1 + leaves[-1]
        # a draft from a batch whose commit failed is dropped by the next batch's after_commit
        txn = env.begin(write=True)
        stale = [Committed(None, [_leaf(5)], [j.append(txn, _leaf(5))])]
        hook.before_commit(txn, stale)
        txn.abort()
        with env.begin(write=True) as txn:
            units = [Committed(None, [_leaf(6)], [j.append(txn, _leaf(6))])]
        hook.after_commit(units)  # no before_commit for this one: the stale draft is not used
        assert j.head().checkpoint.size == 6 and j.head().checkpoint.root == j.tree.root(6)
        res = verify_receipt(units[0].evidence or b"", b"doc 6", j.verifier.vkey())
        assert res.ok, res.report()
    finally:
        env.close()


def test_remembered_leaf_hashes_are_dropped_once_signed(tmp_path: Path) -> None:
    """The journal remembers each appended leaf's hash until a head covers it. After a burst (a
    thousand leaves in one transaction) and its head, nothing is kept, and the dict that held them is
    replaced: a dict keeps the table of its largest size, and the next commits would pay to scan it."""
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        for i in range(1000):
            j.append(txn, _leaf(i))
    burst = j._leaf_hashes
    assert len(burst) == 1000
    j.sign_head()
    assert j._leaf_hashes == {} and j._leaf_hashes is not burst
    for n in (1, 3):  # then batches signed before their commits: only their own leaves, then none
        with env.begin(write=True) as txn:
            idx = [j.append(txn, _leaf(2000 + i)) for i in range(n)]
            draft = j.draft_head(txn)
        assert sorted(j._leaf_hashes) == idx and draft is not None
        signed = j.sign_draft(draft)
        assert signed is not None
        j.install_head(draft, *signed)
        assert j._leaf_hashes == {}
    assert j.head().checkpoint.root == j.tree.root()
    env.close()


def test_hook_signs_from_storage_when_signing_the_draft_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """An exception while signing before the commit does not fail the commit (the data is durable
    anyway): after the commit the head is signed from storage and every unit still gets its receipt."""
    env, j = _open(tmp_path)
    _first_head(env, j)
    hook = JournalHook()
    hook.bind(j)

    def broken(draft: object, items: object) -> None:
        raise RuntimeError("signer unavailable")

    monkeypatch.setattr(j, "sign_draft_with_receipts", broken)
    with env.begin(write=True) as txn:
        units = [Committed(None, [_leaf(i)], [j.append(txn, _leaf(i))]) for i in (1, 2)]
        hook.before_commit(txn, units)
    hook.after_commit(units)
    assert "signing the journal head before the commit failed" in caplog.text
    assert j.head().checkpoint.size == 3 and j.head().checkpoint.root == j.tree.root(3)
    for i, c in zip((1, 2), units):
        res = verify_receipt(c.evidence or b"", b"doc %d" % i, j.verifier.vkey())
        assert res.ok, res.report()
    env.close()


def test_batch_appends_write_the_records_append_writes(tmp_path: Path) -> None:
    """The writer's batches append from the size and border kept in memory (one put, no read): the
    records are byte for byte those of Journal.append, an aborted unit's appends are rolled back,
    and a border that no longer matches the tree (a batch that did not commit, an append made
    elsewhere) is not reused."""
    (tmp_path / "a").mkdir()
    env, j = _open(tmp_path / "a")
    ref_env = lmdb.open(str(tmp_path / "ref"), max_dbs=16, map_size=1 << 26)
    ref = Journal(ref_env, Ed25519Signer.load_or_create(tmp_path / "journal.key", NAME), state_dir=tmp_path / "rs")
    n = 0
    for batch in (1, 2, 5, 1, 8, 3, 16, 1):
        with env.begin(write=True) as txn:
            appends = j.begin_batch(txn)
            for _ in range(batch):
                child = env.begin(write=True, parent=txn)
                mark = appends.savepoint()
                assert appends.append(child, _leaf(900 + n)) == n
                child.abort()  # a unit that failed after its append
                appends.rollback(mark)
                child = env.begin(write=True, parent=txn)
                assert appends.append(child, _leaf(n)) == n
                child.commit()
                n += 1
            # the hashes the batch says it wrote for the tree's frontier are the stored ones
            assert appends.frontier(0) == {r: j.tree.subtree(r[0], r[1], txn) for r in frontier_ranges(n)}
        appends.close(True)
        with ref_env.begin(write=True) as txn:
            for i in range(n - batch, n):
                assert ref.append(txn, _leaf(i)) == i
    with env.begin() as a, ref_env.begin() as b:
        assert list(a.cursor(db=j.tree.db)) == list(b.cursor(db=ref.tree.db))
    assert j.sign_head().checkpoint.root == ref.sign_head().checkpoint.root
    # a batch whose transaction was aborted leaves the kept border as it was
    txn = env.begin(write=True)
    appends = j.begin_batch(txn)
    appends.append(txn, _leaf(n))
    txn.abort()
    appends.close(False)
    # an append made by another path: the next batch reads the size, and the border from storage
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(n))
    with ref_env.begin(write=True) as txn:
        ref.append(txn, _leaf(n))
    with env.begin(write=True) as txn:
        appends = j.begin_batch(txn)
        assert appends.append(txn, _leaf(n + 1)) == n + 1
    appends.close(True)
    with ref_env.begin(write=True) as txn:
        ref.append(txn, _leaf(n + 1))
    with env.begin() as a, ref_env.begin() as b:
        assert list(a.cursor(db=j.tree.db)) == list(b.cursor(db=ref.tree.db))
    # the tree grew by another way than this Journal (as another process writing the store would):
    # the kept size is behind, the next append is refused, and the batch after it reads the tree
    with env.begin(write=True) as txn:
        j.tree.append(txn, _leaf(n + 2))
    with env.begin(write=True) as txn:
        appends = j.begin_batch(txn)
        with pytest.raises(IntegrityError, match="cannot be appended"):
            appends.append(txn, _leaf(n + 3))
    appends.close(True)
    with env.begin(write=True) as txn:
        appends = j.begin_batch(txn)
        assert appends.append(txn, _leaf(n + 3)) == n + 3
    appends.close(True)
    env.close()
    ref_env.close()


def test_a_full_map_when_storing_the_note_fails_the_batch_as_a_full_map(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The note is put in the batch's transaction itself: a full map there fails the batch the way
    the commit would (RESOURCE_EXHAUSTED, nothing kept), and the next batch goes through."""
    from vaultd.errors import ResourceExhausted
    from vaultd.journal.hook import open_journal
    from vaultd.store.lmdb_store import open_store

    hook = JournalHook()
    s = open_store(tmp_path / "store", map_size=8 << 20, journal=hook, after_commit=hook.after_commit)
    try:
        hook.bind(open_journal(s.env, tmp_path / "journal"))
        s.write(lambda t: (t.put_vault("a", b"1"), t.journal(_leaf(0)))[0])
        full = [True]

        def record_head(txn: object, head: object) -> None:
            if full:
                full.pop()
                raise lmdb.MapFullError("mdb_put: MDB_MAP_FULL")

        monkeypatch.setattr(hook.journal, "record_head", record_head)
        with pytest.raises(ResourceExhausted, match="map is full"):
            s.write(lambda t: (t.put_vault("b", b"2"), t.journal(_leaf(1)))[0])
        with s.read() as r:
            assert r.get_vault("b") is None  # nothing of the refused batch was kept
        c = s.write(lambda t: (t.put_vault("c", b"3"), t.journal(_leaf(2)))[0])
        assert c.leaf_indexes == [1] and c.evidence is not None
        assert verify_receipt(c.evidence, b"doc 2", hook.journal.verifier.vkey()).ok
    finally:
        s.close()


def test_note_signed_in_the_core_is_the_note_python_signs(tmp_path: Path) -> None:
    """With an Ed25519 key the core holds, the draft's check, signature, note and receipts are one call
    to the core; its note is byte for byte the one checkpoint.sign_note lays out (Ed25519 is
    deterministic) and its receipts the ones make_receipt writes, as a signer the core does not hold
    (the PKCS#11 path) gives them; a journal name that JSON must escape included."""
    from vaultd.journal.checkpoint import Checkpoint, open_checkpoint, sign_note
    from vaultd.journal.receipt import make_receipt

    class Delegate:  # a signer without core_key, as Pkcs11EcdsaSigner is
        def __init__(self, inner: Ed25519Signer) -> None:
            self.inner, self.name, self.key_id = inner, inner.name, inner.key_id

        def sign(self, message: bytes) -> bytes:
            return self.inner.sign(message)

        def verifier(self):  # type: ignore[no-untyped-def]
            return self.inner.verifier()

    key = Ed25519Signer.load_or_create(tmp_path / "journal.key", NAME)
    origin = 'vaultd "city" \\ é — 𝄞/journal'
    outs = []
    for i, signer in enumerate((key, Delegate(key))):
        env = lmdb.open(str(tmp_path / f"db{i}"), max_dbs=16, map_size=1 << 26)
        j = Journal(env, signer, origin=origin, state_dir=tmp_path / f"state{i}")  # type: ignore[arg-type]
        assert (j._core_key is not None) == (i == 0)
        _first_head(env, j)
        with env.begin(write=True) as txn:
            idx = [j.append(txn, _leaf(k)) for k in (1, 2, 3)]
            draft = j.draft_head(txn)
        assert draft is not None
        items = [("deposit", k, _leaf(k)) for k in idx]
        signed = j.sign_draft_with_receipts(draft, items)
        assert signed is not None
        head, _, receipts = signed
        assert head.note == sign_note(Checkpoint(origin, 4, j.tree.root(4)).body(), key)
        assert open_checkpoint(head.note, key.verifier()) == head.checkpoint
        for (kind, k, leaf), receipt in zip(items, receipts):
            assert receipt == make_receipt(kind, leaf, k, 4, j.tree.inclusion_proof(k, 4), head.note)
        outs.append((head.note, receipts))
        env.close()
    assert outs[0] == outs[1]




def test_a_border_that_does_not_continue_the_signed_tree_is_not_signed(tmp_path: Path) -> None:
    """The draft takes the hashes the batch wrote from its AppendBatch: written from a border that is
    not the signed tree's (here one hash of it altered in memory), they fail the draft's check, and
    the head is not signed from them; signing from storage after the commit refuses too."""
    env, j = _open(tmp_path)
    _signed_head_of(env, j, 6)
    with env.begin(write=True) as txn:
        appends = j.begin_batch(txn)
        size, border = appends.savepoint()
        appends.rollback((size, border[:1] + (b"\x00" * 32,) + border[2:]))  # leaves 4..5: bit 1 of 6
        appends.append(txn, _leaf(6))
        appends.append(txn, _leaf(7))  # merges the wrong 4..5 into 4..7, then 0..7
        draft = j.draft_head(txn, appends)
        assert draft is not None and set(draft.stored) == {(0, 8)}
    appends.close(True)
    assert j.sign_draft(draft) is None
    with pytest.raises(IntegrityError, match="not consistent with the signed checkpoint of size 6"):
        j.sign_head()
    env.close()
