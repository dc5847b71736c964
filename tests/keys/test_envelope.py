from __future__ import annotations

from pathlib import Path

import pytest

from vaultd.errors import IntegrityError
from vaultd.keys import FileKeyProvider, new_vault_keys, unwrap_vault_keys, wrap_vault_keys
from vaultd.keys.envelope import WrappedVaultKeys


def test_vault_keys_are_bound_to_vault_and_purpose(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path)
    k = new_vault_keys()
    assert k.data_key != k.dedup_key and len(k.data_key) == len(k.dedup_key) == 32
    w = wrap_vault_keys(p, "citizen-a", k)
    assert unwrap_vault_keys(p, "citizen-a", w) == k
    with pytest.raises(IntegrityError):
        unwrap_vault_keys(p, "citizen-b", w)  # moved to another vault
    swapped = WrappedVaultKeys(w.kek_version, w.dedup_key, w.data_key)
    with pytest.raises(IntegrityError):
        unwrap_vault_keys(p, "citizen-a", swapped)  # roles swapped


def test_rewrap_under_new_version(tmp_path: Path) -> None:
    p = FileKeyProvider(tmp_path)
    k = new_vault_keys()
    w1 = wrap_vault_keys(p, "v", k)
    v2 = p.rotate()
    w2 = wrap_vault_keys(p, "v", unwrap_vault_keys(p, "v", w1), v2)
    assert w2.kek_version == 2 and w2.data_key != w1.data_key
    assert unwrap_vault_keys(p, "v", w2) == k
    assert "data_key=" not in repr(k) or k.data_key.hex() not in repr(k)
