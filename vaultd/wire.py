"""The few bits of protobuf's wire format that vaultd writes by hand, where a message is framed
around bytes it already holds instead of copying them into a message object (a Read's data, framed
by the core where the chunks are opened; a Deposit's data, framed by the client), or reads where a
view of the received bytes saves the copies a parsed message makes (a Deposit's data)."""

from __future__ import annotations

__all__ = ["varint", "varint_len", "length_delimited", "only_field"]


def varint(n: int) -> bytes:
    """``n`` (not negative) as a base-128 varint."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint_len(n: int) -> int:
    """How many bytes :func:`varint` writes for ``n``."""
    return max(1, (n.bit_length() + 6) // 7)


def length_delimited(field: int, data: bytes | memoryview) -> bytes:
    """``data`` as the length-delimited field number ``field`` (1 to 15: a one-byte tag)."""
    return b"".join((bytes([(field << 3) | 2]), varint(len(data)), data))


def only_field(raw: bytes, field: int) -> memoryview | None:
    """A view of the bytes of the length-delimited field ``field`` (1 to 15) when ``raw`` is an
    encoded message holding that one field and nothing else; None for anything else (the caller
    parses those with protobuf, which gives the same value for what this accepts)."""
    if len(raw) < 2 or raw[0] != (field << 3) | 2:
        return None
    n = shift = 0
    at = 1
    while at < len(raw) and at <= 5:  # a length below 2**35: at most 5 varint bytes
        b = raw[at]
        n |= (b & 0x7F) << shift
        at += 1
        if b < 0x80:
            return memoryview(raw)[at:] if n == len(raw) - at else None
        shift += 7
    return None
