"""The version record MAC: its encoding tells every list of facts apart, it depends on the vault's
data key and its version, and the in-process batch deposit writes records that verify."""

from __future__ import annotations

import json
import secrets

import pytest
from core_support import OPERATOR, PERMITS

from vaultd.core import content as C
from vaultd.core.vaults import Vaults, _check_version_mac, _version_facts
from vaultd.errors import IntegrityError
from vaultd.keys.envelope import VaultKeys
from vaultd.types import DepositHeader, Receipt

V = "citizen-bob"
KEYS = VaultKeys(bytes(range(32)), bytes(32), 1)
MANIFEST = bytes(36)


def _rec(**changes: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "object_id": "ab" * 16, "size": 5, "sha256": "cd" * 32, "content_type": "text/plain",
        "metadata": {"ab": "c"}, "depositor": "service:permits", "deposited_at_ns": 1, "journal_index": 7,
        "request_id": None, "retain_until": None, "legal_hold": False,
    }
    rec.update(changes)
    return rec


def _mac(rec: dict[str, object], *, vault: str = V, name: str = "doc", version: int = 1,
         keys: VaultKeys = KEYS, manifest: bytes = MANIFEST) -> bytes:
    return C.version_mac(keys, _version_facts(vault, name, version, rec), manifest)


def test_every_fact_and_the_key_change_the_mac() -> None:
    base = _mac(_rec())
    variants = [
        _mac(_rec(), vault="citizen-bo"), _mac(_rec(), name="do"), _mac(_rec(), version=2),
        _mac(_rec(object_id="ab" * 15 + "ac")), _mac(_rec(size=6)), _mac(_rec(sha256="cd" * 31 + "ce")),
        _mac(_rec(content_type="text/html")), _mac(_rec(metadata={"a": "bc"})), _mac(_rec(metadata={})),
        _mac(_rec(metadata={"ab": "c", "d": ""})), _mac(_rec(depositor="service:taxation")),
        _mac(_rec(deposited_at_ns=2)), _mac(_rec(journal_index=None)), _mac(_rec(request_id="")),
        _mac(_rec(size="5")), _mac(_rec(), manifest=MANIFEST[:-1] + b"\x01"),
        _mac(_rec(), keys=VaultKeys(bytes(32), bytes(32), 1)),
        _mac(_rec(), keys=VaultKeys(bytes(range(32)), bytes(32), 2)),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # what changes after the deposit is not covered
    assert _mac(_rec(retain_until=2_000_000_000, legal_hold=True)) == base
    # name and content type side by side: the boundary between them is part of the encoding
    assert _mac(_rec(content_type="x"), name="ab") != _mac(_rec(content_type="bx"), name="a")


def test_records_of_the_wrong_shape_are_refused_not_crashed_on() -> None:
    rec = _rec()
    rec["mac"] = _mac(rec).hex()
    _check_version_mac(KEYS, V, "doc", 1, rec, MANIFEST)
    for bad in ({"size": 5.0}, {"size": True}, {"size": 1 << 64}, {"metadata": ["ab", "c"]},
                {"mac": "zz"}, {"mac": 5}, {"sha256": None}):
        with pytest.raises(IntegrityError, match="the version record of object 'doc' version 1"):
            _check_version_mac(KEYS, V, "doc", 1, {**rec, **bad}, MANIFEST)
    del rec["object_id"]
    with pytest.raises(IntegrityError, match="does not match its MAC"):
        _check_version_mac(KEYS, V, "doc", 1, rec, MANIFEST)


def test_batch_deposit_records_verify_and_a_moved_record_does_not(vaults: Vaults) -> None:
    items = [(DepositHeader(V, f"d{i}", metadata={"i": str(i)}), secrets.token_bytes(100 + i)) for i in range(4)]
    results = vaults.deposit_batch(PERMITS, items)
    assert all(isinstance(r, Receipt) for r in results)
    keys = vaults._vault_keys(V)
    with vaults.store.read() as r:
        for i in range(4):
            _check_version_mac(keys, V, f"d{i}", 1, json.loads(r.get_version(V, f"d{i}", 1)),
                            r.get_manifest(V, f"d{i}", 1) or b"")
    assert vaults.check(OPERATOR, V).ok

    def move(t) -> None:  # type: ignore[no-untyped-def]
        """d1's record and manifest, copied whole over d0's: valid for d1, not for d0."""
        t.put_version(V, "d0", 1, t.get_version(V, "d1", 1), t.get_manifest(V, "d1", 1))

    vaults.store.write(move)
    with pytest.raises(IntegrityError, match="object 'd0' version 1 .* does not match its MAC"):
        vaults.read(PERMITS, V, "d0")
    with pytest.raises(IntegrityError, match="does not match its MAC"):
        vaults.stat(PERMITS, V, "d0")
    rep = vaults.check(OPERATOR, V)
    assert [(p.name, p.version) for p in rep.problems] == [("d0", 1)]
    assert vaults.read(PERMITS, V, "d1")[0].size == 101
