"""Evidence for a group commit from memory: the tree extended from the last signed frontier gives the
same roots and proofs as the stored tree, receipts made for a whole batch are byte for byte the
canonical receipts and verify with the independent verifier, and signing still refuses a stored tree
that does not extend the signed one (also when what the journal remembers is stale)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd.errors import IntegrityError
from vaultd.journal import proofs
from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf, LeafError
from vaultd.journal.receipt import make_receipt, verify_receipt
from vaultd.journal.signer import Ed25519Signer
from vaultd.journal.tree import Extension, MerkleTree, frontier_ranges, naive_root

from stored_tree import put_hash

NAME = "vaultd.test/journal"


def _leaf(i: int) -> Leaf:
    return Leaf.make("deposit", vault="permits", name=f"doc-{i}", version=1,
                     sha256=hashlib.sha256(b"doc %d" % i).digest(), actor_kind="service", actor_name="permits",
                     time_ns=1000 + i)


def _open(tmp: Path) -> tuple[lmdb.Environment, Journal]:
    env = lmdb.open(str(tmp / "db"), max_dbs=16, map_size=1 << 26)
    return env, Journal(env, Ed25519Signer.load_or_create(tmp / "journal.key", NAME), state_dir=tmp / "state")


def test_extension_matches_stored_tree_for_every_split(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), max_dbs=8, map_size=1 << 26)
    tree = MerkleTree(env)
    raw = [b"leaf %d" % i for i in range(40)]
    with env.begin(write=True) as txn:
        for leaf in raw:
            tree.append(txn, leaf)
    hashes = [proofs.leaf_hash(x) for x in raw]
    with env.begin() as txn:
        for old in range(0, 34):
            frontier = {r: tree.subtree(r[0], r[1], txn) for r in frontier_ranges(old)}
            for new in range(old, 40):
                ext = Extension(frontier, old, new, hashes[old:new])
                assert ext.root() == naive_root(raw[:new]) == (tree.root(new, txn) if new else ext.root())
                for i in range(old, new):
                    assert ext.inclusion_proof(i) == tree.inclusion_proof(i, new, txn)
                if 0 < old < new:
                    assert ext.consistency_proof() == tree.consistency_proof(old, new, txn)
                assert ext.frontier() == {r: tree.subtree(r[0], r[1], txn) for r in frontier_ranges(new)}
    env.close()


def test_batch_receipts_are_the_canonical_receipts(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    vkey = j.verifier.vkey()
    start = 0
    for batch in (1, 3, 8, 1, 13, 2):  # sizes crossing powers of two
        leaves = [_leaf(start + k).encode() for k in range(batch)]
        with env.begin(write=True) as txn:
            idx = [j.append(txn, leaf) for leaf in leaves]
        head = j.sign_head()
        kinds = ["deposit", "destroy", "event", "delivery"]
        items = [(kinds[k % 4], i, leaf) for k, (i, leaf) in enumerate(zip(idx, leaves))]
        got = j.batch_receipts(head, items)
        for (kind, i, leaf), rec in zip(items, got):
            assert rec == j.receipt(kind, i, head)  # from stored hashes, as before
            assert rec == make_receipt(kind, leaf, i, head.checkpoint.size,
                                       j.inclusion(i, head.checkpoint.size), head.note)
            res = verify_receipt(rec, None, vkey)
            # every leaf is a deposit: its deposit receipt wants the document, no destroy or delivery
            # receipt can prove it, an event receipt does
            want = {"deposit": "document-sha256", "destroy": "receipt-kind", "delivery": "receipt-kind"}
            assert res.failed == want.get(kind), res.report()
            assert (res.checks[-1][0], res.checks[-1][1]) == ("inclusion-proof", True), res.report()
        start += batch
    # A leaf of an earlier head, and an unknown kind: stored path, and None (never an exception).
    head = j.head()
    old = j.batch_receipts(head, [("deposit", 0, _leaf(0).encode()), ("nonsense", start - 1, _leaf(start - 1).encode())])
    assert old[0] == j.receipt("deposit", 0, head) and old[1] is None
    env.close()


def test_batch_receipt_refuses_leaf_bytes_that_are_not_the_leaf(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(0))
    first = j.sign_head()  # the first head comes from storage; the next one extends it in memory
    with env.begin(write=True) as txn:
        idx = [j.append(txn, _leaf(i)) for i in range(1, 5)]
    head = j.sign_head()
    got = j.batch_receipts(head, [("deposit", idx[1], _leaf(99).encode()), ("deposit", idx[2], _leaf(3).encode())])
    assert got[0] is None  # its proof does not lead to the signed root from these bytes
    assert got[1] is not None and verify_receipt(got[1], b"doc 3", j.verifier.vkey()).ok
    # the same refusal on the storage path (a leaf of an earlier head)
    assert j.batch_receipts(head, [("deposit", 0, _leaf(99).encode())]) == [None]
    assert j.batch_receipts(first, [("deposit", 0, _leaf(0).encode())])[0] == j.receipt("deposit", 0, first)
    env.close()


def test_stale_memory_after_aborted_transaction_is_not_trusted(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        for i in range(3):
            j.append(txn, _leaf(i))
    j.sign_head()
    with pytest.raises(RuntimeError):
        with env.begin(write=True) as txn:
            j.append(txn, _leaf(100))
            raise RuntimeError("aborted")
    # The next leaf at that index goes in through the tree alone: the remembered hash is stale.
    with env.begin(write=True) as txn:
        j.tree.append(txn, _leaf(3).encode())
    head = j.sign_head()
    assert head.checkpoint.size == 4 and head.checkpoint.root == naive_root([_leaf(i).encode() for i in range(4)])
    rec = j.receipt("deposit", 3, head)
    assert verify_receipt(rec, b"doc 3", j.verifier.vkey()).ok
    env.close()


def test_stored_frontier_differing_from_signed_tree_refuses_signing(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        for i in range(6):
            j.append(txn, _leaf(i))
    j.sign_head()
    with env.begin(write=True) as txn:
        j.append(txn, _leaf(6))
        j.append(txn, _leaf(7))
        # the new subtree of leaves 0..7 is stored with another value than its children give
        put_hash(txn, j.tree, 3, 0, b"\x22" * 32)
    with pytest.raises(IntegrityError, match=r"not consistent with the signed checkpoint of size 6; not signing "
                                             r"\(the stored hash of leaves 0\.\.7 differs"):
        j.sign_head()
    assert j.head().checkpoint.size == 6
    env.close()


def test_reopened_journal_extends_the_persisted_head(tmp_path: Path) -> None:
    env, j = _open(tmp_path)
    with env.begin(write=True) as txn:
        for i in range(11):
            j.append(txn, _leaf(i))
    j.sign_head()
    j.close()
    j2 = Journal(env, Ed25519Signer.load_or_create(tmp_path / "journal.key", NAME), state_dir=tmp_path / "state")
    with env.begin(write=True) as txn:
        idx = [j2.append(txn, _leaf(i)) for i in range(11, 14)]
    head = j2.sign_head()
    recs = j2.batch_receipts(head, [("deposit", i, _leaf(i).encode()) for i in idx])
    assert all(r is not None and verify_receipt(r, b"doc %d" % i, j2.verifier.vkey()).ok for r, i in zip(recs, idx))
    env.close()


def _valid_leaf_bytes() -> st.SearchStrategy[bytes]:
    text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
    return st.builds(
        lambda op, vault, name, ver, sha, kind, actor, kiosk, t, out, extra: Leaf.make_encoded(
            op, vault=vault, name=name, version=ver, sha256=sha, actor_kind=kind, actor_name=actor, kiosk=kiosk,
            time_ns=t, outcome=out, extra=extra),
        st.from_regex(r"[a-z][a-z0-9_.-]{0,6}", fullmatch=True), text, text, st.integers(0, 2**64 - 1),
        st.one_of(st.none(), st.binary(min_size=32, max_size=32)), st.sampled_from(["", "service", "citizen"]),
        text, text, st.integers(0, 2**64 - 1), st.sampled_from(["ok", "denied"]),
        st.dictionaries(st.from_regex(r"[a-z0-9_.-]{1,5}", fullmatch=True), st.binary(max_size=8), max_size=3),
    )


@settings(max_examples=300, deadline=None)
@given(_valid_leaf_bytes(), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
       st.integers(0, 8))
def test_fast_decode_accepts_exactly_what_the_strict_decoder_accepts(raw: bytes, edits: list[tuple[int, int]],
                                                                     cut: int) -> None:
    data = bytearray(raw)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    if cut:
        data = data[:-cut] if cut % 2 else data + bytes(cut)
    try:
        strict: Leaf | LeafError = Leaf._decode_strict(bytes(data))
    except LeafError as e:
        strict = e
    try:
        fast: Leaf | LeafError = Leaf.decode(bytes(data))
    except LeafError as e:
        fast = e
    if isinstance(strict, LeafError):
        assert isinstance(fast, LeafError) and str(fast) == str(strict)
    else:
        assert fast == strict and fast.encode() == bytes(data)


def test_leaf_factory_bytes_equal_make(tmp_path: Path) -> None:
    leaf = _leaf(7)
    assert Leaf.make_encoded("deposit", vault="permits", name="doc-7", version=1,
                             sha256=hashlib.sha256(b"doc 7").digest(), actor_kind="service",
                             actor_name="permits", time_ns=1007) == leaf.encode()
    assert struct.unpack(">B", leaf.encode()[:1])[0] == 1
