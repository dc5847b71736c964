"""The PIV client against the virtual card through the real PC/SC stack (pcscd + vpcd + pyscard)."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from vaultd.kiosk import devca, piv, tlv

DIGEST = hashlib.sha256(b"a permit application").digest()


def _verify(cert, signature: bytes, digest: bytes = DIGEST) -> None:  # type: ignore[no-untyped-def]
    cert.public_key().verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_select_and_read_both_certificates(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        apt = card.select()
        assert tlv.parse_one(apt, 0x61)
        assert card.read_certificate(piv.SLOT_AUTH) == p.creds.certs[0x9A]
        assert card.read_certificate(piv.SLOT_SIGN) == p.creds.certs[0x9C]
        assert card.pin_retries() == 3


def test_long_replies_come_through_get_response(insert_card, ca) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        before = p.link.apdu_count
        cert = card.read_certificate(piv.SLOT_SIGN)
        der_len = len(p.creds.cert_der(0x9C))
        assert der_len > 256  # so the object needs at least one GET RESPONSE
        rounds = p.link.apdu_count - before
        assert rounds == 1 + (der_len + 12) // 256  # GET DATA, then one GET RESPONSE per 256 bytes
        assert cert == p.creds.certs[0x9C]


def test_wrong_pin_shows_retries_and_right_pin_resets_them(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        with pytest.raises(piv.WrongPin) as e1:
            card.verify_pin("000000")
        assert e1.value.retries_left == 2 and "2 attempts left" in str(e1.value)
        with pytest.raises(piv.WrongPin) as e2:
            card.verify_pin("999999")
        assert e2.value.retries_left == 1 and "1 attempt left" in str(e2.value)
        assert card.pin_retries() == 1
        card.verify_pin("123456")
        assert card.pin_retries() is None  # verified in this session
    assert p.card.pin_tries_left == 3


def test_pin_blocks_after_three_wrong_and_stays_blocked(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        for _ in range(2):
            with pytest.raises(piv.WrongPin):
                card.verify_pin("000000")
        with pytest.raises(piv.PinBlocked):
            card.verify_pin("000000")
        with pytest.raises(piv.PinBlocked):
            card.verify_pin("123456")  # even the right PIN
        assert card.pin_retries() == 0
        with pytest.raises(piv.PinRequired):
            card.sign_digest(piv.SLOT_SIGN, DIGEST)
    # The counter is kept in the card's folder: re-inserting does not unblock it.
    assert json.loads((p.folder / "card.json").read_text())["pin_tries_left"] == 0
    assert p.card.signatures_made == 0


def test_slot_9a_needs_the_pin_once_and_9c_every_time(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        with pytest.raises(piv.PinRequired):
            card.sign_digest(piv.SLOT_AUTH, DIGEST)
        card.verify_pin("123456")
        _verify(p.creds.certs[0x9A], card.sign_digest(piv.SLOT_AUTH, DIGEST))
        _verify(p.creds.certs[0x9A], card.sign_digest(piv.SLOT_AUTH, DIGEST))  # once per session
        card.verify_pin("123456")
        sig = card.sign_digest(piv.SLOT_SIGN, DIGEST)
        _verify(p.creds.certs[0x9C], sig)
        with pytest.raises(piv.PinRequired):  # PIN always for the signature key
            card.sign_digest(piv.SLOT_SIGN, DIGEST)
        card.verify_pin("123456")
        card.read_certificate(piv.SLOT_SIGN)  # anything between VERIFY and the signature
        with pytest.raises(piv.PinRequired):
            card.sign_digest(piv.SLOT_SIGN, DIGEST)
    assert p.card.signatures_made == 3


def test_pin_status_is_lost_when_the_card_is_reset(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        card.verify_pin("123456")
    with p.open() as card:  # closing powered the card down
        card.select()
        assert card.pin_retries() == 3
        with pytest.raises(piv.PinRequired):
            card.sign_digest(piv.SLOT_AUTH, DIGEST)


def test_card_accepts_command_chaining(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        card.verify_pin("123456")
        template = tlv.encode(0x7C, tlv.encode(0x82, b"") + tlv.encode(0x81, DIGEST))
        head, tail = template[:10], template[10:]
        _, sw = card._raw(bytes([0x10, 0x87, 0x11, 0x9A, len(head)]) + head)
        assert sw == 0x9000
        data, sw = card._raw(bytes([0x00, 0x87, 0x11, 0x9A, len(tail)]) + tail + b"\x00")
        assert sw == 0x9000
        sig = tlv.find(tlv.parse(tlv.parse_one(data, 0x7C)), 0x82)
        assert sig is not None
        _verify(p.creds.certs[0x9A], sig)


def test_card_removed_mid_signature(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        card.verify_pin("123456")
        p.link.pull_on_ins = 0x87  # the card leaves the reader when the signature command arrives
        with pytest.raises(piv.CardRemoved) as exc:
            card.sign_digest(piv.SLOT_SIGN, DIGEST)
        assert "Nothing was signed" in str(exc.value)
    assert p.card.signatures_made == 0
    p.remove()
    p.insert()  # put back, it works again (and the PIN is needed again)
    with p.open() as card:
        card.select()
        with pytest.raises(piv.PinRequired):
            card.sign_digest(piv.SLOT_SIGN, DIGEST)


def test_no_card_in_the_reader(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    p.remove()
    with pytest.raises(piv.NoCard) as exc:
        p.open()
    assert "Insert your card" in str(exc.value)


def test_no_such_reader(pcscd) -> None:  # type: ignore[no-untyped-def]
    assert pcscd in piv.list_readers()
    with pytest.raises(piv.NoReader):
        piv.PivCard.open("Reader that is not plugged in")


def test_unknown_card_without_piv(insert_card, ca) -> None:  # type: ignore[no-untyped-def]
    p = insert_card(ca.issue_card("bob"), has_piv=False)
    with p.open() as card:
        with pytest.raises(piv.NotPivCard):
            card.select()


def test_pin_format_is_checked_before_the_card_sees_it(insert_card) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    with p.open() as card:
        card.select()
        for bad in ("12345", "123456789", "12345é"):
            with pytest.raises(piv.InvalidArgument):
                card.verify_pin(bad)
        assert card.pin_retries() == 3  # no attempt was spent


def test_foreign_ca_card_still_reads(insert_card) -> None:  # type: ignore[no-untyped-def]
    """The card does not judge its certificates: the server does (see test_sessions)."""
    foreign = devca.DevCA.create("Some Other CA").issue_card("mallory")
    p = insert_card(foreign)
    with p.open() as card:
        card.select()
        assert card.read_certificate(piv.SLOT_AUTH).issuer == foreign.certs[0x9A].issuer


def test_virtual_card_as_a_program(pcscd, ca, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`python -m vaultd.kiosk.virtual_card --card-dir DIR` inserts the card; SIGTERM takes it out."""
    import signal
    import subprocess
    import sys

    from .conftest import ROOT, wait_for_card

    creds = ca.issue_card("dora.prog")
    folder = devca.write_card(creds, tmp_path / "card")
    proc = subprocess.Popen([sys.executable, "-m", "vaultd.kiosk.virtual_card", "--card-dir", str(folder)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_card(pcscd, present=True)
        with piv.PivCard.open(pcscd) as card:
            card.select()
            assert card.read_certificate(piv.SLOT_AUTH) == creds.certs[0x9A]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stdout.read() if proc.stdout else ""
    wait_for_card(pcscd, present=False)
    import time

    time.sleep(0.6)  # let the vpcd driver notice before the next card (see Plugged.remove)
