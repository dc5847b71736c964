"""BER-TLV parsing of card replies (vaultd.kiosk.tlv): any bytes either parse into elements that
encode back to the same bytes, or raise TlvError; nothing else."""

from __future__ import annotations

import atheris

import _harness

with atheris.instrument_imports(include=["vaultd"]):
    from vaultd.kiosk import tlv


def test_one_input(data: bytes) -> None:
    try:
        items = tlv.parse(data)
    except tlv.TlvError:
        items = None
    if items is not None:
        again = b"".join(tlv.encode(i.tag, i.value) for i in items)
        assert tlv.parse(again) == items, "re-encoded elements parse differently"
    for tag in (0x53, 0x7C, 0x61):
        try:
            tlv.parse_one(data, tag)
        except tlv.TlvError:
            pass


SEEDS = [tlv.encode(0x53, tlv.encode(0x70, b"\x30\x03\x02\x01\x00") + tlv.encode(0x71, b"\x00")),
         tlv.encode(0x7C, tlv.encode(0x82, b"\x30\x06\x02\x01\x01\x02\x01\x01")),
         tlv.encode(0x61, b"\x4f\x06\x00\x00\x10\x00\x01\x00"), tlv.encode(0x53, b"x" * 300)]

if __name__ == "__main__":
    _harness.run(test_one_input, SEEDS)
