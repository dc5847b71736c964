"""Helpers for tests that write a store's records directly."""

from __future__ import annotations

import json
from typing import Any

from vaultd.core import content as C
from vaultd.core.vaults import Vaults, _version_facts


def put_manifest_sealed(vaults: Vaults, t: Any, vault: str, name: str, version: int, manifest: bytes) -> None:
    """Inside the write unit ``t``: give a version another manifest, with the MAC made under the
    vault's own keys, as only vaultd itself could: for tests of what ``check`` does with a manifest
    that passes its MAC but names chunks that are missing."""
    rec = json.loads(t.get_version(vault, name, version))
    facts = _version_facts(vault, name, version, rec)
    rec["mac"] = C.version_mac(vaults._vault_keys(vault), facts, manifest).hex()
    t.put_version(vault, name, version, json.dumps(rec).encode(), manifest)
