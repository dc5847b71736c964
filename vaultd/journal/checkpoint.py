"""Checkpoints (signed tree heads) in the C2SP tlog-checkpoint signed-note format.

A checkpoint body is::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, base64>\\n
    [<extension line>\\n ...]

and the signed note appends a blank line and one line per signature: ``— <key name> <base64(key id ||
signature)>`` (c2sp.org/signed-note). Public transparency tooling (the Go ``note`` and ``tlog``
packages, witnesses) can read them.

Signature types:

* ``0x01`` Ed25519 over the note text; key id = SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4];
  verifier key ``<name>+<hex key id>+<base64(0x01 || key)>``.
* ``0x02`` ECDSA as assigned by c2sp.org/signed-note (the transparency-dev/witness form), used for a
  P-256 key held in an HSM: ASN.1 DER ECDSA signature over SHA-256(note text); key id = SHA-256(DER
  SubjectPublicKeyInfo)[:4]; verifier key ``<name>+<hex key id>+<base64(0x02 || DER SPKI)>``.

Parsing is strict and bounded: at most 16 KiB, valid UTF-8, no control characters other than newline,
at most 16 signatures and 64 extension lines; a tree size without leading zeros; a 32-byte root.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from vaultd.errors import IntegrityError, InvalidArgument

__all__ = [
    "SIG_ED25519",
    "SIG_ECDSA",
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "SignedNote",
    "Verifier",
    "load_verifier",
    "sign_note",
    "open_checkpoint",
]

SIG_ED25519 = 0x01
SIG_ECDSA = 0x02
MAX_NOTE_SIZE = 16 * 1024
MAX_SIGNATURES = 16
MAX_EXTENSIONS = 64
MAX_LINE = 1024
_DASH = "\u2014 "


class CheckpointError(IntegrityError):
    """A checkpoint or signed note is malformed or its signature does not verify."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CheckpointError(f"{what}: not valid base64") from None


