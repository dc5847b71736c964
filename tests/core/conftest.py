from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from core_support import PERMITS, POLICY

from vaultd.core.policy import Policy
from vaultd.core.vaults import Vaults, open_vaults
from vaultd.keys import FileKeyProvider


@pytest.fixture
def policy() -> Policy:
    return Policy.from_dict(POLICY)


@pytest.fixture
def vaults(tmp_path: Path, policy: Policy) -> Iterator[Vaults]:
    v = open_vaults(tmp_path, policy=policy, key_provider=FileKeyProvider(tmp_path), map_size=1 << 30)
    v.create_vault(PERMITS, "citizen-bob")
    yield v
    v.close()
