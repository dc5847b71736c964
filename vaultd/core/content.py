"""Content operations of the deposit and read paths, over the Rust core (``vaultd.crypto``).

Chunk ids are keyed BLAKE3 of the plaintext under the vault's dedup key; chunks are sealed with
AES-256-GCM under the vault's data key with associated data ``aad_prefix(vault, data key version) ||
chunk id``. A stored chunk is ``nonce(12) || ciphertext || tag(16)``. Opening checks every tag and
re-derives every id from the plaintext (constant-time comparison, in Rust); a failure raises
IntegrityError and hands out no byte.

``metrics`` (a ``vaultd.metrics.Metrics`` or None) records each Rust call: its operation, items
(chunks), bytes and time, two clock reads per call of megabytes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Container, Sequence
from typing import Any

from vaultd import crypto
from vaultd.keys.envelope import VaultKeys

__all__ = [
    "ID_LEN",
    "NONCE_LEN",
    "aad_prefix",
    "ingest",
    "chunk_id",
    "open_many",
    "Sha256",
]

ID_LEN = crypto.HASH_SIZE
NONCE_LEN = crypto.NONCE_SIZE
_I = struct.Struct(">I")

Sha256 = crypto.Sha256Hasher


def aad_prefix(vault: str, data_key_version: int) -> bytes:
    return b"vaultd/chunk/v1\x00" + vault.encode("ascii") + b"\x00" + _I.pack(data_key_version)


def ingest(
    buf: Any, keys: VaultKeys, prefix: bytes, *, last: bool, known: Container[bytes], hasher: Any,
    metrics: Any = None,
) -> list[Any]:
    """Cut, identify and seal one buffer (see ``vaultd.crypto.ingest``); known ids are not sealed."""
    if metrics is None:
        return crypto.ingest(buf, keys.dedup_key, keys.data_key, prefix, last=last, known=known, hasher=hasher)
    started = time.perf_counter()
    chunks = crypto.ingest(buf, keys.dedup_key, keys.data_key, prefix, last=last, known=known, hasher=hasher)
    metrics.observe_crypto("ingest", len(chunks), len(buf), time.perf_counter() - started)
    return chunks


def chunk_id(dedup_key: bytes, data: Any) -> bytes:
    return crypto.blake3_keyed(dedup_key, data)


def open_many(
    keys: VaultKeys, prefix: bytes, ids: Sequence[bytes], stored: Sequence[bytes], metrics: Any = None,
    groups: Sequence[int] | None = None, field: int | None = None,
) -> list[bytes]:
    """Open stored chunks in one call (parallel in Rust); IntegrityError names the lowest bad one.
    With ``groups``, consecutive chunks come back joined, and with ``field`` framed as that protobuf
    field (see :func:`vaultd.crypto.open_chunks`). ``stored`` may be views into a read transaction."""
    views = [memoryview(s) for s in stored]
    for cid, v in zip(ids, views, strict=True):
        if len(v) < NONCE_LEN + crypto.TAG_SIZE:
            from vaultd.errors import IntegrityError

            raise IntegrityError(f"chunk {cid.hex()[:16]} is truncated")
    started = time.perf_counter() if metrics is not None else 0.0
    plains = crypto.open_chunks(
        keys.data_key, keys.dedup_key, prefix, list(ids), [v[:NONCE_LEN] for v in views], [v[NONCE_LEN:] for v in views],
        groups, field,
    )
    if metrics is not None:
        metrics.observe_crypto("open", len(views), sum(len(v) for v in views), time.perf_counter() - started)
    return plains
