"""Storage: the store interface and its LMDB implementation with a single group-committing writer."""

from __future__ import annotations

from vaultd.store.interface import Committed, ReadTxn, Store, StoreStats, WriteTxn
from vaultd.store.lmdb_store import LmdbStore, open_store

__all__ = ["Committed", "ReadTxn", "Store", "StoreStats", "WriteTxn", "LmdbStore", "open_store"]
