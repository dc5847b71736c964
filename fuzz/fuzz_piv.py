"""The kiosk's PIV reply handling (vaultd.kiosk.piv.PivCard) against a card that answers with
arbitrary bytes: every reply is either understood or refused with a PivError / TlvError (a
VaultError); the kiosk never crashes on what a card sends, and a signature it returns is DER."""

from __future__ import annotations

import atheris

import _harness

with atheris.instrument_imports(include=["vaultd"]):
    from vaultd.errors import VaultError
    from vaultd.kiosk import tlv
    from vaultd.kiosk.piv import PivCard


class FuzzedCard:
    """The card side of the connection: each reply (data, SW1, SW2) is drawn from the input."""

    def __init__(self, fdp: atheris.FuzzedDataProvider) -> None:
        self.fdp = fdp

    def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]:
        n = self.fdp.ConsumeIntInRange(0, 300)
        data = list(self.fdp.ConsumeBytes(n))
        sw = self.fdp.ConsumeIntInRange(0, 0xFFFF) if self.fdp.ConsumeBool() else 0x9000
        return data, sw >> 8, sw & 0xFF

    def disconnect(self) -> None:
        pass


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    card = PivCard(FuzzedCard(fdp), "fuzz")
    op = fdp.ConsumeIntInRange(0, 4)
    try:
        if op == 0:
            card.select()
        elif op == 1:
            card.read_certificate(0x9A if fdp.ConsumeBool() else 0x9C)
        elif op == 2:
            card.pin_retries()
        elif op == 3:
            card.verify_pin("123456")
        else:
            sig = card.sign_digest(0x9C, b"\x01" * 32)
            assert sig[:1] == b"\x30", "a signature that is not DER was returned"
    except VaultError:
        pass
    assert card.apdus_sent <= 64, "the kiosk kept talking to a card that misbehaves"


def _reply(payload: bytes, sw: int = 0x9000) -> bytes:
    # the FuzzedDataProvider layout: op first is read from the end; keep seeds simple payloads
    return payload + sw.to_bytes(2, "big")


SEEDS = [_reply(tlv.encode(0x7C, tlv.encode(0x82, b"\x30\x06\x02\x01\x01\x02\x01\x01"))),
         _reply(tlv.encode(0x53, tlv.encode(0x70, b"\x30\x00") + tlv.encode(0x71, b"\x01"))),
         _reply(b"", 0x63C2), _reply(b"", 0x6113)]

if __name__ == "__main__":
    _harness.run(test_one_input, SEEDS)
