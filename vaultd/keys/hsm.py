"""The ``pkcs11`` key provider: master keys live in a PKCS#11 token (an HSM; SoftHSM2 in tests).

Each KEK version is an AES-256 secret key object in the token, labelled ``<label_prefix>-<version>``,
generated inside the token with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false: its value never leaves
it. Wrapping and unwrapping are CKM_AES_GCM encrypt/decrypt operations performed inside the token
(12-byte nonce chosen here, 128-bit tag, the associated data passed through). The current version is
the highest label present. Retiring a version destroys its key object in the token.

Anyone holding the token PIN can create objects with such a label, so every key found under the prefix
is checked when the provider opens: it must have been generated in the token (CKA_LOCAL) and be, and
always have been, sensitive and unextractable (CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE,
CKA_NEVER_EXTRACTABLE true, CKA_EXTRACTABLE false). A key imported, or one whose value could ever
leave the token, is refused, as are two keys with the same label: the provider does not start.

Uses python-pkcs11 (a maintained Cython binding over the Cryptoki C API).
"""

from __future__ import annotations

import re
import secrets
import threading
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.mechanisms import GCMParams

from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument, Unauthenticated
from vaultd.keys.provider import NONCE_LEN, KeyProvider, pack_wrapped, unpack_wrapped

__all__ = ["Pkcs11KeyProvider"]

# What a KEK's attributes must be: generated in the token, its value never readable nor wrappable out.
_KEK_ATTRIBUTES = (
    (Attribute.LOCAL, "CKA_LOCAL", True),
    (Attribute.SENSITIVE, "CKA_SENSITIVE", True),
    (Attribute.ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", True),
    (Attribute.EXTRACTABLE, "CKA_EXTRACTABLE", False),
    (Attribute.NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", True),
)


def open_user_session(token: Any, pin: str) -> Any:
    """A read-write session on ``token`` in the user's logged-in state.

    PKCS#11 keeps the login per application, not per session: once one session of this process has
    logged in (the master-key provider, say), every session it opens is already in the user state and
    a second C_Login fails with CKR_USER_ALREADY_LOGGED_IN. That answer means the state we want.
    """
    try:
        return token.open(user_pin=pin, rw=True)
    except pkcs11.exceptions.UserAlreadyLoggedIn:
        return token.open(rw=True)


class Pkcs11KeyProvider(KeyProvider):
    name = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str, label_prefix: str = "vaultd-kek") -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", label_prefix):
            raise InvalidArgument("the KEK label prefix must be 1 to 32 characters of A-Z a-z 0-9 . _ -")
        self._prefix = label_prefix
        self._token_label = token_label
        self._lock = threading.Lock()
        try:
            self._lib = pkcs11.lib(module)
            self._token = self._lib.get_token(token_label=token_label)
        except (PKCS11Error, RuntimeError, OSError) as e:
            raise FailedPrecondition(f"PKCS#11 token {token_label!r} via {module} is unavailable: {e!r}") from None
        try:
            self._session = open_user_session(self._token, pin)
        except pkcs11.exceptions.PinIncorrect:
            raise Unauthenticated(f"wrong PIN for PKCS#11 token {token_label!r}") from None
        except PKCS11Error as e:
            raise FailedPrecondition(f"cannot log in to PKCS#11 token {token_label!r}: {e!r}") from None
        self._keys: dict[int, Any] = {}
        try:
            self._load()
        except FailedPrecondition:
            self.close()
            raise
        if not self._keys:
            self._generate(1)

    def _load(self) -> None:
        pat = re.compile(re.escape(self._prefix) + r"-(\d+)")
        for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}):
            m = pat.fullmatch(getattr(obj, "label", None) or "")
            if m:
                version = int(m.group(1))
                if version in self._keys:
                    raise FailedPrecondition(
                        f"PKCS#11 token {self._token_label!r} holds two keys labelled {m.group(0)!r}; "
                        "refusing to guess which is the master key: remove the one vaultd did not generate"
                    )
                self._check_kek(m.group(0), obj)
                self._keys[version] = obj

    def _check_kek(self, label: str, key: Any) -> None:
        """Refuse a key that was not generated in the token or whose value could leave it."""
        for attribute, name, wanted in _KEK_ATTRIBUTES:
            try:
                value = key[attribute]
            except PKCS11Error as e:
                value = f"unreadable ({type(e).__name__})"
            if value is not wanted:
                raise FailedPrecondition(
                    f"key {label!r} in PKCS#11 token {self._token_label!r} has {name}={value} (must be {wanted}): "
                    "a master key must be generated in the token, sensitive and never extractable; it was not "
                    "made by vaultd, remove or relabel it"
                )

    def _generate(self, version: int) -> None:
        key = self._session.generate_key(
            KeyType.AES,
            256,
            label=f"{self._prefix}-{version}",
            store=True,
            capabilities=pkcs11.MechanismFlag.ENCRYPT | pkcs11.MechanismFlag.DECRYPT,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.PRIVATE: True,
                Attribute.TOKEN: True,
            },
        )
        self._keys[version] = key

    def current_version(self) -> int:
        return max(self._keys)

    def versions(self) -> list[int]:
        return sorted(self._keys)

    def wrap(self, secret: bytes, aad: bytes, version: int | None = None) -> bytes:
        self.check_secret(secret)
        v = self.current_version() if version is None else version
        key = self._keys.get(v)
        if key is None:
            raise InvalidArgument(f"no master key version {v} in the token")
        nonce = secrets.token_bytes(NONCE_LEN)
        with self._lock:
            ct = key.encrypt(bytes(secret), mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad, 128))
        return pack_wrapped(v, nonce, bytes(ct))

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        v, nonce, ct = unpack_wrapped(wrapped)
        key = self._keys.get(v)
        if key is None:
            raise FailedPrecondition(f"master key version {v} is not in the token")
        try:
            with self._lock:
                return bytes(key.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad, 128)))
        except PKCS11Error:
            raise IntegrityError("a wrapped vault key failed authentication in the token") from None

    def rotate(self) -> int:
        with self._lock:
            v = self.current_version() + 1
            self._generate(v)
            return v

    def retire(self, version: int) -> None:
        """Destroy the key object of ``version`` in the token (C_DestroyObject)."""
        with self._lock:
            self.check_retirable(version)
            try:
                self._keys[version].destroy()
            except PKCS11Error as e:
                raise FailedPrecondition(
                    f"PKCS#11 token {self._token_label!r} refused to destroy master key version {version}: {e!r}"
                ) from None
            del self._keys[version]

    def ready(self) -> bool:
        return bool(self._keys)

    def close(self) -> None:
        try:
            self._session.close()
        except PKCS11Error:
            pass
