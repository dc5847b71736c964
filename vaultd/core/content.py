"""Content operations of the deposit and read paths, over the Rust core (``vaultd.crypto``).

Chunk ids are keyed BLAKE3 of the plaintext under the vault's dedup key; chunks are sealed with
AES-256-GCM under the vault's data key with associated data ``aad_prefix(vault, data key version) ||
chunk id``. A stored chunk is ``nonce(12) || ciphertext || tag(16)``. Opening checks every tag and
re-derives every id from the plaintext (constant-time comparison, in Rust); a failure raises
IntegrityError and hands out no byte.

A version's record and manifest are authenticated by ``version_mac``: keyed BLAKE3 under a key
derived (BLAKE3 ``derive_key``, a context of its own) from the data key its chunks are sealed with,
over a length-prefixed encoding of the version's immutable facts and its manifest bytes.

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
    "version_mac",
]

ID_LEN = crypto.HASH_SIZE
NONCE_LEN = crypto.NONCE_SIZE
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")
_q = struct.Struct(">q")
# The BLAKE3 derive_key context of the version record MAC key: fixed, used for nothing else.
_VERSION_MAC_CONTEXT = "vaultd 2026-12-02 version record MAC v1"

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


def version_mac(keys: VaultKeys, facts: Sequence[bytes | str | int | None], manifest: bytes) -> bytes:
    """The MAC of one version: keyed BLAKE3 under a key derived from ``keys.data_key``, over the
    data key version, then each fact and the manifest, each tagged with its type and bytes carrying
    their length, so that no two different lists of facts encode alike: ``b`` (bytes) or ``s``
    (UTF-8 text) + length (8 bytes) + bytes, ``i`` + signed 64-bit integer, ``n`` for None.
    Raises TypeError for any other fact (an int out of range: struct.error)."""
    out = [b"vaultd/version/v1\x00", _I.pack(keys.data_key_version)]
    for f in facts:
        if f is None:
            out.append(b"n")
        elif type(f) is int:
            out += (b"i", _q.pack(f))
        elif type(f) is str:
            b = f.encode("utf-8", "surrogatepass")
            out += (b"s", _Q.pack(len(b)), b)
        elif type(f) is bytes:
            out += (b"b", _Q.pack(len(f)), f)
        else:
            raise TypeError(f"a version fact of type {type(f).__name__}")
    out += (b"b", _Q.pack(len(manifest)), manifest)
    key = crypto.blake3_derive_key(_VERSION_MAC_CONTEXT, keys.data_key)
    return crypto.blake3_keyed(key, b"".join(out))


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