def _check_name(name: str) -> None:
    if not name or len(name) > 256 or any(c.isspace() or c == "+" for c in name):
        raise InvalidArgument("note key name: 1..256 characters, no spaces and no '+'")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> bytes:
        if not self.origin or "\n" in self.origin or len(self.origin) > MAX_LINE:
            raise InvalidArgument("checkpoint origin: one non-empty line")
        if len(self.root) != 32 or self.size < 0:
            raise InvalidArgument("checkpoint: root must be 32 bytes and size non-negative")
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise InvalidArgument("checkpoint extension: one non-empty line")
            lines.append(ext)
        return ("\n".join(lines) + "\n").encode()

    @staticmethod
    def parse_body(text: bytes) -> Checkpoint:
        try:
            s = text.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("checkpoint: not valid UTF-8") from None
        if not s.endswith("\n"):
            raise CheckpointError("checkpoint: the body must end with a newline")
        lines = s[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint: needs an origin, a size and a root hash line")
        origin, size_s, root_s, *ext = lines
        if not origin:
            raise CheckpointError("checkpoint: empty origin line")
        if not size_s.isascii() or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")) or len(size_s) > 20:
            raise CheckpointError(f"checkpoint: tree size {size_s[:32]!r} is not a decimal number")
        size = int(size_s)
        if size >= 1 << 64:
            raise CheckpointError("checkpoint: tree size out of range")
        root = _b64decode(root_s, "checkpoint root hash")
        if len(root) != 32:
            raise CheckpointError(f"checkpoint: root hash is {len(root)} bytes, not 32")
        if len(ext) > MAX_EXTENSIONS or any(not e for e in ext):
            raise CheckpointError("checkpoint: extension lines must be non-empty and few")
        return Checkpoint(origin, size, root, tuple(ext))


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class SignedNote:
    text: bytes
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return self.text + b"\n" + "".join(s.line() for s in self.signatures).encode()

    @staticmethod
    def parse(data: bytes) -> SignedNote:
        data = bytes(data)
        if len(data) > MAX_NOTE_SIZE:
            raise CheckpointError(f"signed note: {len(data)} bytes, more than {MAX_NOTE_SIZE}")
        try:
            s = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("signed note: not valid UTF-8") from None
        if any(ord(c) < 0x20 and c != "\n" for c in s):
            raise CheckpointError("signed note: control characters are not allowed")
        split = s.rfind("\n\n")
        if split < 0 or not s.endswith("\n"):
            raise CheckpointError("signed note: no blank line between the text and the signatures")
        text, sigs = s[: split + 1], s[split + 2 :]
        out: list[NoteSignature] = []
        for line in sigs[:-1].split("\n"):
            if not line.startswith(_DASH):
                raise CheckpointError("signed note: a signature line must start with an em dash and a space")
            parts = line[len(_DASH) :].split(" ")
            if len(parts) != 2 or not parts[0]:
                raise CheckpointError("signed note: a signature line is '— <name> <base64>'")
            raw = _b64decode(parts[1], "signed note signature")
            if len(raw) < 5:
                raise CheckpointError("signed note: signature too short")
            out.append(NoteSignature(parts[0], raw[:4], raw[4:]))
            if len(out) > MAX_SIGNATURES:
                raise CheckpointError(f"signed note: more than {MAX_SIGNATURES} signatures")
        if not out:
            raise CheckpointError("signed note: no signature")
        return SignedNote(text.encode(), tuple(out))


class Verifier:
    """A known journal key: name, signature type, key id and public key."""

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> None:
        _check_name(name)
        self.name = name
        self.public_key = public_key
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            self.sig_type = SIG_ED25519
            self.key_bytes = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            self.key_id = hashlib.sha256(name.encode() + b"\n\x01" + self.key_bytes).digest()[:4]
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
            self.sig_type = SIG_ECDSA
            self.key_bytes = public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self.key_id = hashlib.sha256(self.key_bytes).digest()[:4]
        else:
            raise InvalidArgument("journal key: Ed25519 or ECDSA P-256 only")

    def vkey(self) -> str:
        """The verifier key string (Go ``note`` format) to publish."""
        payload = base64.b64encode(bytes([self.sig_type]) + self.key_bytes).decode()
        return f"{self.name}+{self.key_id.hex()}+{payload}"

    def public_key_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, message)
            else:
                self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False

    @staticmethod
    def from_vkey(vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise InvalidArgument("verifier key: expected <name>+<hex key id>+<base64 key>")
        name, hex_id, b64 = parts
        raw = _b64decode(b64, "verifier key")
        if not raw:
            raise InvalidArgument("verifier key: empty key")
        pub: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
        if raw[0] == SIG_ED25519 and len(raw) == 33:
            pub = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])
        elif raw[0] == SIG_ECDSA:
            loaded = serialization.load_der_public_key(raw[1:])
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise InvalidArgument("verifier key: type 0x02 must hold an ECDSA key")
            pub = loaded
        else:
            raise InvalidArgument(f"verifier key: unsupported signature type 0x{raw[0]:02x}")
        v = Verifier(name, pub)
        if v.key_id.hex() != hex_id.lower():
            raise InvalidArgument("verifier key: the key id does not match the key")
        return v


def load_verifier(data: bytes | str, name: str | None = None) -> Verifier:
    """A verifier from a ``vkey`` string, or from a PEM public key plus the key ``name``."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if "-----BEGIN" in text:
        if name is None:
            raise InvalidArgument("a PEM public key needs the key name (the signer's name in the note)")
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
            raise InvalidArgument("journal key: Ed25519 or ECDSA P-256 only")
        return Verifier(name, key)
    return Verifier.from_vkey(text)


def sign_note(text: bytes, signer: object) -> bytes:
    """Sign ``text`` with a signer (``name``, ``key_id``, ``sign(message)``, see vaultd.journal.signer)."""
    name: str = getattr(signer, "name")
    key_id: bytes = getattr(signer, "key_id")
    sig: bytes = getattr(signer, "sign")(text)
    return SignedNote(text, (NoteSignature(name, key_id, sig),)).encode()


def open_checkpoint(note: bytes, verifier: Verifier) -> Checkpoint:
    """Parse a signed checkpoint and check the journal key's signature on it."""
    parsed = SignedNote.parse(note)
    known = [s for s in parsed.signatures if s.name == verifier.name and s.key_id == verifier.key_id]
    if not known:
        raise CheckpointError(f"checkpoint signature: not signed by the journal key {verifier.name}")
    for s in known:
        if not verifier.verify(parsed.text, s.signature):
            raise CheckpointError(f"checkpoint signature: the signature by {verifier.name} does not verify")
    return Checkpoint.parse_body(parsed.text)
