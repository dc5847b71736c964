"""BER-TLV parsing is strict and bounded: a card's reply is untrusted input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultd.kiosk import tlv


def test_round_trip_of_short_long_and_multibyte_tags() -> None:
    for tag in (0x53, 0x7C, 0x5F2F, 0x5FC105):
        for size in (0, 1, 127, 128, 255, 256, 3000):
            value = bytes(range(256)) * (size // 256) + bytes(size % 256)
            items = tlv.parse(tlv.encode(tag, value))
            assert items == [tlv.Tlv(tag, value)]


@pytest.mark.parametrize(
    "raw, what",
    [
        (b"\x53", "length expected"),
        (b"\x53\x05abc", "claims 5 bytes"),
        (b"\x53\x80abc", "indefinite"),
        (b"\x53\x84\x00\x00\x00\x01a", "longer than three"),
        (b"\x53\x82\x01", "length bytes"),
        (b"\x5f", "multi-byte tag"),
        (b"\x5f\xc1\x85\x01\x00", "longer than three bytes"),
    ],
)
def test_malformed_input_is_refused(raw: bytes, what: str) -> None:
    with pytest.raises(tlv.TlvError, match=what):
        tlv.parse(raw)


def test_duplicates_missing_and_element_bounds() -> None:
    items = tlv.parse(tlv.encode(0x70, b"a") + tlv.encode(0x70, b"b"))
    with pytest.raises(tlv.TlvError, match="duplicate"):
        tlv.find(items, 0x70)
    with pytest.raises(tlv.TlvError, match="missing"):
        tlv.find(items, 0x71)
    assert tlv.find(items, 0x71, required=False) is None
    with pytest.raises(tlv.TlvError, match="too many"):
        tlv.parse(b"\x01\x00" * 5, max_elements=4)
    with pytest.raises(tlv.TlvError):
        tlv.parse_one(tlv.encode(0x53, b"") + b"\x00\x00", 0x53)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_raise_tlv_error(raw: bytes) -> None:
    try:
        items = tlv.parse(raw)
    except tlv.TlvError:
        return
    assert sum(len(i.value) for i in items) <= len(raw)
