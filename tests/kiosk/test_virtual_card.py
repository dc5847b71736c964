"""The virtual card's APDU handling, in process (the PC/SC path is covered by test_piv)."""

from __future__ import annotations

import hashlib

import pytest

from vaultd.kiosk import devca, tlv
from vaultd.kiosk.virtual_card import ATR, PIV_AID, VirtualPivCard


@pytest.fixture
def card(ca: devca.DevCA) -> VirtualPivCard:
    creds = ca.issue_card("alice.martin")
    return VirtualPivCard(keys=creds.keys, certs={s: creds.cert_der(s) for s in creds.keys}, persist=False)


def select(card: VirtualPivCard) -> None:
    assert card.process(bytes([0, 0xA4, 4, 0, 5]) + PIV_AID[:5] + b"\x00")[-2:] == b"\x90\x00"


def test_atr_check_byte(card: VirtualPivCard) -> None:
    x = 0
    for b in ATR[1:]:
        x ^= b
    assert x == 0 and card.atr() == ATR


def test_commands_before_select_and_unknown_ones(card: VirtualPivCard) -> None:
    assert card.process(bytes([0, 0x20, 0, 0x80])) == b"\x6d\x00"
    select(card)
    assert card.process(bytes([0, 0x2C, 0, 0x80])) == b"\x6d\x00"  # RESET RETRY COUNTER: not here
    assert card.process(bytes([0x80, 0x20, 0, 0x80])) == b"\x6e\x00"
    assert card.process(b"\x00\x20") == b"\x67\x00"  # shorter than a header
    assert card.process(bytes([0, 0xA4, 4, 0, 5]) + b"\xa0\x00\x00\x00\x99") == b"\x6a\x82"


def test_get_response_and_unknown_objects(card: VirtualPivCard) -> None:
    select(card)
    first = card.process(bytes([0, 0xCB, 0x3F, 0xFF, 5, 0x5C, 3, 0x5F, 0xC1, 0x0A, 0]))
    assert first[-2] == 0x61 and len(first) == 258
    rest = card.process(bytes([0, 0xC0, 0, 0, first[-1]]))
    obj = first[:-2] + rest[:-2]
    assert rest[-2:] == b"\x90\x00"
    assert tlv.find(tlv.parse(tlv.parse_one(obj, 0x53)), 0x70) == card.certs[0x9C]
    assert card.process(bytes([0, 0xCB, 0x3F, 0xFF, 5, 0x5C, 3, 0x5F, 0xC1, 0x01, 0])) == b"\x6a\x82"
    assert card.process(bytes([0, 0xC0, 0, 0, 0])) == b"\x69\x85"  # nothing pending


def test_general_authenticate_checks_its_input(card: VirtualPivCard) -> None:
    select(card)
    pin = b"123456\xff\xff"
    assert card.process(bytes([0, 0x20, 0, 0x80, 8]) + pin) == b"\x90\x00"

    def ga(alg: int, slot: int, challenge: bytes) -> bytes:
        body = tlv.encode(0x7C, tlv.encode(0x82, b"") + tlv.encode(0x81, challenge))
        return card.process(bytes([0, 0x87, alg, slot, len(body)]) + body + b"\x00")

    digest = hashlib.sha256(b"x").digest()
    assert ga(0x07, 0x9A, digest) == b"\x6a\x86"  # RSA 2048: not this card
    assert ga(0x11, 0x9D, digest) == b"\x6a\x88"  # no key in slot 9D
    assert ga(0x11, 0x9A, digest[:20]) == b"\x6a\x80"  # not a SHA-256 digest
    assert ga(0x11, 0x9A, digest)[-2:] == b"\x90\x00"
    chained = card.process(bytes([0x10, 0x20, 0, 0x80, 8]) + pin)
    assert chained == b"\x68\x84"  # chaining only where it makes sense


def test_chained_data_is_bounded(card: VirtualPivCard) -> None:
    select(card)
    part = bytes([0x10, 0x87, 0x11, 0x9A, 255]) + b"\x00" * 255
    replies = [card.process(part) for _ in range(20)]
    assert replies[0] == b"\x90\x00"
    assert b"\x67\x00" in replies  # refused once it passes the bound
