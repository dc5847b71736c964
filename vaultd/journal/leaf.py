"""The canonical encoding of one journal entry (a leaf of the Merkle tree).

Why a length-prefixed binary encoding and not canonical JSON or CBOR: a leaf is hashed, so its bytes
must be one function of its content. A fixed field order with explicit lengths has exactly one
encoding for each value, needs no canonicalisation rules (number formats, Unicode escapes, key order,
duplicate keys), and is a few dozen lines to re-implement in any language for an independent check.

Version 1 layout (all integers big-endian)::

    u8     version            = 1
    str8   operation          [a-z][a-z0-9_.-]{0,31}
    str16  vault              0..128 bytes UTF-8 ("" for store-wide operations)
    str16  object name        0..1024 bytes UTF-8 ("" when none)
    u64    object version     0 when none
    bytes8 content sha256     empty, or exactly 32 bytes
    str8   actor kind         0..16 bytes ("service", "citizen", "operator")
    str16  actor name         0..256 bytes
    str16  kiosk              0..256 bytes ("" when none)
    u64    time               nanoseconds since the Unix epoch (UTC)
    str8   outcome            [a-z][a-z0-9_.-]{0,31} ("ok", "denied", "failed", ...)
    u8     extra count        0..32
    extra* str8 key (1..64 bytes, [a-z0-9_.-], strictly ascending)  bytes16 value (0..4096 bytes)

``strN``/``bytesN`` are an N-bit length followed by that many bytes. Decoding is strict: every length is
bounded, strings are valid UTF-8 without control characters, and no byte may follow the last field.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vaultd import crypto as _crypto
from vaultd.errors import InvalidArgument

__all__ = ["LEAF_VERSION", "MAX_LEAF_SIZE", "EncodedLeaf", "Leaf", "LeafError", "Op", "Outcome"]

LEAF_VERSION = 1


class Op:
    """Operation names of version 1 (other tokens are accepted for forward compatibility)."""

    CREATE_VAULT = "create_vault"
    DEPOSIT = "deposit"
    READ = "read"
    DESTROY = "destroy"
    DESTROY_VAULT = "destroy_vault"
    RETENTION = "retention"
    HOLD = "hold"
    SIGN = "sign"
    LOGIN = "login"
    ROTATE_KEYS = "rotate_keys"
    RETIRE_KEY = "retire_key"
    CHECK = "check"


class Outcome:
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


_TOKEN = re.compile(r"[a-z][a-z0-9_.-]{0,31}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXTRA_KEY = re.compile(r"[a-z0-9_.-]{1,64}\Z")
_MAX_EXTRA = 32
_MAX_EXTRA_VALUE = 4096
MAX_LEAF_SIZE = 1 + 33 + (2 + 128) + (2 + 1024) + 8 + 33 + 17 + 2 * (2 + 256) + 8 + 33 + 1 + _MAX_EXTRA * (
    65 + 2 + _MAX_EXTRA_VALUE
)
_U64_MAX = (1 << 64) - 1
_U64 = struct.Struct(">Q")


class EncodedLeaf(bytes):
    """The canonical bytes of a leaf that :meth:`Leaf.make_encoded` built, carrying the fields they
    encode, so that whoever appends them need not decode them: ``operation`` and ``outcome`` (all
    the store writer looks at for most leaves) and ``leaf``, the :class:`Leaf` itself, built only
    when asked for."""

    _fields: tuple[Any, ...]  # the Leaf's fields, in its order

    @property
    def operation(self) -> str:
        return str(self._fields[0])

    @property
    def outcome(self) -> str:
        return str(self._fields[8])

    @property
    def leaf(self) -> Leaf:
        return Leaf(*self._fields)

    def with_version(self, version: int) -> EncodedLeaf:
        """The same leaf for another object version, re-encoding nothing but that fixed-width field:
        a deposit's leaf is made (and validated) before the store's writer assigns the version, so
        the writer, which serialises every commit, only splices in eight bytes."""
        if not isinstance(version, int) or not 0 <= version <= _U64_MAX:
            raise LeafError("leaf version: not an unsigned 64-bit integer")
        # the version follows the operation (1-byte length) and the vault and name (2-byte lengths)
        at = 2 + self[1]
        at += 2 + ((self[at] << 8) | self[at + 1])
        at += 2 + ((self[at] << 8) | self[at + 1])
        out = EncodedLeaf(b"".join((self[:at], _U64.pack(version), self[at + 8:])))
        f = self._fields
        out._fields = (f[0], f[1], f[2], version, *f[4:])
        return out


class LeafError(InvalidArgument):
    """A journal leaf is malformed (when encoding) or not a valid version-1 leaf (when decoding)."""


def _check_text(what: str, value: str, limit: int) -> bytes:
    if not isinstance(value, str):
        raise LeafError(f"leaf {what}: expected text")
    raw = value.encode("utf-8")
    if len(raw) > limit:
        raise LeafError(f"leaf {what}: {len(raw)} bytes, at most {limit}")
    if _CONTROL.search(value):
        raise LeafError(f"leaf {what}: control characters are not allowed")
    return raw


@dataclass(frozen=True, slots=True)
class Leaf:
    """One journal entry. ``extra`` holds optional evidence: a read's requester, a signature's digest."""

    operation: str
    vault: str
    name: str
    version: int
    sha256: bytes | None
    actor_kind: str
    actor_name: str
    time_ns: int
    outcome: str = Outcome.OK
    kiosk: str = ""
    extra: tuple[tuple[str, bytes], ...] = field(default=())

    @staticmethod
    def make(
        operation: str,
        *,
        vault: str = "",
        name: str = "",
        version: int = 0,
        sha256: bytes | None = None,
        actor: object | None = None,
        actor_kind: str = "",
        actor_name: str = "",
        kiosk: str = "",
        time_ns: int,
        outcome: str = Outcome.OK,
        extra: Mapping[str, bytes | str] | None = None,
    ) -> Leaf:
        """Build a leaf, validated by encoding it; ``actor`` may be a :class:`vaultd.types.Identity`
        (kind, name, kiosk)."""
        return Leaf.make_encoded(operation, vault=vault, name=name, version=version, sha256=sha256, actor=actor,
                                 actor_kind=actor_kind, actor_name=actor_name, kiosk=kiosk, time_ns=time_ns,
                                 outcome=outcome, extra=extra).leaf

    @staticmethod
    def make_encoded(
        operation: str,
        *,
        vault: str = "",
        name: str = "",
        version: int = 0,
        sha256: bytes | None = None,
        actor: object | None = None,
        actor_kind: str = "",
        actor_name: str = "",
        kiosk: str = "",
        time_ns: int,
        outcome: str = Outcome.OK,
        extra: Mapping[str, bytes | str] | None = None,
    ) -> EncodedLeaf:
        """The canonical bytes of the leaf :meth:`make` builds (validated, encoded once), as an
        :class:`EncodedLeaf` that carries its fields. No :class:`Leaf` is built: every deposit makes
        its leaf on a gRPC thread, and the store writer needs only its operation and outcome."""
        if actor is not None:
            actor_kind = str(getattr(actor, "kind"))
            actor_name = str(getattr(actor, "name"))
            kiosk = getattr(actor, "kiosk", None) or ""
        items = tuple(
            sorted((k, v.encode("utf-8") if isinstance(v, str) else bytes(v)) for k, v in extra.items())
        ) if extra else ()
        fields = (operation, vault, name, version, sha256, actor_kind, actor_name, time_ns, outcome, kiosk, items)
        out = EncodedLeaf(_encode_fields(fields))
        out._fields = fields
        return out

    @property
    def extra_dict(self) -> dict[str, bytes]:
        return dict(self.extra)

    def encode(self) -> bytes:
        """The canonical bytes (see :func:`_encode_fields`)."""
        return _encode_fields((self.operation, self.vault, self.name, self.version, self.sha256, self.actor_kind,
                               self.actor_name, self.time_ns, self.outcome, self.kiosk, self.extra))

    def encode_reference(self) -> bytes:
        """The canonical bytes, field by field in Python: the reference the core's encoder is
        tested against, and the error naming the first field that is not valid."""
        out = bytearray([LEAF_VERSION])
        for what, token in (("operation", self.operation),):
            if not isinstance(token, str) or not _TOKEN.match(token):
                raise LeafError(f"leaf {what}: {token!r} is not a lowercase token of at most 32 bytes")
            out += bytes([len(token)]) + token.encode()
        for what, value, limit in (("vault", self.vault, 128), ("name", self.name, 1024)):
            raw = _check_text(what, value, limit)
            out += struct.pack(">H", len(raw)) + raw
        if not isinstance(self.version, int) or not 0 <= self.version <= _U64_MAX:
            raise LeafError("leaf version: not an unsigned 64-bit integer")
        out += struct.pack(">Q", self.version)
        digest = b"" if self.sha256 is None else bytes(self.sha256)
        if len(digest) not in (0, 32):
            raise LeafError(f"leaf sha256: {len(digest)} bytes, expected 32")
        out += bytes([len(digest)]) + digest
        raw = _check_text("actor kind", self.actor_kind, 16)
        out += bytes([len(raw)]) + raw
        for what, value in (("actor name", self.actor_name), ("kiosk", self.kiosk)):
            raw = _check_text(what, value, 256)
            out += struct.pack(">H", len(raw)) + raw
        if not isinstance(self.time_ns, int) or not 0 <= self.time_ns <= _U64_MAX:
            raise LeafError("leaf time: not an unsigned 64-bit number of nanoseconds")
        out += struct.pack(">Q", self.time_ns)
        if not isinstance(self.outcome, str) or not _TOKEN.match(self.outcome):
            raise LeafError(f"leaf outcome: {self.outcome!r} is not a lowercase token of at most 32 bytes")
        out += bytes([len(self.outcome)]) + self.outcome.encode()
        if len(self.extra) > _MAX_EXTRA:
            raise LeafError(f"leaf extra: {len(self.extra)} entries, at most {_MAX_EXTRA}")
        out.append(len(self.extra))
        previous = ""
        for ekey, evalue in self.extra:
            if not isinstance(ekey, str) or not _EXTRA_KEY.match(ekey):
                raise LeafError(f"leaf extra key {ekey!r}: 1..64 of [a-z0-9_.-]")
            if previous and ekey <= previous:
                raise LeafError("leaf extra: keys must be unique and sorted")
            previous = ekey
            raw_value = bytes(evalue)
            if len(raw_value) > _MAX_EXTRA_VALUE:
                raise LeafError(f"leaf extra {ekey}: {len(raw_value)} bytes, at most {_MAX_EXTRA_VALUE}")
            out += bytes([len(ekey)]) + ekey.encode() + struct.pack(">H", len(raw_value)) + raw_value
        return bytes(out)

    @staticmethod
    def decode(data: bytes) -> Leaf:
        """Decode a version-1 leaf; raise :class:`LeafError` naming the first field that is wrong."""
        data = bytes(data)
        leaf = _decode_valid(data)
        return leaf if leaf is not None else Leaf._decode_strict(data)

    @staticmethod
    def _decode_strict(data: bytes) -> Leaf:
        """Field by field, naming the first one that is wrong (what :meth:`decode` does for a leaf
        its fast path does not accept)."""
        if len(data) > MAX_LEAF_SIZE:
            raise LeafError(f"leaf: {len(data)} bytes, more than any valid leaf")
        r = _Reader(data)
        version = r.u8("version")
        if version != LEAF_VERSION:
            raise LeafError(f"leaf: unknown encoding version {version}")
        operation = r.token("operation")
        vault = r.text("vault", 2, 128)
        name = r.text("name", 2, 1024)
        obj_version = r.u64("object version")
        n = r.u8("sha256 length")
        if n not in (0, 32):
            raise LeafError(f"leaf sha256: {n} bytes, expected 0 or 32")
        sha = r.take(n, "sha256") if n else None
        actor_kind = r.text("actor kind", 1, 16)
        actor_name = r.text("actor name", 2, 256)
        kiosk = r.text("kiosk", 2, 256)
        time_ns = r.u64("time")
        outcome = r.token("outcome")
        count = r.u8("extra count")
        if count > _MAX_EXTRA:
            raise LeafError(f"leaf extra: {count} entries, at most {_MAX_EXTRA}")
        extra: list[tuple[str, bytes]] = []
        for _ in range(count):
            klen = r.u8("extra key length")
            key = r.take(klen, "extra key").decode("ascii", "replace")
            if not _EXTRA_KEY.match(key):
                raise LeafError(f"leaf extra key {key!r}: 1..64 of [a-z0-9_.-]")
            if extra and key <= extra[-1][0]:
                raise LeafError("leaf extra: keys must be unique and sorted")
            vlen = r.u16("extra value length")
            if vlen > _MAX_EXTRA_VALUE:
                raise LeafError(f"leaf extra {key}: {vlen} bytes, at most {_MAX_EXTRA_VALUE}")
            extra.append((key, r.take(vlen, "extra value")))
        if r.pos != len(data):
            raise LeafError(f"leaf: {len(data) - r.pos} unexpected bytes after the last field")
        leaf = Leaf(operation, vault, name, obj_version, sha, actor_kind, actor_name, time_ns, outcome, kiosk,
                    tuple(extra))
        return leaf

    def describe(self) -> dict[str, object]:
        """A readable form (for receipts shown to people and for ``vaultctl verify`` output)."""
        return {
            "operation": self.operation,
            "vault": self.vault,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256.hex() if self.sha256 else None,
            "actor": f"{self.actor_kind}:{self.actor_name}" if self.actor_kind else self.actor_name,
            "kiosk": self.kiosk or None,
            "time_ns": self.time_ns,
            "outcome": self.outcome,
            "extra": {k: v.hex() for k, v in self.extra},
        }


_U16 = struct.Struct(">H").unpack_from
_U64V = struct.Struct(">Q").unpack_from


def _decode_valid(d: bytes) -> Leaf | None:
    """The leaf, when ``d`` is a valid version-1 leaf, in one pass with no per-field calls; None for
    anything else (then the strict decoder names what is wrong). Accepts exactly what it accepts."""
    try:
        if len(d) > MAX_LEAF_SIZE or d[0] != LEAF_VERSION:
            return None
        n = d[1]
        p = 2 + n
        operation = d[2:p].decode("ascii")
        n = _U16(d, p)[0]
        p += 2
        if n > 128:
            return None
        vault = d[p:p + n].decode("utf-8")
        p += n
        n = _U16(d, p)[0]
        p += 2
        if n > 1024:
            return None
        name = d[p:p + n].decode("utf-8")
        p += n
        version = _U64V(d, p)[0]
        p += 8
        n = d[p]
        p += 1
        if n == 32:
            sha: bytes | None = d[p:p + 32]
            p += 32
        elif n == 0:
            sha = None
        else:
            return None
        n = d[p]
        p += 1
        if n > 16:
            return None
        actor_kind = d[p:p + n].decode("utf-8")
        p += n
        n = _U16(d, p)[0]
        p += 2
        if n > 256:
            return None
        actor_name = d[p:p + n].decode("utf-8")
        p += n
        n = _U16(d, p)[0]
        p += 2
        if n > 256:
            return None
        kiosk = d[p:p + n].decode("utf-8")
        p += n
        time_ns = _U64V(d, p)[0]
        p += 8
        n = d[p]
        p += 1
        outcome = d[p:p + n].decode("ascii")
        p += n
        count = d[p]
        p += 1
        if count > _MAX_EXTRA:
            return None
        extra: list[tuple[str, bytes]] = []
        previous = ""
        for _ in range(count):
            n = d[p]
            p += 1
            key = d[p:p + n].decode("ascii")
            p += n
            if not _EXTRA_KEY.match(key) or (previous and key <= previous):
                return None
            previous = key
            n = _U16(d, p)[0]
            p += 2
            if n > _MAX_EXTRA_VALUE or p + n > len(d):
                return None
            extra.append((key, d[p:p + n]))
            p += n
        if p != len(d) or (sha is not None and len(sha) != 32):
            return None
        if not _TOKEN.match(operation) or not _TOKEN.match(outcome):
            return None
        if _CONTROL.search(vault + name + actor_kind + actor_name + kiosk):
            return None
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return Leaf(operation, vault, name, version, sha, actor_kind, actor_name, time_ns, outcome, kiosk, tuple(extra))


def _encode_fields(fields: tuple[Any, ...]) -> bytes:
    """The canonical bytes of a leaf's fields (in :class:`Leaf`'s order), by the Rust core's encoder
    (the same bytes, about ten times faster: every deposit makes a leaf on a gRPC thread); fields it
    refuses go through :meth:`Leaf.encode_reference`, which names the one that is wrong."""
    operation, vault, name, version, sha256, actor_kind, actor_name, time_ns, outcome, kiosk, extra = fields
    try:
        raw = _crypto.leaf_encode(operation, vault, name, version, sha256, actor_kind, actor_name, kiosk,
                                  time_ns, outcome, extra)
    except (TypeError, OverflowError, ValueError):
        raw = None
    return raw if raw is not None else Leaf(*fields).encode_reference()


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise LeafError(f"leaf {what}: truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(struct.unpack(">H", self.take(2, what))[0])

    def u64(self, what: str) -> int:
        return int(struct.unpack(">Q", self.take(8, what))[0])

    def text(self, what: str, width: int, limit: int) -> str:
        n = self.u8(what) if width == 1 else self.u16(what)
        if n > limit:
            raise LeafError(f"leaf {what}: {n} bytes, at most {limit}")
        raw = self.take(n, what)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LeafError(f"leaf {what}: not valid UTF-8") from None
        if _CONTROL.search(value):
            raise LeafError(f"leaf {what}: control characters are not allowed")
        return value

    def token(self, what: str) -> str:
        n = self.u8(what)
        raw = self.take(n, what)
        value = raw.decode("ascii", "replace")
        if not _TOKEN.match(value):
            raise LeafError(f"leaf {what}: {value!r} is not a lowercase token")
        return value
