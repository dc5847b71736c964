from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from vaultd.errors import FailedPrecondition, IntegrityError, NotFound, Unauthenticated
from vaultd.keys import FileKeyProvider, open_key_provider


def test_first_run_makes_a_private_keyring(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path)
    f = tmp_path / "keyring.json"
    assert f.exists() and f.stat().st_mode & 0o777 == 0o600
    assert p.current_version() == 1 and p.versions() == [1]
    w = p.wrap(b"k" * 32, b"aad")
    assert b"k" * 32 not in w
    # a second opening reads the same keyring
    assert FileKeyProvider(tmp_path).unwrap(w, b"aad") == b"k" * 32


def test_wrong_aad_or_tampering_is_refused(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path)
    w = p.wrap(os.urandom(32), b"vault-a")
    with pytest.raises(IntegrityError):
        p.unwrap(w, b"vault-b")
    bad = bytearray(w)
    bad[-1] ^= 1
    with pytest.raises(IntegrityError):
        p.unwrap(bytes(bad), b"vault-a")


def test_group_readable_keyring_is_refused(tmp_path: Path) -> None:
    FileKeyProvider(tmp_path)
    os.chmod(tmp_path / "keyring.json", 0o644)
    with pytest.raises(FailedPrecondition, match="chmod 600"):
        FileKeyProvider(tmp_path)


def test_passphrase(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path, passphrase="correct horse")
    secret = os.urandom(32)
    w = p.wrap(secret, b"a")
    text = (tmp_path / "keyring.json").read_text()
    doc = json.loads(text)
    assert doc["kdf"]["name"] == "scrypt" and "keys" not in doc  # no KEK in the clear
    assert FileKeyProvider(tmp_path, passphrase="correct horse").unwrap(w, b"a") == secret
    with pytest.raises(Unauthenticated):
        FileKeyProvider(tmp_path, passphrase="wrong")
    with pytest.raises(FailedPrecondition, match="passphrase"):
        FileKeyProvider(tmp_path)


def test_rotation_keeps_old_versions(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path)
    old = p.wrap(b"s" * 32, b"a")
    assert p.rotate() == 2
    new = p.wrap(b"s" * 32, b"a")
    assert new[3:7] == (2).to_bytes(4, "big")
    q = FileKeyProvider(tmp_path)  # rotation was persisted
    assert q.current_version() == 2
    assert q.unwrap(old, b"a") == q.unwrap(new, b"a") == b"s" * 32


def test_open_key_provider(tmp_path: Path) -> None:
    assert open_key_provider("file", tmp_path).name == "file"
    with pytest.raises(Exception, match="unknown key provider"):
        open_key_provider("nope", tmp_path)


def _seal_keyring(path: Path, passphrase: bytes, n: int, r: int = 8, p: int = 1) -> None:
    """A keyring sealed correctly, with the passphrase, under the given scrypt parameters."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    salt, nonce = os.urandom(16), os.urandom(12)
    key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
    body = {"keks": {"1": base64.b64encode(os.urandom(32)).decode()}, "current": 1}
    sealed = nonce + AESGCM(key).encrypt(nonce, json.dumps(body).encode(), b"vaultd keyring v1")
    kdf = {"n": n, "r": r, "p": p, "name": "scrypt", "salt": base64.b64encode(salt).decode()}
    doc = {"format": 1, "provider": "file", "kdf": kdf, "sealed": base64.b64encode(sealed).decode()}
    path.write_text(json.dumps(doc))
    path.chmod(0o600)


def test_new_keyring_uses_scrypt_n_2_17(tmp_path: Path) -> None:
    FileKeyProvider(tmp_path, passphrase="correct horse")
    kdf = json.loads((tmp_path / "keyring.json").read_text())["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", 1 << 17, 8, 1)
    assert len(base64.b64decode(kdf["salt"])) == 16


def test_keyring_sealed_with_a_lower_scrypt_cost_is_refused(tmp_path: Path) -> None:
    """n=2**15 (what earlier pre-releases wrote) and below are refused even when correctly sealed."""
    f = tmp_path / "keyring.json"
    for n in (1 << 15, 1 << 10):
        _seal_keyring(f, b"correct horse", n)
        with pytest.raises(FailedPrecondition, match=f"scrypt n={n}, r=8, p=1"):
            FileKeyProvider(tmp_path, passphrase="correct horse")


@pytest.fixture(scope="module")
def sealed_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A keyring made with the passphrase "correct horse" (one derivation for every test using it)."""
    folder = tmp_path_factory.mktemp("sealed")
    FileKeyProvider(folder, passphrase="correct horse")
    doc: dict[str, Any] = json.loads((folder / "keyring.json").read_text())
    return doc


