"""PIV client over PC/SC (pyscard): the kiosk's side of the citizen card (NIST SP 800-73-4).

Only standard PIV commands are used (SELECT, GET DATA, VERIFY, GENERAL AUTHENTICATE, GET RESPONSE),
so any PIV card works, not one vendor's. Long commands are sent with command chaining; long replies
are collected with GET RESPONSE. Replies are untrusted: every one is bounded in size and parsed as
strict BER-TLV. Failures raise the classes below, each with a message a kiosk can show as it is.
The PIN is only ever held in memory for the VERIFY command; it is never logged.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from vaultd.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable, VaultError
from vaultd.kiosk import tlv

__all__ = [
    "PIV_AID",
    "SLOT_AUTH",
    "SLOT_SIGN",
    "PivError",
    "NoReader",
    "NoCard",
    "CardRemoved",
    "NotPivCard",
    "WrongPin",
    "PinBlocked",
    "PinRequired",
    "CardError",
    "PivCard",
    "list_readers",
]

PIV_AID = bytes.fromhex("A000000308000010000100")
SLOT_AUTH = 0x9A
SLOT_SIGN = 0x9C
ALG_ECC_P256 = 0x11
_CERT_OBJECTS = {SLOT_AUTH: 0x5FC105, SLOT_SIGN: 0x5FC10A}

MAX_RESPONSE = 32 * 1024  # no PIV data object comes close; a card that sends more is refused
MAX_GET_RESPONSE_ROUNDS = 256
MAX_CERT = 16 * 1024


class PivError(VaultError):
    """Base class of card and reader failures."""


class NoReader(PivError, Unavailable):
    def __init__(self, detail: str = "") -> None:
        super().__init__("No smart-card reader found. Plug the card reader in." + (f" ({detail})" if detail else ""))


class NoCard(PivError, Unavailable):
    def __init__(self, reader: str = "") -> None:
        super().__init__(f"No card in the reader {reader!r}. Insert your card." if reader else "No card. Insert your card.")


class CardRemoved(PivError, Unavailable):
    def __init__(self) -> None:
        super().__init__("The card was removed before the operation finished. Nothing was signed.")


class NotPivCard(PivError, InvalidArgument):
    def __init__(self) -> None:
        super().__init__("This card is not a citizen card (it has no PIV application).")


class WrongPin(PivError, PermissionDenied):
    def __init__(self, retries_left: int) -> None:
        self.retries_left = retries_left
        super().__init__(f"Wrong PIN: {retries_left} attempt{'s' if retries_left != 1 else ''} left.")


class PinBlocked(PivError, PermissionDenied):
    def __init__(self) -> None:
        super().__init__("The card's PIN is blocked after too many wrong attempts. Contact the city office.")


class PinRequired(PivError, PermissionDenied):
    def __init__(self) -> None:
        super().__init__("The card needs the PIN before it signs.")


class CardError(PivError, FailedPrecondition):
    def __init__(self, what: str, sw: int) -> None:
        self.sw = sw
        super().__init__(f"The card refused {what} (status {sw:04X}).")


def list_readers() -> list[str]:
    from smartcard.Exceptions import SmartcardException  # type: ignore[import-untyped]
    from smartcard.System import readers  # type: ignore[import-untyped]

    try:
        return [str(r) for r in readers()]
    except SmartcardException as exc:  # no PC/SC service or no reader
        raise NoReader(str(exc)) from exc
    except Exception as exc:  # pcsc errors are not all SmartcardException subclasses
        raise NoReader(str(exc)) from exc


@contextmanager
def _card_errors() -> Iterator[None]:
    from smartcard.Exceptions import CardConnectionException, NoCardException

    try:
        yield
    except NoCardException as exc:
        raise NoCard() from exc
    except CardConnectionException as exc:
        raise CardRemoved() from exc


def _pad_pin(pin: str) -> bytes:
    raw = pin.encode("ascii", errors="strict") if pin.isascii() else b""
    if not 6 <= len(raw) <= 8:
        raise InvalidArgument("A PIN has 6 to 8 characters.")
    return raw + b"\xff" * (8 - len(raw))


class PivCard:
    """A PIV card in a PC/SC reader. Use ``PivCard.open(reader)`` then ``select()``."""

    def __init__(self, connection: object, reader: str) -> None:
        self._conn = connection
        self.reader = reader
        self.apdus_sent = 0

    @classmethod
    def open(cls, reader: str | None = None) -> PivCard:
        """Connects to the card in ``reader`` (a name or a name prefix; default: the first reader)."""
        from smartcard.System import readers

        try:
            available = readers()
        except Exception as exc:
            raise NoReader(str(exc)) from exc
        if not available:
            raise NoReader()
        chosen = available[0] if reader is None else next(
            (r for r in available if str(r) == reader or str(r).startswith(reader)), None
        )
        if chosen is None:
            raise NoReader(f"no reader named {reader!r}")
        conn = chosen.createConnection()
        with _card_errors():
            conn.connect()
        return cls(conn, str(chosen))

    def close(self) -> None:
        """Disconnects; the reader powers the card down, which clears its PIN status."""
        try:
            self._conn.disconnect()  # type: ignore[attr-defined]
        except Exception:
            pass

    def __enter__(self) -> PivCard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- APDU level ----------------------------------------------------------------------------
    def _raw(self, apdu: bytes) -> tuple[bytes, int]:
        with _card_errors():
            data, sw1, sw2 = self._conn.transmit(list(apdu))  # type: ignore[attr-defined]
        self.apdus_sent += 1
        if len(data) > 256:
            raise CardError("a reply longer than a short APDU allows", (sw1 << 8) | sw2)
        return bytes(data), (sw1 << 8) | sw2

    def transmit(self, ins: int, p1: int, p2: int, data: bytes = b"", *, le: bool = True) -> tuple[bytes, int]:
        """Sends one command (chained when longer than 255 bytes) and collects the whole reply."""
        parts = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            cla = 0x00 if last else 0x10
            apdu = bytes([cla, ins, p1, p2])
            if part:
                apdu += bytes([len(part)]) + part
            if last and le:
                apdu += b"\x00"
            reply, sw = self._raw(apdu)
            if not last and sw != 0x9000:
                return b"", sw
        out = bytearray(reply)
        rounds = 0
        while True:
            if sw >> 8 == 0x6C:  # wrong Le: send again with the length the card asks for
                reply, sw = self._raw(apdu[:-1] + bytes([sw & 0xFF]))
                out = bytearray(reply)
            elif sw >> 8 == 0x61:
                rounds += 1
                if rounds > MAX_GET_RESPONSE_ROUNDS:
                    raise CardError("to end its reply", sw)
                reply, sw = self._raw(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
                out += reply
            else:
                break
            if len(out) > MAX_RESPONSE:
                raise CardError("to keep its reply within bounds", sw)
        return bytes(out), sw

    # -- PIV commands --------------------------------------------------------------------------
    def select(self) -> bytes:
        """Selects the PIV application; returns its application property template."""
        data, sw = self.transmit(0xA4, 0x04, 0x00, PIV_AID)
        if sw in (0x6A82, 0x6A81, 0x6D00, 0x6E00):
            raise NotPivCard()
        if sw != 0x9000:
            raise CardError("to select the PIV application", sw)
        if data:
            try:
                tlv.parse_one(data, 0x61)
            except tlv.TlvError as exc:
                raise NotPivCard() from exc
        return data

    def get_data(self, tag: int) -> bytes:
        """Reads a data object; returns the value of its 53 (or 7E) container."""
        tag_bytes = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
        data, sw = self.transmit(0xCB, 0x3F, 0xFF, tlv.encode(0x5C, tag_bytes))
        if sw == 0x6A82:
            raise CardError(f"to read data object {tag:X} (absent)", sw)
        if sw != 0x9000:
            raise CardError(f"to read data object {tag:X}", sw)
        return tlv.parse_one(data, 0x7E if tag == 0x7E else 0x53)

    def read_certificate(self, slot: int) -> x509.Certificate:
        """The X.509 certificate of ``slot`` (9A or 9C), decompressed if the card stores it gzipped."""
        if slot not in _CERT_OBJECTS:
            raise InvalidArgument(f"no certificate object for slot {slot:02X}")
        items = tlv.parse(self.get_data(_CERT_OBJECTS[slot]), max_elements=8)
        cert = tlv.find(items, 0x70)
        info = tlv.find(items, 0x71, required=False) or b"\x00"
        assert cert is not None
        if info[:1] == b"\x01":  # CertInfo bit 0: the certificate is gzip-compressed
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(cert)) as f:
                    cert = f.read(MAX_CERT + 1)
            except (OSError, EOFError, zlib.error) as exc:
                raise CardError("to give a readable certificate", 0x9000) from exc
        if len(cert) > MAX_CERT:
            raise CardError("to give a certificate of a sensible size", 0x9000)
        try:
            return x509.load_der_x509_certificate(cert)
        except (ValueError, x509.InvalidVersion) as exc:  # a card is an untrusted source
            raise CardError("to give a valid certificate", 0x9000) from exc

    def pin_retries(self) -> int | None:
        """Attempts left before the PIN blocks; None once the PIN is verified in this session."""
        _, sw = self.transmit(0x20, 0x00, 0x80, le=False)
        if sw == 0x9000:
            return None
        if sw == 0x6983:
            return 0
        if sw & 0xFFF0 == 0x63C0:
            return sw & 0x0F
        raise CardError("to report the PIN status", sw)

    def verify_pin(self, pin: str) -> None:
        """Verifies the PIN; raises WrongPin (with the attempts left) or PinBlocked."""
        padded = _pad_pin(pin)
        _, sw = self.transmit(0x20, 0x00, 0x80, padded, le=False)
        if sw == 0x9000:
            return
        if sw == 0x6983:
            raise PinBlocked()
        if sw & 0xFFF0 == 0x63C0:
            left = sw & 0x0F
            if left == 0:
                raise PinBlocked()
            raise WrongPin(left)
        raise CardError("the PIN", sw)

    def logout(self) -> None:
        """Clears the PIN status (VERIFY with P1=FF); cards that do not know it are reset instead."""
        _, sw = self.transmit(0x20, 0xFF, 0x80, le=False)
        if sw != 0x9000:
            self.close()

    def sign_digest(self, slot: int, digest: bytes) -> bytes:
        """ECDSA P-256 over a SHA-256 digest with the key of ``slot``; returns a DER signature."""
        if len(digest) != 32:
            raise InvalidArgument("ECDSA P-256 signs a 32-byte SHA-256 digest")
        template = tlv.encode(0x7C, tlv.encode(0x82, b"") + tlv.encode(0x81, digest))
        data, sw = self.transmit(0x87, ALG_ECC_P256, slot, template)
        if sw == 0x6982:
            raise PinRequired()
        if sw == 0x6983:
            raise PinBlocked()
        if sw != 0x9000:
            raise CardError(f"to sign with slot {slot:02X}", sw)
        items = tlv.parse(tlv.parse_one(data, 0x7C), max_elements=4)
        signature = tlv.find(items, 0x82)
        assert signature is not None
        if len(signature) > 80:
            raise CardError("to give an ECDSA P-256 signature of a sensible size", sw)
        try:
            r, s = decode_dss_signature(signature)
        except ValueError as exc:
            raise CardError("to give a well-formed ECDSA signature", sw) from exc
        if r <= 0 or s <= 0:
            raise CardError("to give a well-formed ECDSA signature", sw)
        return signature
