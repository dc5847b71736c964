"""Every verb is refused to an identity the policy does not name for the vault, before any work."""

from __future__ import annotations

import pytest
from core_support import OPERATOR, PERMITS, TAX

from vaultd.core.vaults import Vaults
from vaultd.errors import PermissionDenied
from vaultd.types import DepositHeader, Identity

V = "citizen-bob"
BOB = Identity("citizen", "Bob")
EVE = Identity("citizen", "eve")

CALLS = {
    "create": lambda v, a: v.create_vault(a, "citizen-new"),
    "deposit": lambda v, a: v.deposit(a, DepositHeader(V, "x"), [b"data"]),
    "read": lambda v, a: v.read(a, V, "doc"),
    "stat": lambda v, a: v.stat(a, V, "doc"),
    "list": lambda v, a: v.list(a, V),
    "count": lambda v, a: v.count(a, V),
    "check": lambda v, a: v.check(a, V),
    "destroy": lambda v, a: v.destroy(a, V, "doc"),
    "retention": lambda v, a: v.set_retention(a, V, "doc", 2**31),
    "hold": lambda v, a: v.set_legal_hold(a, V, "doc", True),
    "rotate": lambda v, a: v.rotate_keys(a),
    "retire": lambda v, a: v.retire_key(a, 1),
    "destroy_vault": lambda v, a: v.destroy_vault(a, V),
}


@pytest.fixture
def with_doc(vaults: Vaults) -> Vaults:
    vaults.deposit(PERMITS, DepositHeader(V, "doc"), [b"secret"])
    return vaults


@pytest.mark.parametrize("verb", sorted(CALLS))
def test_other_service_is_refused(with_doc: Vaults, verb: str) -> None:
    with pytest.raises(PermissionDenied) as e:
        CALLS[verb](with_doc, TAX)
    assert "service:taxation" in str(e.value)
    assert b"".join(with_doc.read(PERMITS, V, "doc")[1]) == b"secret"  # nothing changed


@pytest.mark.parametrize("verb", sorted(CALLS))
def test_other_citizen_is_refused(with_doc: Vaults, verb: str) -> None:
    with pytest.raises(PermissionDenied):
        CALLS[verb](with_doc, EVE)


def test_citizen_reads_own_vault_only_as_allowed(with_doc: Vaults) -> None:
    assert b"".join(with_doc.read(BOB, V, "doc")[1]) == b"secret"
    assert with_doc.count(BOB, V) == 1
    for verb in ("deposit", "destroy", "retention", "hold", "create", "rotate", "retire"):
        with pytest.raises(PermissionDenied):
            CALLS[verb](with_doc, BOB)


def test_operator_has_admin_only(with_doc: Vaults) -> None:
    for verb in ("read", "deposit", "destroy", "list"):
        with pytest.raises(PermissionDenied):
            CALLS[verb](with_doc, OPERATOR)
