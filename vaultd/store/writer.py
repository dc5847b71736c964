"""The single writer: one thread owns every LMDB write transaction and commits in groups.

Units of work ``fn(txn) -> result`` queue up from any thread. The writer takes as many as are waiting
(up to a count and a byte budget), runs each in a nested transaction of one write transaction (a unit
that raises drops only its own changes), appends the journal leaves each successful unit asked for in
that same transaction, commits once (one fsync), then calls ``after_commit`` (where the journal makes
the batch's signed tree head current and attaches each unit's evidence) and only then resolves the
futures. A deposit is thus acknowledged only once durable. What ``after_commit`` returns, if callable,
runs once the futures are resolved: work no acknowledgement needs to wait for.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import lmdb

from vaultd.errors import ResourceExhausted, Unavailable
from vaultd.store.interface import Committed

__all__ = ["Writer", "Journal", "JournalBatch"]

log = logging.getLogger(__name__)


class JournalBatch(Protocol):
    """The journal appends of one batch (``Journal.begin``)."""

    def append(self, txn: Any, leaf: bytes) -> int:
        """Append a leaf in ``txn`` (the batch's transaction or a unit's child of it); return its
        index."""

    def savepoint(self) -> Any:
        """Taken before each unit, for :meth:`rollback`."""

    def rollback(self, savepoint: Any) -> None:
        """The unit's transaction was aborted: its appends are undone."""

    def close(self, committed: bool) -> None:
        """The batch is over; ``committed``: its transaction is durable."""


class Journal(Protocol):
    def begin(self, txn: Any) -> JournalBatch:
        """The batch's write transaction ``txn`` begins; its appends go through the batch returned."""

    def before_commit(self, txn: Any, batch: list[Committed[Any]]) -> None:
        """In the batch's transaction, every unit applied, just before the commit: work on the batch
        as a whole in the transaction (the journal signs its head and stores its note here;
        ``after_commit`` publishes it once the commit is durable; a commit that fails never reaches
        it). lmdb.MapFullError fails the batch as a full map; any other error is logged and the
        batch commits."""


@dataclass
class _Item:
    unit: Callable[[Any], Any]
    future: Future[Committed[Any]]
    size: int


_STOP = object()


