"""Certificate common names -> identities."""

from __future__ import annotations

import pytest

from vaultd.errors import Unauthenticated
from vaultd.transport.auth import identity_from_common_name
from vaultd.types import Identity


def test_service_and_operator_names() -> None:
    assert identity_from_common_name("svc-permits") == Identity("service", "permits")
    assert identity_from_common_name("op-admin") == Identity("operator", "admin")


@pytest.mark.parametrize("cn", ["permits", "svc-", "op-", "svc-Permits", "svc-a b", "citizen-alice",
                                "svc-" + "a" * 65, "svc-a\x00", ""])
def test_other_names_are_refused(cn: str) -> None:
    with pytest.raises(Unauthenticated):
        identity_from_common_name(cn)
