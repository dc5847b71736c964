from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vaultd.errors import FailedPrecondition, IntegrityError, Unauthenticated
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
