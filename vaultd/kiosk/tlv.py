"""Strict, bounded BER-TLV as used by PIV cards (ISO/IEC 7816-4 and SP 800-73-4).

A card is an untrusted input: every length is checked against what is left, tags are at most three
bytes, lengths at most three bytes after the 0x8x prefix, indefinite lengths are refused, and a
caller-set ceiling bounds the nesting depth and the number of elements. Nothing here allocates more
than the input it was given.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaultd.errors import InvalidArgument

__all__ = ["Tlv", "TlvError", "encode", "parse", "parse_one", "find"]

MAX_ELEMENTS = 1024


class TlvError(InvalidArgument):
    """A BER-TLV structure is malformed, truncated or exceeds a bound."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated BER-TLV: tag expected")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        for i in range(2):
            if pos >= len(data):
                raise TlvError("truncated BER-TLV: multi-byte tag")
            b = data[pos]
            pos += 1
            tag = (tag << 8) | b
            if not b & 0x80:
                break
            if i == 1:
                raise TlvError("BER-TLV tag longer than three bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated BER-TLV: length expected")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    if first == 0x80:
        raise TlvError("indefinite BER-TLV length refused")
    n = first & 0x7F
    if n > 3:
        raise TlvError("BER-TLV length field longer than three bytes")
    if pos + n > len(data):
        raise TlvError("truncated BER-TLV: length bytes")
    length = int.from_bytes(data[pos : pos + n], "big")
    return length, pos + n


def parse(data: bytes, *, max_elements: int = MAX_ELEMENTS) -> list[Tlv]:
    """Parses a concatenation of TLVs (one level). Raises TlvError on any defect."""
    out: list[Tlv] = []
    pos = 0
    data = bytes(data)
    while pos < len(data):
        if len(out) >= max_elements:
            raise TlvError("too many BER-TLV elements")
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if length > len(data) - pos:
            raise TlvError(f"BER-TLV element {tag:X} claims {length} bytes, only {len(data) - pos} left")
        out.append(Tlv(tag, data[pos : pos + length]))
        pos += length
    return out


def parse_one(data: bytes, expected_tag: int) -> bytes:
    """Parses exactly one TLV with the expected tag covering all of ``data``; returns its value."""
    items = parse(data, max_elements=1)
    if len(items) != 1 or items[0].tag != expected_tag:
        raise TlvError(f"expected a single BER-TLV element {expected_tag:X}")
    return items[0].value


def find(items: list[Tlv], tag: int, *, required: bool = True) -> bytes | None:
    """Returns the value of the only element with ``tag``; duplicates are refused."""
    found = [t.value for t in items if t.tag == tag]
    if len(found) > 1:
        raise TlvError(f"duplicate BER-TLV element {tag:X}")
    if not found:
        if required:
            raise TlvError(f"missing BER-TLV element {tag:X}")
        return None
    return found[0]


def _encode_tag(tag: int) -> bytes:
    n = max(1, (tag.bit_length() + 7) // 8)
    return tag.to_bytes(n, "big")


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    n = (length.bit_length() + 7) // 8
    if n > 3:
        raise TlvError("value too long for BER-TLV")
    return bytes([0x80 | n]) + length.to_bytes(n, "big")


def encode(tag: int, value: bytes) -> bytes:
    return _encode_tag(tag) + _encode_length(len(value)) + bytes(value)
