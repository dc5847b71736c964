"""The ``pkcs11`` key provider: master keys live in a PKCS#11 token (an HSM; SoftHSM2 in tests).

Each KEK version is an AES-256 secret key object in the token, labelled ``<label_prefix>-<version>``,
generated inside the token with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false: its value never leaves
it. Wrapping and unwrapping are CKM_AES_GCM encrypt/decrypt operations performed inside the token
(12-byte nonce chosen here, 128-bit tag, the associated data passed through). The current version is
the highest label present.

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
        self._load()
        if not self._keys:
            self._generate(1)

    def _load(self) -> None:
        pat = re.compile(re.escape(self._prefix) + r"-(\d+)")
        for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}):
            m = pat.fullmatch(getattr(obj, "label", None) or "")
            if m:
                self._keys[int(m.group(1))] = obj

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

    def ready(self) -> bool:
        return bool(self._keys)

    def close(self) -> None:
        try:
            self._session.close()
        except PKCS11Error:
            pass
