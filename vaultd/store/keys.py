"""Key layout of the LMDB databases (bytes in, bytes out; no I/O).

LMDB keys are at most 511 bytes. A vault id is at most 128 bytes and an object name at most 1024, so
names longer than ``NAME_KEY_MAX`` bytes are keyed by their first ``NAME_KEY_MAX`` bytes, a 0x01 byte
(a control character, which no valid name contains, so no short name can collide) and 16 bytes of
their SHA-256.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = [
    "NAME_KEY_MAX",
    "name_key",
    "object_key",
    "object_prefix",
    "version_key",
    "split_version",
    "chunk_key",
    "vault_prefix",
    "request_key",
]

NAME_KEY_MAX = 384
SEP = b"\x00"
_Q = struct.Struct(">Q")


def vault_prefix(vault: str) -> bytes:
    return vault.encode("ascii") + SEP


def name_key(name: str) -> bytes:
    b = name.encode("utf-8")
    if len(b) <= NAME_KEY_MAX:
        return b
    return b[:NAME_KEY_MAX] + b"\x01" + hashlib.sha256(b).digest()[:16]


def object_key(vault: str, name: str) -> bytes:
    return vault_prefix(vault) + name_key(name)


def object_prefix(vault: str, prefix: str) -> bytes:
    """The key prefix every object whose name starts with ``prefix`` shares (a superset for long ones)."""
    return vault_prefix(vault) + prefix.encode("utf-8")[:NAME_KEY_MAX]


def version_key(vault: str, name: str, version: int) -> bytes:
    return object_key(vault, name) + SEP + _Q.pack(version)


def split_version(key: bytes) -> int:
    (v,) = _Q.unpack(key[-8:])
    return int(v)


def chunk_key(vault: str, chunk_id: bytes) -> bytes:
    return vault_prefix(vault) + chunk_id


def request_key(vault: str, actor: str, request_id: str) -> bytes:
    # actor ("kind:name") and request id are bounded by the core; hash them so the key stays short.
    h = hashlib.sha256(actor.encode("utf-8") + SEP + request_id.encode("utf-8")).digest()
    return vault_prefix(vault) + h
