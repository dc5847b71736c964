"""The pkcs11 provider against a real SoftHSM2 token."""

from __future__ import annotations

import os
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from vaultd.errors import FailedPrecondition, IntegrityError, NotFound, Unauthenticated
from vaultd.keys.hsm import Pkcs11KeyProvider, open_user_session

KEK_ATTRIBUTES = {Attribute.LOCAL: True, Attribute.SENSITIVE: True, Attribute.ALWAYS_SENSITIVE: True,
                  Attribute.EXTRACTABLE: False, Attribute.NEVER_EXTRACTABLE: True}


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


def _generated(extractable: bool, sensitive: bool = True) -> Any:
    def make(session: Any, label: str) -> Any:
        return session.generate_key(KeyType.AES, 256, label=label, store=True, template={
            Attribute.SENSITIVE: sensitive, Attribute.EXTRACTABLE: extractable,
            Attribute.PRIVATE: True, Attribute.TOKEN: True})
    return make


def _imported(session: Any, label: str) -> Any:
    return session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: os.urandom(32),
        Attribute.LABEL: label, Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False, Attribute.ENCRYPT: True, Attribute.DECRYPT: True})


def _extractable_then_locked(session: Any, label: str) -> Any:
    key = _generated(extractable=True)(session, label)
    key[Attribute.EXTRACTABLE] = False  # too late: it could have been wrapped out meanwhile
    return key


def _readable_then_sensitive(session: Any, label: str) -> Any:
    key = _generated(extractable=False, sensitive=False)(session, label)
    key[Attribute.SENSITIVE] = True
    return key


@pytest.mark.parametrize("make, attribute", [
    (_generated(extractable=True), "CKA_EXTRACTABLE"),
    (_imported, "CKA_LOCAL"),
    (_extractable_then_locked, "CKA_NEVER_EXTRACTABLE"),
    (_readable_then_sensitive, "CKA_ALWAYS_SENSITIVE"),
], ids=["extractable", "imported", "extractable-then-locked", "readable-then-sensitive"])
def test_a_key_that_could_leave_the_token_is_refused(softhsm_token: Any, make: Any, attribute: str) -> None:
    """A PIN holder's key under the next KEK label would become the current master key: refused."""
    t = softhsm_token
    p = Pkcs11KeyProvider(t.module, t.label, t.pin)
    w = p.wrap(b"x" * 32, b"a")
    p.close()
    session = open_user_session(pkcs11.lib(t.module).get_token(token_label=t.label), t.pin)
    try:
        planted = make(session, "vaultd-kek-2")
        with pytest.raises(FailedPrecondition, match=f"'vaultd-kek-2'.*{attribute}="):
            Pkcs11KeyProvider(t.module, t.label, t.pin)
        planted.destroy()
    finally:
        session.close()
    q = Pkcs11KeyProvider(t.module, t.label, t.pin)  # the provider's own key alone loads again
    try:
        assert q.versions() == [1] and q.unwrap(w, b"a") == b"x" * 32
    finally:
        q.close()


def test_two_keys_with_one_label_are_refused(softhsm_token: Any) -> None:
    t = softhsm_token
    Pkcs11KeyProvider(t.module, t.label, t.pin).close()
    session = open_user_session(pkcs11.lib(t.module).get_token(token_label=t.label), t.pin)
    try:
        _generated(extractable=False)(session, "vaultd-kek-1")
    finally:
        session.close()
    with pytest.raises(FailedPrecondition, match="two keys labelled 'vaultd-kek-1'"):
        Pkcs11KeyProvider(t.module, t.label, t.pin)


def test_the_providers_own_keys_load(softhsm_token: Any) -> None:
    t = softhsm_token
    p = Pkcs11KeyProvider(t.module, t.label, t.pin)
    p.rotate()
    p.close()
    q = Pkcs11KeyProvider(t.module, t.label, t.pin)
    try:
        assert q.versions() == [1, 2]
        for key in q._keys.values():
            assert {a: key[a] for a in KEK_ATTRIBUTES} == KEK_ATTRIBUTES
    finally:
        q.close()


def _labels(t: Any) -> list[str]:
    session = open_user_session(pkcs11.lib(t.module).get_token(token_label=t.label), t.pin)
    try:
        return sorted(o.label for o in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                                            Attribute.KEY_TYPE: KeyType.AES}))
    finally:
        session.close()


def test_retire_destroys_the_key_in_the_token(softhsm_token: Any) -> None:
    t = softhsm_token
    p = Pkcs11KeyProvider(t.module, t.label, t.pin)
    try:
        old = p.wrap(b"x" * 32, b"a")
        with pytest.raises(FailedPrecondition, match="current"):
            p.retire(1)
        assert p.rotate() == 2
        new = p.wrap(b"x" * 32, b"a")
        with pytest.raises(NotFound):
            p.retire(9)
        p.retire(1)
        assert p.versions() == [2]
        with pytest.raises(FailedPrecondition, match="version 1 is not in the token"):
            p.unwrap(old, b"a")
        with pytest.raises(NotFound):
            p.retire(1)
        assert _labels(t) == ["vaultd-kek-2"]
    finally:
        p.close()
    q = Pkcs11KeyProvider(t.module, t.label, t.pin)
    try:
        assert q.versions() == [2] and q.current_version() == 2
        assert q.unwrap(new, b"a") == b"x" * 32
        with pytest.raises(FailedPrecondition):
            q.unwrap(old, b"a")
        assert q.rotate() == 3  # versions keep counting up from the highest present
    finally:
        q.close()
