"""The few bits of protobuf's wire format that vaultd writes by hand, where a message is framed
around bytes it already holds instead of copying them into a message object (a Read's data, framed
by the core where the chunks are opened; a Deposit's data, framed by the client)."""

from __future__ import annotations

__all__ = ["varint", "varint_len", "length_delimited"]


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
