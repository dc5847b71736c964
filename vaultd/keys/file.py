"""The ``file`` key provider: a keyring file in the data folder (the default).

The keyring is made on first run, mode 0600, written atomically (temporary file, fsync, rename,
fsync of the folder). It holds every KEK version (32 random bytes each). With a passphrase, the
versions are sealed with AES-256-GCM under a key derived by scrypt (n=2**15, r=8, p=1, 16-byte salt);
without one they are stored base64-encoded and the file mode is their only protection. A keyring
readable by group or others is refused.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument, Unauthenticated
from vaultd.keys.provider import NONCE_LEN, KeyProvider, pack_wrapped, unpack_wrapped

__all__ = ["FileKeyProvider", "KEYRING_NAME"]

KEYRING_NAME = "keyring.json"
_FORMAT = 1
_SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


class FileKeyProvider(KeyProvider):
    name = "file"

    def __init__(self, path: Path, passphrase: str | bytes | None = None) -> None:
        """Open the keyring at ``path`` (a file, or a folder holding ``keyring.json``), making it on
        first run. A wrong passphrase raises Unauthenticated; a missing one for a sealed keyring
        raises FailedPrecondition."""
        if path.is_dir() or not path.suffix:
            path = path / KEYRING_NAME
        self.path = path
        self._lock = threading.Lock()
        self._passphrase = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        self._keks: dict[int, bytes] = {}
        self._current = 0
        if path.exists():
            self._load()
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._keks = {1: secrets.token_bytes(32)}
            self._current = 1
            self._save()

    # --- file format ----------------------------------------------------------------------------

    def _load(self) -> None:
        st = os.stat(self.path)
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise FailedPrecondition(
                f"keyring {self.path} is readable by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {self.path}"
            )
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as e:
            raise FailedPrecondition(f"keyring {self.path} cannot be read: {e}") from None
        if doc.get("format") != _FORMAT:
            raise FailedPrecondition(f"keyring {self.path} has an unknown format")
        if doc.get("kdf") is not None:
            if not self._passphrase:
                raise FailedPrecondition(
                    f"keyring {self.path} is sealed with a passphrase; provide it (VAULTD_KEYRING_PASSPHRASE)"
                )
            kdf = doc["kdf"]
            key = self._derive(_unb64(kdf["salt"]), kdf)
            sealed = _unb64(doc["sealed"])
            try:
                plain = AESGCM(key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], b"vaultd keyring v1")
            except InvalidTag:
                raise Unauthenticated(f"wrong passphrase for keyring {self.path}") from None
            body = json.loads(plain)
        else:
            if self._passphrase:
                raise FailedPrecondition(
                    f"keyring {self.path} is not sealed but a passphrase was given; refusing to guess"
                )
            body = doc["keys"]
        self._keks = {int(v): _unb64(k) for v, k in body["keks"].items()}
        self._current = int(body["current"])
        if self._current not in self._keks or any(len(k) != 32 for k in self._keks.values()):
            raise FailedPrecondition(f"keyring {self.path} is inconsistent")

    def _derive(self, salt: bytes, params: dict[str, Any]) -> bytes:
        assert self._passphrase is not None
        return Scrypt(salt=salt, length=32, n=int(params["n"]), r=int(params["r"]), p=int(params["p"])).derive(
            self._passphrase
        )

    def _save(self) -> None:
        body = {"keks": {str(v): _b64(k) for v, k in sorted(self._keks.items())}, "current": self._current}
        doc: dict[str, Any] = {"format": _FORMAT, "provider": "file"}
        if self._passphrase:
            salt = secrets.token_bytes(16)
            kdf = dict(_SCRYPT, name="scrypt", salt=_b64(salt))
            key = self._derive(salt, kdf)
            nonce = secrets.token_bytes(NONCE_LEN)
            sealed = nonce + AESGCM(key).encrypt(nonce, json.dumps(body).encode(), b"vaultd keyring v1")
            doc.update(kdf=kdf, sealed=_b64(sealed))
        else:
            doc.update(kdf=None, keys=body)
        data = json.dumps(doc, indent=1).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # --- KeyProvider ----------------------------------------------------------------------------

    def current_version(self) -> int:
        return self._current

    def versions(self) -> list[int]:
        return sorted(self._keks)

    def wrap(self, secret: bytes, aad: bytes, version: int | None = None) -> bytes:
        self.check_secret(secret)
        v = self._current if version is None else version
        kek = self._keks.get(v)
        if kek is None:
            raise InvalidArgument(f"no master key version {v} in keyring {self.path}")
        nonce = secrets.token_bytes(NONCE_LEN)
        return pack_wrapped(v, nonce, AESGCM(kek).encrypt(nonce, bytes(secret), aad))

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        v, nonce, ct = unpack_wrapped(wrapped)
        kek = self._keks.get(v)
        if kek is None:
            raise FailedPrecondition(f"master key version {v} is not in keyring {self.path}")
        try:
            return AESGCM(kek).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise IntegrityError("a wrapped vault key failed authentication") from None

    def rotate(self) -> int:
        with self._lock:
            v = max(self._keks) + 1
            self._keks[v] = secrets.token_bytes(32)
            self._current = v
            self._save()
            return v
