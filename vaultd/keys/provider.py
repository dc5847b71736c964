"""The key provider interface: a versioned master key (KEK) that wraps and unwraps vault keys.

A provider never hands out its master key: it only wraps (encrypts) and unwraps (decrypts and
authenticates) short secrets under a given KEK version, with associated data binding the wrapped key
to its vault and purpose. ``rotate`` makes a new KEK version that becomes current; old versions keep
unwrapping until every vault key has been re-wrapped, and until ``retire`` removes them for good.

Wrapped form (every provider): ``b"VK1" || u32 kek_version || 12-byte nonce || AES-256-GCM(ct || tag)``.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod

from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument, NotFound

__all__ = ["KeyProvider", "WRAP_MAGIC", "pack_wrapped", "unpack_wrapped"]

WRAP_MAGIC = b"VK1"
_I = struct.Struct(">I")
NONCE_LEN = 12


def pack_wrapped(version: int, nonce: bytes, ct: bytes) -> bytes:
    return WRAP_MAGIC + _I.pack(version) + nonce + ct


def unpack_wrapped(wrapped: bytes) -> tuple[int, bytes, bytes]:
    if len(wrapped) < 3 + 4 + NONCE_LEN + 16 or wrapped[:3] != WRAP_MAGIC:
        raise IntegrityError("a wrapped key is malformed (bad header or too short)")
    (version,) = _I.unpack_from(wrapped, 3)
    nonce = wrapped[7 : 7 + NONCE_LEN]
    return int(version), nonce, wrapped[7 + NONCE_LEN :]


class KeyProvider(ABC):
    """A source of master keys. Thread-safe: wrap/unwrap may be called from any thread."""

    name: str = "abstract"

    @abstractmethod
    def current_version(self) -> int:
        """The KEK version new wraps use."""

    @abstractmethod
    def versions(self) -> list[int]:
        """Every KEK version this provider can still unwrap with."""

    @abstractmethod
    def wrap(self, secret: bytes, aad: bytes, version: int | None = None) -> bytes:
        """Encrypt ``secret`` under KEK ``version`` (default: current), binding ``aad``."""

    @abstractmethod
    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """Decrypt and authenticate; IntegrityError if the tag, the aad or the version is wrong."""

    @abstractmethod
    def rotate(self) -> int:
        """Make a new KEK version, make it current and return it."""

    @abstractmethod
    def retire(self, version: int) -> None:
        """Remove KEK ``version`` for good: nothing wrapped under it unwraps any more. NotFound for a
        version the provider does not hold, FailedPrecondition for the current version. The provider
        does not know which vault keys a version still wraps: ``Vaults.retire_key`` checks that."""

    def check_retirable(self, version: int) -> None:
        """Refuse retiring ``version`` when it is unknown (NotFound) or current (FailedPrecondition)."""
        if version not in self.versions():
            raise NotFound(f"there is no master key version {version} (versions: {self.versions()})")
        if version == self.current_version():
            raise FailedPrecondition(
                f"master key version {version} is the current one; rotate first (vaultctl keys rotate), "
                "then retire it"
            )

    def ready(self) -> bool:
        """True once the provider can wrap and unwrap (keyring unlocked, token logged in)."""
        return True

    def close(self) -> None:
        """Release resources (token sessions)."""

    @staticmethod
    def check_secret(secret: bytes) -> None:
        if not isinstance(secret, (bytes, bytearray)) or not 16 <= len(secret) <= 64:
            raise InvalidArgument("a key to wrap must be 16 to 64 bytes")
