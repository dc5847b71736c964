"""The pkcs11 provider against a real SoftHSM2 token."""

from __future__ import annotations

import os
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute

from vaultd.errors import IntegrityError, Unauthenticated
from vaultd.keys.hsm import Pkcs11KeyProvider




def test_wrap_unwrap_inside_the_token(softhsm_token: Any) -> None:
    p = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    try:
        assert p.current_version() == 1 and p.ready()
        s = os.urandom(32)
        w = p.wrap(s, b"vault-a")
        assert s not in w
        assert p.unwrap(w, b"vault-a") == s
        with pytest.raises(IntegrityError):
            p.unwrap(w, b"vault-b")
    finally:
        p.close()


def test_kek_never_leaves_the_token(softhsm_token: Any) -> None:
    p = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    try:
        key = p._keys[1]
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
    finally:
        p.close()


def test_rotation_and_reopen(softhsm_token: Any) -> None:
    p = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    old = p.wrap(b"x" * 32, b"a")
    assert p.rotate() == 2
    new = p.wrap(b"x" * 32, b"a")
    p.close()
    q = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    try:
        assert q.versions() == [1, 2] and q.current_version() == 2
        assert q.unwrap(old, b"a") == q.unwrap(new, b"a") == b"x" * 32
    finally:
        q.close()


def test_wrong_pin(softhsm_token: Any) -> None:
    with pytest.raises(Unauthenticated):
        Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, "0000")
