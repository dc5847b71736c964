"""The journal signing key: Ed25519 in a key file, or ECDSA P-256 inside a PKCS#11 token.

A signer has a ``name`` (the key name in signed notes), a ``key_id``, ``sign(message) -> signature``
in the signed-note form of its type (Ed25519: 64 bytes over the message; ECDSA: ASN.1 DER over
SHA-256(message)), and ``verifier()`` (the public half, see :mod:`vaultd.journal.checkpoint`).
The private key of a PKCS#11 signer never leaves the token. Key material is never logged.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from vaultd import crypto
from vaultd.errors import FailedPrecondition, InvalidArgument, NotFound
from vaultd.journal.checkpoint import Verifier

__all__ = ["NoteSigner", "Ed25519Signer", "Pkcs11EcdsaSigner"]


class NoteSigner(Protocol):
    name: str
    key_id: bytes

    def sign(self, message: bytes) -> bytes: ...

    def verifier(self) -> Verifier: ...


class Ed25519Signer:
    """Ed25519 journal key held in memory, loaded from (or created in) a PKCS#8 PEM file of mode 0600.

    The private key is kept by the Rust core (``Ed25519SigningKey``, zeroized when dropped), which
    signs with the GIL released: the journal signs a checkpoint per group commit on the store writer's
    thread, and a signature that held the GIL (about 45 us with ``cryptography`` here) kept every other
    thread of the daemon waiting meanwhile."""

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey) -> None:
        seed = bytearray(private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
        try:
            self._key = crypto.Ed25519SigningKey(seed)
        finally:
            seed[:] = bytes(len(seed))
        self._verifier = Verifier(name, private_key.public_key())
        if self._key.public_key() != self._verifier.key_bytes:
            raise InvalidArgument("journal key: the signing key does not match its public key")
        self.name = name
        self.key_id = self._verifier.key_id

    def __repr__(self) -> str:
        return f"Ed25519Signer({self.name!r}, key_id={self.key_id.hex()})"

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    @property
    def core_key(self) -> crypto.Ed25519SigningKey:
        """The key as the Rust core holds it, for the journal's one-call checkpoint signing (the
        private key never leaves the core)."""
        return self._key

    def verifier(self) -> Verifier:
        return self._verifier

    @classmethod
    def load_or_create(cls, path: Path | str, name: str) -> Ed25519Signer:
        """Load the key file; create it (mode 0600, exclusively) on first run. Refuse a key file that
        others may read."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            key = ed25519.Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            return cls(name, key)
        try:
            st = os.fstat(fd)
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise FailedPrecondition(
                    f"journal key file {path.name} is accessible to group or others; chmod 600 it"
                )
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
                if len(data) > 64 * 1024:
                    raise InvalidArgument("journal key file is too large")
        finally:
            os.close(fd)
        loaded = serialization.load_pem_private_key(data, password=None)
        if not isinstance(loaded, ed25519.Ed25519PrivateKey):
            raise InvalidArgument("journal key file does not hold an Ed25519 private key")
        return cls(name, loaded)


class Pkcs11EcdsaSigner:
    """ECDSA P-256 journal key inside a PKCS#11 token (an HSM; SoftHSM2 in tests).

    The token computes the raw ECDSA signature of SHA-256(message) (CKM_ECDSA); the private key is
    generated on the token (CKA_SENSITIVE, not extractable) and never leaves it.
    """

    def __init__(
        self,
        name: str,
        *,
        module: str,
        token_label: str,
        pin: str,
        key_label: str = "vaultd-journal",
        create: bool = True,
    ) -> None:
        import pkcs11

        from vaultd.keys.hsm import open_user_session
        from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
        from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

        self._mech = Mechanism.ECDSA
        self._lock = threading.Lock()
        lib = pkcs11.lib(module)
        try:
            token = lib.get_token(token_label=token_label)
        except pkcs11.NoSuchToken:
            raise NotFound(f"PKCS#11 token {token_label!r} not found") from None
        self._session: Any = open_user_session(token, pin)
        priv: Any
        pub: Any
        try:
            priv = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC, label=key_label)
            pub = self._session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.EC, label=key_label)
        except pkcs11.NoSuchKey:
            if not create:
                raise NotFound(f"no journal key {key_label!r} on the PKCS#11 token") from None
            params = self._session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
            )
            pub, priv = params.generate_keypair(
                store=True,
                label=key_label,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
        self._priv = priv
        spki = encode_ec_public_key(pub)
        public_key = serialization.load_der_public_key(spki)
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
            raise InvalidArgument(f"PKCS#11 key {key_label!r} is not an ECDSA P-256 key")
        self._verifier = Verifier(name, public_key)
        self.name = name
        self.key_id = self._verifier.key_id

    def __repr__(self) -> str:
        return f"Pkcs11EcdsaSigner({self.name!r}, key_id={self.key_id.hex()})"

    def sign(self, message: bytes) -> bytes:
        digest = hashlib.sha256(bytes(message)).digest()
        with self._lock:
            raw = self._priv.sign(digest, mechanism=self._mech)
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def verifier(self) -> Verifier:
        return self._verifier

    def close(self) -> None:
        with self._lock:
            self._session.close()
