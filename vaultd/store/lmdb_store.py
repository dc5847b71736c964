"""The LMDB store: one environment, named databases, short read transactions, one writer thread.

Databases: ``vaults``, ``objects`` (object heads), ``versions``, ``manifests``, ``chunks`` (sealed
bytes), ``refs`` (chunk reference counts), ``requests`` (idempotent request ids), ``pending`` (staged
parts of deposits in flight, rolled back after a crash), ``stats`` (counters the core keeps in the same
transaction as the changes they count: logical bytes, vaults per master key version; read at every
metrics scrape instead of a scan). Other layers (the journal) may open their
own databases in the same environment through ``open_db`` and write them in the writer's transaction;
they read them through ``raw_read``, never ``env.begin()``: every read transaction of the process
goes through ``read`` or ``raw_read``.

Durability: the environment is opened with ``sync=True`` and ``metasync=True`` and without
``writemap``/``map_async``, so each commit is one fsync'd transaction; a unit's future resolves only
after the commit returns.

Map size: reads never need map space, so a full map fails writes only (``ResourceExhausted``). When
``max_map_size`` is larger than ``map_size``, the writer grows the map (doubling, up to the maximum)
with every read transaction of the process drained first, as LMDB requires (py-lmdb's
``set_mapsize`` invalidates every transaction of the process still open), then retries the units
that failed. Readers wait while the map grows.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lmdb

from vaultd.errors import ResourceExhausted, Unavailable
from vaultd.store import keys as K
from vaultd.store.interface import Committed, StoreStats, T
from vaultd.store.writer import Journal, Writer

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["LmdbStore", "open_store", "DB_NAMES"]

DB_NAMES = ("vaults", "objects", "versions", "manifests", "chunks", "refs", "requests", "pending", "purging", "stats")
_Q = struct.Struct(">Q")
_SQ = struct.Struct(">q")
_H = struct.Struct(">H")


class _Gate:
    """Readers share it; growing the map takes it exclusively (no read txn may be open then).

    A thread that holds it shared may take it again (a read inside a read) without waiting for a
    grower that is waiting for it: the holds are counted per thread, released by the thread they
    were taken for (``release_shared(owner)``, whichever thread ends the read)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: dict[int, int] = {}  # thread id -> shared holds
        self._exclusive = False

    def acquire_shared(self) -> int:
        me = threading.get_ident()
        with self._cond:
            held = self._held.get(me, 0)
            if not held:
                while self._exclusive:
                    self._cond.wait()
            self._held[me] = held + 1
        return me

    def release_shared(self, owner: int) -> None:
        with self._cond:
            held = self._held[owner] - 1
            if held:
                self._held[owner] = held
            else:
                del self._held[owner]
                if not self._held:
                    self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        owner = self.acquire_shared()
        try:
            yield
        finally:
            self.release_shared(owner)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._held:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _ReadTxn:
    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any]) -> None:
        self.raw = txn
        self._dbs = dbs

    def _get(self, db: str, key: bytes) -> bytes | None:
        v = self.raw.get(key, db=self._dbs[db])
        return None if v is None else bytes(v)

    def get_vault(self, vault: str) -> bytes | None:
        return self._get("vaults", vault.encode("ascii"))

    def iter_vaults(self, after: str | None = None) -> Iterator[tuple[str, bytes]]:
        # after + NUL: the first key past ``after`` (no vault id holds a NUL)
        for k, v in self._scan("vaults", b"", None if after is None else after.encode("ascii") + b"\x00"):
            yield k.decode("ascii"), v

    def get_object(self, vault: str, name: str) -> bytes | None:
        v = self._get("objects", K.object_key(vault, name))
        return None if v is None else _split_head(v)[1]

    def iter_objects(self, vault: str, prefix: str = "", after: str | None = None) -> Iterator[tuple[str, bytes]]:
        start = K.object_prefix(vault, prefix)
        vp = K.vault_prefix(vault)
        seek = start
        skip_key = None
        if after is not None:
            skip_key = K.object_key(vault, after)
            seek = max(start, skip_key)
        for kb, v in self._scan("objects", start, seek):
            if skip_key is not None and kb <= skip_key:
                continue
            name, head = _split_head(v)
            if not name.startswith(prefix):
                continue
            assert kb.startswith(vp)
            yield name, head

    def get_version(self, vault: str, name: str, version: int) -> bytes | None:
        return self._get("versions", K.version_key(vault, name, version))

    def iter_versions(self, vault: str, name: str, reverse: bool = False,
                      after: int = 0) -> Iterator[tuple[int, bytes]]:
        prefix = K.object_key(vault, name) + K.SEP
        if not reverse:
            for kb, v in self._scan("versions", prefix, prefix + _Q.pack(after + 1) if after else None):
                yield K.split_version(kb), v
            return
        with self.raw.cursor(db=self._dbs["versions"]) as c:
            ok = c.prev() if c.set_range(prefix + b"\xff" * 8) else c.last()
            while ok:
                kb = bytes(c.key())
                if not kb.startswith(prefix) or K.split_version(kb) <= after:
                    return
                yield K.split_version(kb), bytes(c.value())
                ok = c.prev()

    def get_manifest(self, vault: str, name: str, version: int) -> bytes | None:
        return self._get("manifests", K.version_key(vault, name, version))

    def get_chunk(self, vault: str, chunk_id: bytes) -> bytes | None:
        return self._get("chunks", K.chunk_key(vault, chunk_id))

    def chunk_view(self, vault: str, chunk_id: bytes) -> memoryview | None:
        """The stored chunk as a view into the map, no copy: valid only until this transaction
        ends (a read transaction's data stays put while it is open)."""
        v = self.raw.get(K.chunk_key(vault, chunk_id), db=self._dbs["chunks"])
        return None if v is None else memoryview(v)

    def chunk_refs(self, vault: str, chunk_id: bytes) -> int:
        v = self.raw.get(K.chunk_key(vault, chunk_id), db=self._dbs["refs"])
        return 0 if v is None else int(_Q.unpack(v)[0])

    def iter_chunks(self, vault: str) -> Iterator[tuple[bytes, int]]:
        prefix = K.vault_prefix(vault)
        for kb, v in self._scan("refs", prefix):
            yield kb[len(prefix) :], int(_Q.unpack(v)[0])

    def get_request(self, vault: str, actor: str, request_id: str) -> bytes | None:
        return self._get("requests", K.request_key(vault, actor, request_id))

    def iter_pending(self) -> Iterator[tuple[bytes, bytes]]:
        with self.raw.cursor(db=self._dbs["pending"]) as c:
            for k, v in c:
                yield bytes(k), bytes(v)

    def is_purging(self, vault: str) -> bool:
        return self.raw.get(vault.encode("ascii"), db=self._dbs["purging"]) is not None

    def iter_purging(self) -> Iterator[str]:
        with self.raw.cursor(db=self._dbs["purging"]) as c:
            for k in c.iternext(keys=True, values=False):
                yield bytes(k).decode("ascii")

    def get_stat(self, name: str) -> int | None:
        """A counter of the ``stats`` record (None: never set)."""
        v = self.raw.get(name.encode("utf-8"), db=self._dbs["stats"])
        return None if v is None else int(_SQ.unpack(v)[0])

    def iter_stats(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        for kb, v in self._scan("stats", prefix.encode("utf-8")):
            yield kb.decode("utf-8"), int(_SQ.unpack(v)[0])

    def _scan(self, db: str, prefix: bytes, seek: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The records of ``db`` whose key starts with ``prefix``, in key order, from ``seek`` (a key
        at or past ``prefix``) when given."""
        with self.raw.cursor(db=self._dbs[db]) as c:
            if not c.set_range(prefix if seek is None else seek):
                return
            for k, v in c:
                kb = bytes(k)
                if not kb.startswith(prefix):
                    return
                yield kb, bytes(v)


class _WriteTxn(_ReadTxn):
    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any]) -> None:
        super().__init__(txn, dbs)
        self.leaves: list[bytes] = []
        self.leaf_indexes: list[int] = []
        # Set by the writer for the unit's transaction: appends a leaf in it, returns its index.
        self.appender: Callable[[bytes], int] | None = None

    def put_vault(self, vault: str, record: bytes) -> None:
        self.raw.put(vault.encode("ascii"), record, db=self._dbs["vaults"])

    def delete_vault(self, vault: str) -> bool:
        return bool(self.raw.delete(vault.encode("ascii"), db=self._dbs["vaults"]))

    def put_object(self, vault: str, name: str, head: bytes) -> None:
        nb = name.encode("utf-8")
        self.raw.put(K.object_key(vault, name), _H.pack(len(nb)) + nb + head, db=self._dbs["objects"])

    def delete_object(self, vault: str, name: str) -> bool:
        return bool(self.raw.delete(K.object_key(vault, name), db=self._dbs["objects"]))

    def put_version(self, vault: str, name: str, version: int, record: bytes, manifest: bytes) -> None:
        k = K.version_key(vault, name, version)
        self.raw.put(k, record, db=self._dbs["versions"])
        self.raw.put(k, manifest, db=self._dbs["manifests"])

    def delete_version(self, vault: str, name: str, version: int) -> bool:
        k = K.version_key(vault, name, version)
        self.raw.delete(k, db=self._dbs["manifests"])
        return bool(self.raw.delete(k, db=self._dbs["versions"]))

    def add_chunk_ref(self, vault: str, chunk_id: bytes, sealed: Buffer | None) -> int:
        k = K.chunk_key(vault, chunk_id)
        refs = self._dbs["refs"]
        v = self.raw.get(k, db=refs)
        if v is None:
            if sealed is None:
                raise KeyError(chunk_id.hex())
            self.raw.put(k, sealed, db=self._dbs["chunks"])
            n = 1
        else:
            n = int(_Q.unpack(v)[0]) + 1
        self.raw.put(k, _Q.pack(n), db=refs)
        return n

    def drop_chunk_ref(self, vault: str, chunk_id: bytes) -> int:
        k = K.chunk_key(vault, chunk_id)
        refs = self._dbs["refs"]
        v = self.raw.get(k, db=refs)
        if v is None:
            raise KeyError(chunk_id.hex())
        n = int(_Q.unpack(v)[0]) - 1
        if n <= 0:
            self.raw.delete(k, db=refs)
            self.raw.delete(k, db=self._dbs["chunks"])
            return 0
        self.raw.put(k, _Q.pack(n), db=refs)
        return n

    def put_request(self, vault: str, actor: str, request_id: str, record: bytes) -> None:
        self.raw.put(K.request_key(vault, actor, request_id), record, db=self._dbs["requests"])

    def delete_requests(self, vault: str) -> int:
        prefix = K.vault_prefix(vault)
        n = 0
        with self.raw.cursor(db=self._dbs["requests"]) as c:
            if c.set_range(prefix):
                while bytes(c.key()).startswith(prefix):
                    if not c.delete():
                        break
                    n += 1
                    if not c.key():
                        break
        return n

    def purge_vault(self, vault: str, limit: int) -> int:
        prefix = K.vault_prefix(vault)
        n = 0
        for db in ("objects", "versions", "manifests", "chunks", "refs"):
            with self.raw.cursor(db=self._dbs[db]) as c:
                if not c.set_range(prefix):
                    continue
                while n < limit and bytes(c.key()).startswith(prefix):
                    if not c.delete():
                        break
                    n += 1
                    if not c.key():
                        break
            if n >= limit:
                break
        return n

    def put_purging(self, vault: str) -> None:
        self.raw.put(vault.encode("ascii"), b"", db=self._dbs["purging"])

    def delete_purging(self, vault: str) -> bool:
        return bool(self.raw.delete(vault.encode("ascii"), db=self._dbs["purging"]))

    def put_pending(self, deposit_key: bytes, record: bytes) -> None:
        self.raw.put(deposit_key, record, db=self._dbs["pending"])

    def delete_pending(self, deposit_key: bytes) -> bool:
        return bool(self.raw.delete(deposit_key, db=self._dbs["pending"]))

    def journal(self, leaf: bytes) -> int | None:
        self.leaves.append(leaf)
        if self.appender is None:
            return None
        index = self.appender(leaf)
        self.leaf_indexes.append(index)
        return index

    def add_stat(self, name: str, delta: int) -> int:
        """Add ``delta`` to a counter of the ``stats`` record in this transaction (a counter that
        drops to 0 is removed); returns the new value."""
        k = name.encode("utf-8")
        db = self._dbs["stats"]
        v = self.raw.get(k, db=db)
        n = (0 if v is None else int(_SQ.unpack(v)[0])) + delta
        if n == 0:
            self.raw.delete(k, db=db)
        else:
            self.raw.put(k, _SQ.pack(n), db=db)
        return n

    def put_stat(self, name: str, value: int) -> None:
        k = name.encode("utf-8")
        if value == 0:
            self.raw.delete(k, db=self._dbs["stats"])
        else:
            self.raw.put(k, _SQ.pack(value), db=self._dbs["stats"])


def _split_head(v: bytes) -> tuple[str, bytes]:
    (n,) = _H.unpack_from(v)
    return v[2 : 2 + n].decode("utf-8"), v[2 + n :]


class LmdbStore:
    """The LMDB implementation of ``vaultd.store.interface.Store``."""

    def __init__(
        self,
        path: Path,
        *,
        map_size: int = 1 << 34,
        max_map_size: int | None = None,
        max_batch_units: int = 512,
        max_batch_bytes: int = 32 << 20,
        journal: Journal | None = None,
        after_commit: Callable[[list[Committed[Any]]], Callable[[], None] | None] | None = None,
        extra_dbs: int = 16,
        metrics: Any = None,
    ) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._max_map_size = max(map_size, max_map_size or map_size)
        self.env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=len(DB_NAMES) + extra_dbs,
            subdir=True,
            sync=True,
            metasync=True,
            writemap=False,
            map_async=False,
            readahead=False,
            # zero-fill freshly malloc'd pages before they are written: without it the unused part
            # of a page carries leftover heap memory (documents' plaintext, keys) into the file
            meminit=True,
            max_readers=1024,
            lock=True,
        )
        os.chmod(path / "data.mdb", 0o600)
        os.chmod(path / "lock.mdb", 0o600)
        self._dbs = {n: self.env.open_db(n.encode()) for n in DB_NAMES}
        self._gate = _Gate()
        self._open = True
        self._writer = Writer(
            self.env,
            lambda txn: _WriteTxn(txn, self._dbs),
            grow=self._grow if self._max_map_size > map_size else None,
            journal=journal,
            after_commit=after_commit,
            max_batch_units=max_batch_units,
            max_batch_bytes=max_batch_bytes,
            metrics=metrics,
        )

    # --- the Store interface -------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[_ReadTxn]:
        if not self._open:
            raise Unavailable("the store is closed")
        with self._gate.shared(), self.env.begin(write=False, buffers=True) as txn:
            yield _ReadTxn(txn, self._dbs)

    def submit(self, unit: Callable[[Any], T], size_hint: int = 0) -> Future[Committed[T]]:
        if not self._open:
            raise Unavailable("the store is closed")
        return self._writer.submit(unit, size_hint)

    def write(self, unit: Callable[[Any], T], size_hint: int = 0) -> Committed[T]:
        return self.submit(unit, size_hint).result()

    def stats(self) -> StoreStats:
        with self._gate.shared():  # the map's meta pages move when it grows
            info = self.env.info()
            st = self.env.stat()
        used = (info["last_pgno"] + 1) * st["psize"]
        return StoreStats(
            map_size=int(info["map_size"]),
            used_bytes=int(used),
            batches=self._writer.batches,
            units=self._writer.units,
        )

    def is_open(self) -> bool:
        return self._open and self._writer.alive()

    def close(self) -> None:
        if not self._open:
            return
        self._writer.stop()
        self._open = False
        self.env.close()

    # --- extras for other layers ----------------------------------------------------------------

    def databases(self) -> dict[str, Any]:
        """The store's named database handles by name (``vaults``, ``objects``, ``versions``,
        ``chunks``...), for read-only statistics such as ``vaultd.metrics.lmdb_storage_source``."""
        return dict(self._dbs)

    @contextmanager
    def raw_read(self) -> Iterator[lmdb.Transaction]:
        """A plain LMDB read transaction (values as bytes) of the store's environment, for other
        layers reading their own databases (the journal, the metrics scrape). It holds the same gate
        as :meth:`read`: growing the map waits for it, and it waits while the map grows. Every read
        transaction of this process must be opened here or by :meth:`read`, never by
        ``env.begin()``: growing the map ends any other one (LMDB requires none to be open; py-lmdb
        invalidates them)."""
        if not self._open:
            raise Unavailable("the store is closed")
        with self._gate.shared(), self.env.begin(write=False) as txn:
            yield txn

    def open_db(self, name: str) -> Any:
        """Open (creating) a named database for another layer, e.g. the journal. Call at start-up."""
        if name in DB_NAMES:
            raise ValueError(f"database {name!r} belongs to the store")
        return self.env.open_db(name.encode())

    def _grow(self) -> bool:
        """Called on the writer thread with no write txn open: double the map up to the maximum."""
        current = int(self.env.info()["map_size"])
        if current >= self._max_map_size:
            return False
        new = min(current * 2, self._max_map_size)
        with self._gate.exclusive():
            self.env.set_mapsize(new)
        return True


def open_store(path: Path, **kw: Any) -> LmdbStore:
    try:
        return LmdbStore(path, **kw)
    except lmdb.MapFullError as e:  # pragma: no cover - opening never needs space
        raise ResourceExhausted(f"the store at {path} is full: {e}") from None
