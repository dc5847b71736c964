"""A virtual PIV card (a subset of NIST SP 800-73-4) for development and tests.

It answers what a kiosk needs from a citizen card: SELECT of the PIV application, GET DATA for the
certificate objects of slots 9A (PIV authentication) and 9C (digital signature), the CHUID and the
discovery object, VERIFY of the PIN with a retry counter, and GENERAL AUTHENTICATE with ECDSA P-256
(algorithm 11) over a 32-byte digest. Long replies go out with 61xx and GET RESPONSE; command chaining
(CLA 0x10) is accepted. Slot 9A needs the PIN once per card session; slot 9C needs it right before
every signature (PIN always).

A card lives in a folder (``devca.write_card`` makes one): ``card.json`` (PIN, retry counter, GUID)
and, per slot, ``9a.key.pem``/``9a.crt.pem`` and ``9c.key.pem``/``9c.crt.pem``. It is a development
tool: its keys are files, unlike a real card's.

Run it against pcscd's vpcd reader with ``python -m vaultd.kiosk.virtual_card --card-dir DIR``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from vaultd.kiosk import tlv
from vaultd.kiosk.vpcd import VPCD_PORT, VpcdLink

__all__ = ["VirtualPivCard", "PIV_AID", "main"]

log = logging.getLogger(__name__)

PIV_AID = bytes.fromhex("A000000308000010000100")
PIV_RID_PREFIX = PIV_AID[:5]

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_SECURITY_NOT_SATISFIED = b"\x69\x82"
SW_PIN_BLOCKED = b"\x69\x83"
SW_CONDITIONS_NOT_SATISFIED = b"\x69\x85"
SW_WRONG_DATA = b"\x6a\x80"
SW_NOT_FOUND = b"\x6a\x82"
SW_INCORRECT_P1P2 = b"\x6a\x86"
SW_REF_NOT_FOUND = b"\x6a\x88"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"
SW_CHAINING_NOT_SUPPORTED = b"\x68\x84"

ALG_ECC_P256 = 0x11
OBJ_CHUID = 0x5FC102
OBJ_CERT_9A = 0x5FC105
OBJ_CERT_9C = 0x5FC10A
OBJ_DISCOVERY = 0x7E
SLOT_OBJECTS = {0x9A: OBJ_CERT_9A, 0x9C: OBJ_CERT_9C}

MAX_CHAIN = 4096  # bytes a chained command may accumulate

# 3B: direct convention; T0=88: TD1 present, 8 historical bytes; TD1=80: TD2 present (T=0);
# TD2=01: T=1; then the historical bytes and the check byte TCK.
_ATR_BODY = bytes([0x88, 0x80, 0x01]) + b"vaultPIV"
_TCK = 0
for _b in _ATR_BODY:
    _TCK ^= _b
ATR = bytes([0x3B]) + _ATR_BODY + bytes([_TCK])


def _sw(data: bytes, sw: bytes = SW_OK) -> bytes:
    return data + sw


def _pad_pin(pin: str | bytes) -> bytes:
    raw = pin.encode("ascii") if isinstance(pin, str) else bytes(pin)
    if not 6 <= len(raw) <= 8:
        raise ValueError("a PIV PIN has 6 to 8 characters")
    return raw + b"\xff" * (8 - len(raw))


class _Apdu:
    __slots__ = ("cla", "ins", "p1", "p2", "data", "le")

    def __init__(self, raw: bytes) -> None:
        if len(raw) < 4:
            raise ValueError("APDU shorter than its header")
        self.cla, self.ins, self.p1, self.p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        self.data = b""
        self.le: int | None = None
        if not body:
            return
        if len(body) == 1:
            self.le = body[0] or 256
            return
        if body[0] == 0 and len(body) >= 3:  # extended length
            if len(body) == 3:
                self.le = int.from_bytes(body[1:3], "big") or 65536
                return
            lc = int.from_bytes(body[1:3], "big")
            rest = body[3:]
            if len(rest) < lc:
                raise ValueError("APDU shorter than its Lc")
            self.data = rest[:lc]
            tail = rest[lc:]
            if len(tail) == 2:
                self.le = int.from_bytes(tail, "big") or 65536
            elif tail:
                raise ValueError("malformed extended APDU")
            return
        lc = body[0]
        rest = body[1:]
        if len(rest) < lc:
            raise ValueError("APDU shorter than its Lc")
        self.data = rest[:lc]
        tail = rest[lc:]
        if len(tail) == 1:
            self.le = tail[0] or 256
        elif tail:
            raise ValueError("malformed APDU")


class VirtualPivCard:
    """The card's state machine. ``process(apdu) -> response`` is all a reader calls, besides power."""

    def __init__(
        self,
        card_dir: Path | str | None = None,
        *,
        pin: str = "123456",
        keys: dict[int, ec.EllipticCurvePrivateKey] | None = None,
        certs: dict[int, bytes] | None = None,
        pin_tries: int = 3,
        has_piv: bool = True,
        persist: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self.card_dir = Path(card_dir) if card_dir is not None else None
        self.has_piv = has_piv
        self.keys: dict[int, ec.EllipticCurvePrivateKey] = dict(keys or {})
        self.certs: dict[int, bytes] = dict(certs or {})
        self.pin_tries_max = pin_tries
        self.pin_tries_left = pin_tries
        self.guid = os.urandom(16)
        self._pin = _pad_pin(pin)
        self._persist = persist and self.card_dir is not None
        if self.card_dir is not None:
            self._load(self.card_dir)
        self.signatures_made = 0
        self._power_reset()

    # -- storage -------------------------------------------------------------------------------
    def _load(self, d: Path) -> None:
        meta = json.loads((d / "card.json").read_text())
        self._pin = _pad_pin(meta["pin"])
        self.pin_tries_max = int(meta.get("pin_tries_max", 3))
        self.pin_tries_left = int(meta.get("pin_tries_left", self.pin_tries_max))
        self.guid = bytes.fromhex(meta.get("guid", os.urandom(16).hex()))
        self.has_piv = bool(meta.get("has_piv", True))
        for slot in SLOT_OBJECTS:
            key_path = d / f"{slot:02x}.key.pem"
            crt_path = d / f"{slot:02x}.crt.pem"
            if key_path.exists() and crt_path.exists():
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                    raise ValueError(f"{key_path.name}: the virtual card holds ECC P-256 keys only")
                self.keys[slot] = key
                cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
                self.certs[slot] = cert.public_bytes(serialization.Encoding.DER)

    def _save_counter(self) -> None:
        if not self._persist or self.card_dir is None:
            return
        path = self.card_dir / "card.json"
        meta = json.loads(path.read_text())
        meta["pin_tries_left"] = self.pin_tries_left
        fd, tmp = tempfile.mkstemp(dir=self.card_dir, prefix=".card.json.")
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f, indent=2)
        os.replace(tmp, path)

    # -- power ---------------------------------------------------------------------------------
    def _power_reset(self) -> None:
        self.selected = False
        self.pin_verified = False
        self.sign_authorized = False
        self._pending = b""
        self._chain: tuple[int, int, int, bytearray] | None = None

    def atr(self) -> bytes:
        return ATR

    def power_on(self) -> None:
        with self._lock:
            self._power_reset()

    def power_off(self) -> None:
        with self._lock:
            self._power_reset()

    def reset(self) -> None:
        with self._lock:
            self._power_reset()

    @property
    def blocked(self) -> bool:
        return self.pin_tries_left <= 0

    # -- commands ------------------------------------------------------------------------------
    def process(self, raw: bytes) -> bytes:
        with self._lock:
            try:
                apdu = _Apdu(raw)
            except ValueError:
                self._pending = b""
                return SW_WRONG_LENGTH
            if apdu.ins == 0xC0 and apdu.cla & ~0x10 == 0:
                return self._get_response(apdu)
            self._pending = b""
            if apdu.cla & 0xEF != 0:
                return SW_CLA_NOT_SUPPORTED
            # Command chaining: accumulate the data of CLA 0x10 parts, run the command on the last.
            if apdu.cla & 0x10:
                if apdu.ins not in (0x87, 0xCB):
                    self._chain = None
                    return SW_CHAINING_NOT_SUPPORTED
                if self._chain is None or self._chain[:3] != (apdu.ins, apdu.p1, apdu.p2):
                    self._chain = (apdu.ins, apdu.p1, apdu.p2, bytearray())
                self._chain[3].extend(apdu.data)
                if len(self._chain[3]) > MAX_CHAIN:
                    self._chain = None
                    return SW_WRONG_LENGTH
                return SW_OK
            if self._chain is not None:
                ins, p1, p2, buf = self._chain
                self._chain = None
                if (ins, p1, p2) == (apdu.ins, apdu.p1, apdu.p2):
                    apdu.data = bytes(buf) + apdu.data
            if apdu.ins != 0x87 or apdu.p2 != 0x9C:
                # "PIN always": the verification must come right before the signature.
                if apdu.ins != 0x20:
                    self.sign_authorized = False
            reply = self._dispatch(apdu)
            return self._send(reply, apdu.le)

    def _send(self, reply: bytes, le: int | None) -> bytes:
        """Splits a long reply: the first part now, the rest through GET RESPONSE (61xx)."""
        data, sw = reply[:-2], reply[-2:]
        limit = min(le or 256, 256)
        if len(data) <= limit:
            return data + sw
        self._pending = data[limit:]
        remaining = len(self._pending)
        return data[:limit] + bytes([0x61, remaining if remaining < 256 else 0])

    def _get_response(self, apdu: _Apdu) -> bytes:
        if not self._pending:
            return SW_CONDITIONS_NOT_SATISFIED
        data, self._pending = self._pending, b""
        return self._send(data + SW_OK, apdu.le)

    def _dispatch(self, apdu: _Apdu) -> bytes:
        if apdu.ins == 0xA4:
            return self._select(apdu)
        if not self.selected:
            return SW_INS_NOT_SUPPORTED
        if apdu.ins == 0xCB:
            return self._get_data(apdu)
        if apdu.ins == 0x20:
            return self._verify(apdu)
        if apdu.ins == 0x87:
            return self._general_authenticate(apdu)
        return SW_INS_NOT_SUPPORTED

    def _select(self, apdu: _Apdu) -> bytes:
        if apdu.p1 != 0x04:
            return SW_INCORRECT_P1P2
        aid = apdu.data
        if self.has_piv and len(aid) >= len(PIV_RID_PREFIX) and PIV_AID.startswith(aid):
            self.selected = True
            apt = tlv.encode(
                0x61,
                tlv.encode(0x4F, PIV_AID[5:])
                + tlv.encode(0x79, tlv.encode(0x4F, PIV_RID_PREFIX))
                + tlv.encode(0x50, b"vaultd virtual PIV")
                + tlv.encode(0xAC, tlv.encode(0x80, bytes([ALG_ECC_P256])) + tlv.encode(0x06, b"")),
            )
            return _sw(apt)
        self.selected = False
        self.pin_verified = False
        return SW_NOT_FOUND

    def _object(self, tag: int) -> bytes | None:
        if tag == OBJ_DISCOVERY:
            return tlv.encode(0x7E, tlv.encode(0x4F, PIV_AID) + tlv.encode(0x5F2F, b"\x40\x00"))
        if tag == OBJ_CHUID:
            body = (
                tlv.encode(0x30, b"\xd4" + b"\x00" * 24)  # FASC-N (none)
                + tlv.encode(0x34, self.guid)
                + tlv.encode(0x35, b"20991231")
                + tlv.encode(0x3E, b"")
                + tlv.encode(0xFE, b"")
            )
            return tlv.encode(0x53, body)
        for slot, obj in SLOT_OBJECTS.items():
            if tag == obj and slot in self.certs:
                body = tlv.encode(0x70, self.certs[slot]) + tlv.encode(0x71, b"\x00") + tlv.encode(0xFE, b"")
                return tlv.encode(0x53, body)
        return None

    def _get_data(self, apdu: _Apdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0x3F, 0xFF):
            return SW_INCORRECT_P1P2
        try:
            tag_bytes = tlv.parse_one(apdu.data, 0x5C)
        except tlv.TlvError:
            return SW_WRONG_DATA
        if not 1 <= len(tag_bytes) <= 3:
            return SW_WRONG_DATA
        obj = self._object(int.from_bytes(tag_bytes, "big"))
        if obj is None:
            return SW_NOT_FOUND
        return _sw(obj)

    def _verify(self, apdu: _Apdu) -> bytes:
        if apdu.p2 != 0x80:
            return SW_REF_NOT_FOUND
        if apdu.p1 == 0xFF:
            if apdu.data:
                return SW_WRONG_DATA
            self.pin_verified = False
            self.sign_authorized = False
            return SW_OK
        if apdu.p1 != 0x00:
            return SW_INCORRECT_P1P2
        if self.blocked:
            return SW_PIN_BLOCKED
        if not apdu.data:
            if self.pin_verified:
                return SW_OK
            return bytes([0x63, 0xC0 | min(self.pin_tries_left, 15)])
        if len(apdu.data) != 8:
            return SW_WRONG_DATA
        if hmac.compare_digest(apdu.data, self._pin):
            self.pin_tries_left = self.pin_tries_max
            self.pin_verified = True
            self.sign_authorized = True
            self._save_counter()
            return SW_OK
        self.pin_tries_left -= 1
        self.pin_verified = False
        self.sign_authorized = False
        self._save_counter()
        if self.blocked:
            return SW_PIN_BLOCKED
        return bytes([0x63, 0xC0 | min(self.pin_tries_left, 15)])

    def _general_authenticate(self, apdu: _Apdu) -> bytes:
        slot = apdu.p2
        if slot not in SLOT_OBJECTS or slot not in self.keys:
            return SW_REF_NOT_FOUND
        if apdu.p1 != ALG_ECC_P256:
            return SW_INCORRECT_P1P2
        try:
            template = tlv.parse(tlv.parse_one(apdu.data, 0x7C), max_elements=4)
            response_tag = tlv.find(template, 0x82)
            challenge = tlv.find(template, 0x81)
        except tlv.TlvError:
            return SW_WRONG_DATA
        if response_tag != b"" or challenge is None or len(challenge) != 32:
            return SW_WRONG_DATA
        if slot == 0x9C:
            if not self.sign_authorized:
                return SW_SECURITY_NOT_SATISFIED
            self.sign_authorized = False
        elif not self.pin_verified:
            return SW_SECURITY_NOT_SATISFIED
        signature = self.keys[slot].sign(challenge, ec.ECDSA(Prehashed(hashes.SHA256())))
        self.signatures_made += 1
        return _sw(tlv.encode(0x7C, tlv.encode(0x82, signature)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vaultd.kiosk.virtual_card",
        description="Insert a virtual PIV card into pcscd's vpcd reader (vsmartcard-vpcd) and serve it "
        "until the reader goes away or the program is interrupted.",
    )
    parser.add_argument("--card-dir", required=True, type=Path, help="folder made by vaultd.kiosk.devca")
    parser.add_argument("--host", default="127.0.0.1", help="where pcscd's vpcd driver listens")
    parser.add_argument(
        "--port", type=int, default=VPCD_PORT, help="vpcd port: 35963 is reader 'Virtual PCD 00 00'"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    card = VirtualPivCard(args.card_dir)
    link = VpcdLink(card, args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: link.remove())
    try:
        link.insert(connect_timeout=30)
        log.info("virtual PIV card inserted in the vpcd reader at %s:%d", args.host, args.port)
        link.serve_forever()
    except KeyboardInterrupt:
        link.remove()
    except OSError as exc:
        print(f"cannot reach the vpcd reader at {args.host}:{args.port}: {exc} (is pcscd running?)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
