"""The ``file`` key provider: a keyring file in the data folder (the default).

The keyring is made on first run, mode 0600, written atomically (temporary file, fsync, rename,
fsync of the folder). It holds every KEK version (32 random bytes each) until it is retired. With a passphrase, the
versions are sealed with AES-256-GCM under a key derived by scrypt (n=2**17, r=8, p=1, 16-byte salt:
OWASP's minimum for scrypt); without one they are stored base64-encoded and the file mode is their
only protection. A keyring readable by group or others is refused.

The scrypt parameters written in a keyring are checked before any derivation: n below 2**17 (a
keyring sealed by an earlier pre-release, or one whose cost was lowered) or above 2**20 (1 GiB of
memory per derivation: a tampered file would stall the daemon), r other than 8 or p other than 1 is
refused. There is no setting for them. The passphrase is used once, to derive the sealing key, and
then wiped; the provider keeps that key and its salt to seal the keyring again on rotation.
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
_SCRYPT = {"n": 1 << 17, "r": 8, "p": 1}
_SCRYPT_MAX_N = 1 << 20
_SALT_LEN = 16


def _b64(b: bytes | bytearray) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


def _derive(passphrase: bytearray, salt: bytes, n: int, r: int, p: int) -> bytearray:
    """The key sealing a keyring, derived in place into a buffer the caller can wipe."""
    key = bytearray(32)
    Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive_into(passphrase, key)
    return key


def _wipe(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))


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
        # The key sealing the keyring (derived from the passphrase) and the scrypt parameters and
        # salt it was derived with; None for a keyring without a passphrase.
        self._seal_key: bytearray | None = None
        self._kdf: dict[str, Any] | None = None
        self._keks: dict[int, bytearray] = {}
        self._current = 0
        secret = bytearray(passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase or b"")
        try:
            if path.exists():
                self._load(secret)
            else:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if secret:
                    salt = secrets.token_bytes(_SALT_LEN)
                    self._kdf = dict(_SCRYPT, name="scrypt", salt=_b64(salt))
                    self._seal_key = _derive(secret, salt, _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"])
                self._keks = {1: bytearray(secrets.token_bytes(32))}
                self._current = 1
                self._save()
        finally:
            _wipe(secret)

    # --- file format ----------------------------------------------------------------------------

    def _load(self, passphrase: bytearray) -> None:
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
            if not passphrase:
                raise FailedPrecondition(
                    f"keyring {self.path} is sealed with a passphrase; provide it (VAULTD_KEYRING_PASSPHRASE)"
                )
            kdf = doc["kdf"]
            salt, n, r, p = self._check_kdf(kdf)
            key = _derive(passphrase, salt, n, r, p)
            sealed = _unb64(doc["sealed"])
            try:
                plain = AESGCM(key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], b"vaultd keyring v1")
            except InvalidTag:
                _wipe(key)
                raise Unauthenticated(f"wrong passphrase for keyring {self.path}") from None
            body = json.loads(plain)
            self._seal_key, self._kdf = key, {"n": n, "r": r, "p": p, "name": "scrypt", "salt": _b64(salt)}
        else:
            if passphrase:
                raise FailedPrecondition(
                    f"keyring {self.path} is not sealed but a passphrase was given; refusing to guess"
                )
            body = doc["keys"]
        self._keks = {int(v): bytearray(_unb64(k)) for v, k in body["keks"].items()}
        self._current = int(body["current"])
        if self._current not in self._keks or any(len(k) != 32 for k in self._keks.values()):
            raise FailedPrecondition(f"keyring {self.path} is inconsistent")

    def _check_kdf(self, kdf: Any) -> tuple[bytes, int, int, int]:
        """The salt and scrypt parameters of a sealed keyring, refused unless within the bounds."""
        try:
            if kdf["name"] != "scrypt":
                raise ValueError(f"unknown key derivation {kdf['name']!r}")
            n, r, p = kdf["n"], kdf["r"], kdf["p"]
            if not all(type(x) is int for x in (n, r, p)):
                raise ValueError("scrypt parameters must be integers")
            salt = _unb64(kdf["salt"])
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise FailedPrecondition(f"keyring {self.path} has a malformed key derivation: {e!r}") from None
        if not (_SCRYPT["n"] <= n <= _SCRYPT_MAX_N and n & (n - 1) == 0) or r != _SCRYPT["r"] or p != _SCRYPT["p"]:
            raise FailedPrecondition(
                f"keyring {self.path} is sealed with scrypt n={n}, r={r}, p={p}, outside what vaultd accepts "
                f"(n a power of 2 from {_SCRYPT['n']} to {_SCRYPT_MAX_N}, r={_SCRYPT['r']}, p={_SCRYPT['p']}); "
                "its key is not derived. Pre-release keyrings sealed with n=32768 are refused as well"
            )
        if len(salt) < _SALT_LEN:
            raise FailedPrecondition(f"keyring {self.path} has a scrypt salt shorter than {_SALT_LEN} bytes")
        return salt, n, r, p

    def _save(self) -> None:
        body = {"keks": {str(v): _b64(k) for v, k in sorted(self._keks.items())}, "current": self._current}
        doc: dict[str, Any] = {"format": _FORMAT, "provider": "file"}
        if self._kdf is not None:
            if self._seal_key is None:
                raise FailedPrecondition(f"keyring {self.path} was closed; open it again to change it")
            nonce = secrets.token_bytes(NONCE_LEN)
            sealed = nonce + AESGCM(self._seal_key).encrypt(nonce, json.dumps(body).encode(), b"vaultd keyring v1")
            doc.update(kdf=self._kdf, sealed=_b64(sealed))
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
            v, previous = max(self._keks) + 1, self._current
            self._keks[v] = bytearray(secrets.token_bytes(32))
            self._current = v
            try:
                self._save()
            except BaseException:
                # never wrap under a version the keyring file does not hold
                del self._keks[v]
                self._current = previous
                raise
            return v

    def retire(self, version: int) -> None:
        """Remove ``version`` from the keyring and write it again (atomically, as rotation does), then
        wipe the key's bytes held in memory. The previous keyring file is replaced by the rename, not
        overwritten: its blocks may linger on the disk until reused."""
        with self._lock:
            self.check_retirable(version)
            kek = self._keks.pop(version)
            try:
                self._save()
            except BaseException:
                self._keks[version] = kek  # the keyring file still holds it
                raise
            _wipe(kek)

    def close(self) -> None:
        """Wipe the key sealing the keyring: a rotation after this is refused."""
        with self._lock:
            if self._seal_key is not None:
                _wipe(self._seal_key)
                self._seal_key = None
