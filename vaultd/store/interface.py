"""The store interface: what the core needs from storage, and nothing more.

The store is a set of typed key/value namespaces (vaults, objects, versions, manifests, chunks with
reference counts, request ids, pending deposits, vaults being purged) read in short read transactions and written by units
of work that one writer commits in groups. Records are opaque bytes: the core encodes them, the store
never interprets them. That keeps the interface narrow enough for chunk bytes to move to an object
store (Ceph RADOS, S3) later while metadata stays in LMDB.

Every implementation must pass the conformance suite in ``tests/store/test_conformance.py``.

Names: ``vault`` is a validated vault id (ASCII, at most 128 bytes); ``name`` an object name (UTF-8,
1..1024 bytes, no NUL or control characters); ``chunk_id`` 32 bytes; ``version`` a positive int.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["ReadTxn", "WriteTxn", "Store", "Committed", "StoreStats", "T"]

T = TypeVar("T")


class ReadTxn(Protocol):
    """A consistent snapshot. Valid only inside ``Store.read()`` or a unit of work."""

    def get_vault(self, vault: str) -> bytes | None:
        """The vault's record, or None if the vault does not exist."""

    def iter_vaults(self, after: str | None = None) -> Iterator[tuple[str, bytes]]:
        """Every vault with its record, in vault id order; strictly after ``after`` when given."""

    def get_object(self, vault: str, name: str) -> bytes | None:
        """The object head (version counter, latest live version), or None if never deposited."""

    def iter_objects(self, vault: str, prefix: str = "", after: str | None = None) -> Iterator[tuple[str, bytes]]:
        """(name, head) for each object whose name starts with ``prefix``, in key order, starting
        strictly after the object ``after`` when given. Key order is name byte order for names up to
        384 bytes; longer names sort by their first 384 bytes, then by a digest."""

    def get_version(self, vault: str, name: str, version: int) -> bytes | None:
        """The record of one version, or None."""

    def iter_versions(self, vault: str, name: str, reverse: bool = False,
                      after: int = 0) -> Iterator[tuple[int, bytes]]:
        """(version, record) of every stored version of one object above ``after``, ascending (or
        descending)."""

    def get_manifest(self, vault: str, name: str, version: int) -> bytes | None:
        """The manifest (chunk list) of one version, or None."""

    def get_chunk(self, vault: str, chunk_id: bytes) -> bytes | None:
        """The sealed bytes of one chunk, or None. Returned bytes are a copy, safe after the txn."""

    def chunk_view(self, vault: str, chunk_id: bytes) -> memoryview | None:
        """The sealed bytes of one chunk without a copy, or None: valid only while the read
        transaction is open (used and dropped inside it)."""

    def chunk_refs(self, vault: str, chunk_id: bytes) -> int:
        """The reference count of one chunk; 0 when the chunk is absent."""

    def iter_chunks(self, vault: str) -> Iterator[tuple[bytes, int]]:
        """(chunk_id, refcount) of every chunk of a vault, in id order."""

    def get_request(self, vault: str, actor: str, request_id: str) -> bytes | None:
        """The record remembered for an idempotent request, or None."""

    def iter_pending(self) -> Iterator[tuple[bytes, bytes]]:
        """(deposit_key, record) of every pending (staged, not yet committed) deposit part."""

    def is_purging(self, vault: str) -> bool:
        """True while a vault's records are still being removed after its keys were shredded."""

    def iter_purging(self) -> Iterator[str]:
        """Every vault whose records are still being removed, in vault id order."""


class WriteTxn(ReadTxn, Protocol):
    """A unit of work's view of the write transaction. Used only on the writer thread."""

    raw: Any  # the backend transaction, for the journal to write in the same transaction

    def put_vault(self, vault: str, record: bytes) -> None:
        """Create or replace a vault's record."""

    def delete_vault(self, vault: str) -> bool:
        """Remove a vault's record; True if it existed."""

    def put_object(self, vault: str, name: str, head: bytes) -> None:
        """Create or replace an object head."""

    def delete_object(self, vault: str, name: str) -> bool:
        """Remove an object head; True if it existed."""

    def put_version(self, vault: str, name: str, version: int, record: bytes, manifest: bytes) -> None:
        """Store a version record and its manifest together."""

    def delete_version(self, vault: str, name: str, version: int) -> bool:
        """Remove a version record and its manifest; True if it existed."""

    def add_chunk_ref(self, vault: str, chunk_id: bytes, sealed: Buffer | None) -> int:
        """Add one reference to a chunk and return the new count.

        When the chunk is absent, ``sealed`` must be given and is stored; when it is present,
        ``sealed`` is ignored. Raises KeyError if the chunk is absent and ``sealed`` is None."""

    def drop_chunk_ref(self, vault: str, chunk_id: bytes) -> int:
        """Remove one reference and return the new count; the chunk bytes go at zero.
        Raises KeyError if the chunk is absent."""

    def put_request(self, vault: str, actor: str, request_id: str, record: bytes) -> None:
        """Remember the outcome of an idempotent request."""

    def delete_requests(self, vault: str) -> int:
        """Forget every request of a vault (when the vault is destroyed); returns how many."""

    def purge_vault(self, vault: str, limit: int) -> int:
        """Remove up to ``limit`` records (objects, versions, manifests, chunks, references) of a vault
        whose keys are gone; returns how many were removed (0 when nothing is left)."""

    def put_purging(self, vault: str) -> None:
        """Mark a vault as being purged (set with the shredding of its keys, in the same unit)."""

    def delete_purging(self, vault: str) -> bool:
        """Clear a vault's purge mark (with the removal of its last record); True if it was set."""

    def put_pending(self, deposit_key: bytes, record: bytes) -> None:
        """Record a staged part of a deposit not yet committed (for cleanup after a crash)."""

    def delete_pending(self, deposit_key: bytes) -> bool:
        """Forget a staged part once committed or rolled back."""

    def journal(self, leaf: bytes) -> int | None:
        """Append ``leaf`` to the journal in this same transaction (if the unit fails, its leaves go
        with its other changes); returns the leaf's index, or None when no journal is wired."""


@dataclass
class Committed(Generic[T]):
    """A unit's outcome after its batch is durable: its value, journal leaves and evidence."""

    value: T
    leaves: list[bytes] = field(default_factory=list)
    leaf_indexes: list[int] = field(default_factory=list)
    evidence: bytes | None = None


@dataclass(frozen=True)
class StoreStats:
    map_size: int
    used_bytes: int
    batches: int
    units: int


class Store(Protocol):
    def read(self) -> AbstractContextManager[ReadTxn]:
        """A short read transaction. Never hold it across waits on the network."""

    def submit(self, unit: Callable[[WriteTxn], T]) -> Future[Committed[T]]:
        """Queue a unit of work. The writer runs it in a nested transaction of the next batch;
        if it raises, only its own changes are dropped and the future carries its exception. The
        future resolves only once the batch is durable (fsync done). A full map fails the unit with
        ResourceExhausted (after growing the map and retrying once, when growth is configured)."""

    def write(self, unit: Callable[[WriteTxn], T]) -> Committed[T]:
        """``submit(unit).result()``: run a unit and wait until it is durable."""

    def stats(self) -> StoreStats:
        """Map size, bytes in use, batches and units committed so far."""

    def is_open(self) -> bool:
        """True while the store accepts reads and writes."""

    def close(self) -> None:
        """Finish queued units, stop the writer and close the environment."""