class Writer:
    def __init__(
        self,
        env: lmdb.Environment,
        make_txn: Callable[[lmdb.Transaction], Any],
        *,
        grow: Callable[[], bool] | None,
        journal: Journal | None,
        after_commit: Callable[[list[Committed[Any]]], Callable[[], None] | None] | None,
        max_batch_units: int,
        max_batch_bytes: int,
        metrics: Any = None,
    ) -> None:
        self._env = env
        # vaultd.metrics.Metrics (or None): batch size, commit latency, queue depth
        self._metrics = metrics
        self._make_txn = make_txn
        self._grow = grow
        self._journal = journal
        self._after_commit = after_commit
        self._max_units = max_batch_units
        self._max_bytes = max_batch_bytes
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._carry: list[_Item] = []
        self.batches = 0
        self.units = 0
        self.last_batch_units = 0
        self.last_commit_seconds = 0.0
        self._stopping = False
        # Held across the check of _stopping and the put, and by stop() while it sets it and queues
        # _STOP: every unit accepted is queued before _STOP, so the writer commits it or fails it
        # in its drain; none is queued after the drain, where its future would never resolve.
        self._accepting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="vaultd-store-writer", daemon=True)
        self._thread.start()

    def submit(self, unit: Callable[[Any], Any], size: int = 0) -> Future[Committed[Any]]:
        f: Future[Committed[Any]] = Future()
        f.set_running_or_notify_cancel()
        with self._accepting:
            if self._stopping:
                raise Unavailable("the store is shutting down")
            self._q.put(_Item(unit, f, size))
        return f

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        with self._accepting:
            if not self._stopping:
                self._stopping = True
                self._q.put(_STOP)
        self._thread.join()

    # --- the writer thread ---------------------------------------------------------------------

    def _take_batch(self) -> tuple[list[_Item], bool]:
        batch: list[_Item] = self._carry
        self._carry = []
        stop = False
        if not batch:
            first = self._q.get()
            if first is _STOP:
                return [], True
            batch.append(first)
        size = sum(i.size for i in batch)
        while len(batch) < self._max_units and size < self._max_bytes:
            try:
                nxt = self._q.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                stop = True
                break
            batch.append(nxt)
            size += nxt.size
        if self._metrics is not None:
            self._metrics.set_writer_queue(self._q.qsize())
        return batch, stop

    def _run(self) -> None:
        while True:
            batch, stop = self._take_batch()
            if batch:
                try:
                    self._commit(batch)
                except BaseException as e:  # never leave a caller waiting forever
                    log.exception("store writer failed a batch")
                    for it in batch:
                        if not it.future.done():
                            it.future.set_exception(
                                e if isinstance(e, Exception) else Unavailable("store writer stopped")
                            )
            if stop:
                # drain what is left: fail it cleanly
                while True:
                    try:
                        it = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(it, _Item):
                        it.future.set_exception(Unavailable("the store is shutting down"))
                for it in self._carry:
                    it.future.set_exception(Unavailable("the store is shutting down"))
                return

    def _storage_error(self, e: lmdb.Error, batch_bytes: int) -> Exception:
        """A clear error for a commit that failed below LMDB. LMDB reports a short write as EIO, so
        a full disk is recognised by the free space left (or ENOSPC) rather than by the code alone."""
        try:
            st = os.statvfs(self._env.path())
            free = st.f_bavail * st.f_frsize
        except OSError:
            free = None
        if isinstance(e, lmdb.DiskError) or (free is not None and free < 2 * batch_bytes + (1 << 20)):
            return ResourceExhausted(
                "the disk holding the store is full: no more deposits can be stored; reads still work. "
                "Free disk space; nothing of the refused work was kept")
        return Unavailable(
            f"the store could not make the transaction durable ({e}); nothing of it was kept and reads "
            "still work. Retry later; if this persists, check the disk and restart the daemon")

    def _observe(self, units: int, t0: float, *, committed: bool) -> None:
        if self._metrics is not None:
            self._metrics.observe_commit(units, time.perf_counter() - t0, committed=committed)

    def _commit(self, batch: list[_Item]) -> None:
        t0 = time.perf_counter()
        ok: list[tuple[_Item, Committed[Any]]] = []
        failed: list[tuple[_Item, Exception]] = []
        map_full: list[_Item] = []
        later: Callable[[], None] | None = None
        txn = self._env.begin(write=True)
        appends: JournalBatch | None = None
        committed = False
        try:
            if self._journal is not None:
                appends = self._journal.begin(txn)
            for it in batch:
                child = self._env.begin(write=True, parent=txn)
                view = self._make_txn(child)
                savepoint = appends.savepoint() if appends is not None else None
                if appends is not None and hasattr(view, "appender"):
                    # leaves go into the journal as the unit records them, so it knows their index
                    view.appender = lambda leaf, child=child, appends=appends: appends.append(child, leaf)
                try:
                    value = it.unit(view)
                    leaves = [bytes(leaf) for leaf in getattr(view, "leaves", [])]
                    idx: list[int] = list(getattr(view, "leaf_indexes", []))
                    if appends is not None:
                        for leaf in leaves[len(idx):]:  # a view that does not append itself
                            idx.append(appends.append(child, leaf))
                    child.commit()
                    ok.append((it, Committed(value, leaves, idx)))
                except lmdb.MapFullError:
                    child.abort()
                    if appends is not None:
                        appends.rollback(savepoint)
                    map_full.append(it)
                except Exception as e:
                    child.abort()
                    if appends is not None:
                        appends.rollback(savepoint)
                    failed.append((it, e))
            if ok and self._journal is not None:
                try:
                    self._journal.before_commit(txn, [c for _, c in ok])
                except lmdb.MapFullError:  # the transaction cannot commit: the batch meets a full map
                    raise
                except Exception:  # evidence work never fails the data; after_commit signs from storage
                    log.exception("journal before_commit failed")
            txn.commit()
            committed = True
        except lmdb.MapFullError:
            txn.abort()
            map_full.extend(it for it, _ in ok)
            ok = []
        except lmdb.Error as e:  # the commit failed (a full disk, a failed write or fsync): nothing kept
            txn.abort()
            self._observe(len(batch), t0, committed=False)
            raise self._storage_error(e, sum(it.size for it in batch)) from None
        except BaseException:
            txn.abort()
            self._observe(len(batch), t0, committed=False)
            raise
        finally:
            if appends is not None:
                appends.close(committed)
        self.last_commit_seconds = time.perf_counter() - t0
        self._observe(len(ok), t0, committed=bool(ok))
        if ok:
            self.batches += 1
            self.units += len(ok)
            self.last_batch_units = len(ok)
            if self._after_commit is not None:
                try:
                    later = self._after_commit([c for _, c in ok])
                except Exception:  # the data is durable; evidence may be missing, never the ack
                    log.exception("after_commit hook failed")
        for it, c in ok:
            it.future.set_result(c)
        for it, exc in failed:
            it.future.set_exception(exc)
        if later is not None:
            try:
                later()
            except Exception:
                log.exception("after_commit's later work failed")
        if map_full:
            grown = False
            if self._grow is not None:
                try:
                    grown = self._grow()
                except Exception:
                    log.exception("growing the map failed")
            for it in map_full:
                if grown:  # the map at most doubles up to its maximum, so this ends
                    self._carry.append(it)
                else:
                    it.future.set_exception(
                        ResourceExhausted(
                            "the storage map is full: no more deposits can be stored; reads still work. "
                            "Raise map_size (or max_map_size, up to which the map grows by itself) in the "
                            "daemon's configuration and restart it, or free space by destroying objects"
                        )
                    )
