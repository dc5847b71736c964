"""Edits of the journal's stored records, for the tamper tests: what an attacker with write access to
the LMDB file could do to one hash or one leaf of ``journal.tree``."""

from __future__ import annotations

import struct

import lmdb

from vaultd.journal.tree import MerkleTree, record_slots

_U64 = struct.Struct(">Q")


def put_hash(txn: lmdb.Transaction, tree: MerkleTree, level: int, index: int, value: bytes) -> None:
    """Overwrite the stored hash of the subtree at ``level``, position ``index`` on that level."""
    last = ((index + 1) << level) - 1
    raw = bytearray(txn.get(_U64.pack(last), db=tree.db))
    raw[32 * level:32 * (level + 1)] = value
    txn.put(_U64.pack(last), bytes(raw), db=tree.db)


def put_leaf(txn: lmdb.Transaction, tree: MerkleTree, index: int, leaf: bytes) -> None:
    """Replace the stored bytes of leaf ``index``, its stored hashes left as they were."""
    raw = bytes(txn.get(_U64.pack(index), db=tree.db))
    txn.put(_U64.pack(index), raw[:32 * record_slots(index)] + leaf, db=tree.db)


def delete_record(txn: lmdb.Transaction, tree: MerkleTree, index: int) -> None:
    """Remove the record of leaf ``index`` (the leaf and every hash stored with it)."""
    txn.delete(_U64.pack(index), db=tree.db)