@pytest.mark.parametrize("change", [{"n": 1 << 15}, {"n": 1 << 16}, {"n": (1 << 17) + 1}, {"r": 1}, {"p": 2},
                                    {"n": 1 << 40}, {"n": "131072"}, {"name": "pbkdf2"}])
def test_keyring_with_tampered_scrypt_parameters_is_refused(
    tmp_path: Path, sealed_doc: dict[str, Any], change: dict[str, Any]
) -> None:
    """Lowered (or absurdly raised) parameters are refused before any derivation is attempted."""
    f = tmp_path / "keyring.json"
    doc = json.loads(json.dumps(sealed_doc))
    doc["kdf"].update(change)
    f.write_text(json.dumps(doc))
    f.chmod(0o600)
    with pytest.raises(FailedPrecondition, match="scrypt|key derivation"):
        FileKeyProvider(tmp_path, passphrase="correct horse")


def _holds(value: Any, needle: bytes, seen: set[int]) -> bool:
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, str):
        return needle.decode() in value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return needle in bytes(value)
    if isinstance(value, dict):
        return any(_holds(k, needle, seen) or _holds(v, needle, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds(v, needle, seen) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return any(_holds(v, needle, seen) for v in vars(value).values())
    return False


def test_passphrase_is_not_kept_and_rotation_reseals(tmp_path: Path) -> None:
    passphrase = "pass-" + os.urandom(8).hex()
    for p in (FileKeyProvider(tmp_path, passphrase=passphrase), FileKeyProvider(tmp_path, passphrase=passphrase)):
        assert not _holds(p, passphrase.encode(), set()), "a provider attribute holds the passphrase"
    salt = json.loads((tmp_path / "keyring.json").read_text())["kdf"]["salt"]
    w = p.wrap(b"s" * 32, b"a")
    assert p.rotate() == 2  # sealed again without the passphrase, under the key derived at opening
    assert not _holds(p, passphrase.encode(), set())
    doc = json.loads((tmp_path / "keyring.json").read_text())
    assert doc["kdf"]["salt"] == salt and doc["kdf"]["n"] == 1 << 17
    q = FileKeyProvider(tmp_path, passphrase=passphrase)
    assert q.versions() == [1, 2] and q.unwrap(w, b"a") == b"s" * 32
    # closing wipes the sealing key; the keyring cannot be changed through this object any more
    seal_key = p._seal_key
    assert seal_key is not None and any(seal_key)
    p.close()
    assert not any(seal_key)
    before = (tmp_path / "keyring.json").read_bytes()
    with pytest.raises(FailedPrecondition, match="closed"):
        p.rotate()
    assert (tmp_path / "keyring.json").read_bytes() == before and p.current_version() == 2


def test_retire_removes_the_version_from_the_keyring(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path, passphrase="correct horse")
    old = p.wrap(b"s" * 32, b"a")
    old_kek = bytes(p._keks[1])
    assert p.rotate() == 2
    new = p.wrap(b"s" * 32, b"a")
    held = p._keks[1]
    p.retire(1)
    assert held == bytearray(32)  # wiped in memory
    assert p.versions() == [2]
    with pytest.raises(FailedPrecondition, match="version 1 is not in keyring"):
        p.unwrap(old, b"a")
    q = FileKeyProvider(tmp_path, passphrase="correct horse")  # the retirement was persisted
    assert q.versions() == [2] and q.current_version() == 2 and old_kek not in q._keks.values()
    assert q.unwrap(new, b"a") == b"s" * 32
    with pytest.raises(FailedPrecondition):
        q.unwrap(old, b"a")
    assert stat.S_IMODE(os.stat(q.path).st_mode) == 0o600
    assert not q.path.with_name(q.path.name + ".tmp").exists()


def test_retire_refuses_the_current_and_unknown_versions(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path)
    with pytest.raises(FailedPrecondition, match="current"):
        p.retire(1)
    with pytest.raises(NotFound):
        p.retire(7)
    p.rotate()
    p.retire(1)
    with pytest.raises(NotFound):
        p.retire(1)
    assert FileKeyProvider(tmp_path).versions() == [2]
