"""Content operations of the deposit and read paths: chunk boundaries, chunk ids, sealing, opening.

The one place the core turns plaintext into sealed chunks and back. Chunk ids are keyed BLAKE3 of the
plaintext under the vault's dedup key; chunks are sealed with AES-256-GCM under the vault's data key,
``nonce(12) || ciphertext || tag(16)``, with associated data ``aad_prefix(vault, data key version) ||
chunk id``. Opening checks the tag, then re-derives the id from the plaintext and compares it in
constant time; a failure raises IntegrityError and hands out no byte.

Backend: these functions run on ``vaultd.crypto`` (the Rust core) when it offers ``ingest``-level
primitives; until then they run on ``cryptography`` (AES-GCM, OpenSSL), ``blake3`` and ``pyfastcdc``
with the same parameters (FastCDC 2020, normalisation level 1, 64 KiB / 256 KiB / 1 MiB).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultd.errors import IntegrityError

__all__ = [
    "MIN_CHUNK",
    "AVG_CHUNK",
    "MAX_CHUNK",
    "ID_LEN",
    "aad_prefix",
    "boundaries",
    "chunk_id",
    "seal",
    "open_chunk",
    "Sha256",
]

MIN_CHUNK = 64 * 1024
AVG_CHUNK = 256 * 1024
MAX_CHUNK = 1024 * 1024
ID_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
_I = struct.Struct(">I")

try:  # pragma: no cover - depends on the extension being built
    from vaultd import crypto as _crypto  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _crypto = None

import blake3 as _blake3
from pyfastcdc import FastCDC as _FastCDC

_cdc = _FastCDC(avg_size=AVG_CHUNK)


def aad_prefix(vault: str, data_key_version: int) -> bytes:
    return b"vaultd/chunk/v1\x00" + vault.encode("ascii") + b"\x00" + _I.pack(data_key_version)


def boundaries(data: Any) -> list[int]:
    """End offsets of the content-defined chunks of ``data`` (the last one is ``len(data)``)."""
    if len(data) == 0:
        return []
    return [c.offset + c.length for c in _cdc.cut_buf(data)]


def chunk_id(dedup_key: bytes, data: Any) -> bytes:
    return _blake3.blake3(data, key=dedup_key).digest()


def seal(data_key: bytes, prefix: bytes, cid: bytes, data: Any) -> bytes:
    nonce = secrets.token_bytes(NONCE_LEN)
    return nonce + AESGCM(data_key).encrypt(nonce, bytes(data), prefix + cid)


def open_chunk(data_key: bytes, dedup_key: bytes, prefix: bytes, cid: bytes, sealed: bytes) -> bytes:
    """Open one sealed chunk and check that its plaintext hashes back to ``cid``."""
    if len(sealed) < NONCE_LEN + TAG_LEN:
        raise IntegrityError(f"chunk {cid.hex()[:16]} is truncated")
    try:
        plain = AESGCM(data_key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], prefix + cid)
    except InvalidTag:
        raise IntegrityError(f"chunk {cid.hex()[:16]} failed authentication (tag mismatch)") from None
    if not hmac.compare_digest(chunk_id(dedup_key, plain), cid):
        raise IntegrityError(f"chunk {cid.hex()[:16]} does not hash back to its id")
    return plain


def open_many(
    data_key: bytes, dedup_key: bytes, prefix: bytes, items: Sequence[tuple[bytes, bytes]]
) -> list[bytes]:
    return [open_chunk(data_key, dedup_key, prefix, cid, sealed) for cid, sealed in items]


class Sha256:
    """A streaming SHA-256 of the whole document."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, data: Any) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()
