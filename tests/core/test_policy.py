from __future__ import annotations

from pathlib import Path

import pytest

from vaultd.core.policy import Policy, citizen_vault_id, validate_vault_id
from vaultd.errors import InvalidArgument, PermissionDenied
from vaultd.types import Identity


def test_from_file_and_matching(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(
        '[[rule]]\nidentity = "service:permits"\nvaults = ["citizen-*", "permits"]\nverbs = ["read", "deposit"]\n'
        '[[rule]]\nidentity = "service:*"\nvaults = ["public"]\nverbs = ["read"]\n'
        '[[rule]]\nidentity = "citizen:*"\nvaults = ["{self}"]\nverbs = ["read"]\n'
        '[[rule]]\nidentity = "operator:*"\nverbs = ["admin"]\n'
    )
    p = Policy.from_file(f)
    permits, tax = Identity("service", "permits"), Identity("service", "taxation")
    p.check(permits, "read", "citizen-bob")
    p.check(permits, "deposit", "permits")
    p.check(tax, "read", "public")
    with pytest.raises(PermissionDenied, match="service:taxation may not read on vault 'citizen-bob'"):
        p.check(tax, "read", "citizen-bob")
    with pytest.raises(PermissionDenied):
        p.check(permits, "destroy", "citizen-bob")
    with pytest.raises(PermissionDenied):
        p.check(permits, "read", "permitsx")
    p.check(Identity("citizen", "Bob"), "read", "citizen-bob")
    with pytest.raises(PermissionDenied):
        p.check(Identity("citizen", "bob"), "read", "citizen-eve")
    with pytest.raises(PermissionDenied):
        p.check(Identity("service", "bob"), "read", "citizen-bob")  # {self} is for citizens only
    p.check(Identity("operator", "x"), "admin", None)
    with pytest.raises(PermissionDenied):
        p.check(Identity("operator", "x"), "admin", "citizen-bob")  # no vaults: whole-store only
    with pytest.raises(PermissionDenied):
        p.check(permits, "admin", None)


def test_default_deny() -> None:
    with pytest.raises(PermissionDenied):
        Policy.from_dict({}).check(Identity("service", "a"), "read", "x")


@pytest.mark.parametrize(
    "doc",
    [
        {"rule": [{"identity": "robot:x", "verbs": ["read"]}]},
        {"rule": [{"identity": "service:x", "verbs": ["fly"]}]},
        {"rule": [{"identity": "service:x", "verbs": []}]},
        {"rule": [{"identity": "servicex", "verbs": ["read"]}]},
        {"rule": [{"identity": "service:x", "verbs": ["read"], "extra": 1}]},
        {"rules": []},
    ],
)
def test_bad_policies(doc: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        Policy.from_dict(doc)


def test_bad_file(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text("[[rule]\n")
    with pytest.raises(InvalidArgument, match="TOML"):
        Policy.from_file(tmp_path / "p.toml")
    with pytest.raises(InvalidArgument, match="does not exist"):
        Policy.from_file(tmp_path / "none.toml")


def test_citizen_vault_id() -> None:
    assert citizen_vault_id(" Bob ") == "citizen-bob"
    assert citizen_vault_id("ＢＯＢ") == "citizen-bob"  # NFKC full-width
    for bad in ["", "a b", "x/y", "-lead", "é"]:
        with pytest.raises(InvalidArgument):
            citizen_vault_id(bad)


def test_vault_ids() -> None:
    validate_vault_id("a")
    validate_vault_id("a" * 128)
    for bad in ["", "A", "-a", "a" * 129, "a/b", "a\x00"]:
        with pytest.raises(InvalidArgument):
            validate_vault_id(bad)
