"""Errors every layer of vaultd may raise.

This module is a leaf: it imports nothing from the project. The transport layer maps each class to
one gRPC status code in a single table (``vaultd/transport/status.py``); the Rust core raises the
classes defined here (they are imported into the extension, never redefined there).

Messages are written for the person who reads them: they say what was wrong and, where it helps,
what to do. They never contain key material or document content.
"""

from __future__ import annotations

__all__ = [
    "VaultError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "Unauthenticated",
    "FailedPrecondition",
    "ResourceExhausted",
    "IntegrityError",
    "Unavailable",
    "Aborted",
    "Cancelled",
    "DeadlineExceeded",
]


class VaultError(Exception):
    """Base class of every error vaultd raises on purpose."""


class InvalidArgument(VaultError, ValueError):
    """The request is malformed: a bad size, a key of the wrong length, a name out of bounds."""


class NotFound(VaultError, LookupError):
    """The vault, object or version does not exist (or the caller may not know that it does)."""


class AlreadyExists(VaultError):
    """The thing to create exists already."""


class PermissionDenied(VaultError):
    """The caller is known but the policy does not let it do this on this vault."""


class Unauthenticated(VaultError):
    """The caller could not be identified: no or bad certificate, expired or foreign token."""


class FailedPrecondition(VaultError):
    """The state forbids the operation: a retention date or legal hold stands, a key is locked."""


class ResourceExhausted(VaultError):
    """A bound is reached: the storage map is full, an object is too large, too many streams."""


class IntegrityError(VaultError):
    """Stored or received data failed an integrity check (AEAD tag, chunk id, digest, proof).

    Raised instead of returning data: no byte that failed its check is ever handed out.
    """


class Unavailable(VaultError):
    """The service cannot answer now (shutting down, keys not unlocked); retrying later may work."""


class Aborted(VaultError):
    """The operation was aborted by a conflict; retrying it may work."""


class Cancelled(VaultError):
    """The caller went away before the operation finished; nothing was kept."""


class DeadlineExceeded(VaultError):
    """The operation did not finish before the caller's deadline; nothing was kept."""
