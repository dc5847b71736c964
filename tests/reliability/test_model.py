"""Stateful property test: any sequence of deposits (new objects and new versions, shared content),
destroys, retention dates, legal holds, master key rotations, vault creations and shreddings leaves
the store equal to a simple model, and the store's structure sound. Runs on the real core over real
LMDB and the file key provider (hypothesis RuleBasedStateMachine)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from daemon_proc import store_structure  # type: ignore[import-not-found]
from vaultd.core.policy import Policy
from vaultd.core.vaults import Vaults, open_vaults
from vaultd.errors import FailedPrecondition, NotFound
from vaultd.keys import FileKeyProvider
from vaultd.types import DepositHeader, Identity

SERVICE = Identity("service", "permits")
OPERATOR = Identity("operator", "alice")
POLICY = {"rule": [
    {"identity": "service:permits", "vaults": ["citizen-*"],
     "verbs": ["create", "deposit", "read", "stat", "list", "count", "check", "destroy", "retention", "hold"]},
    {"identity": "operator:*", "verbs": ["admin"]},
]}
NAMES = ["a", "b", "dir/c", "dir/d"]
VAULTS = ["citizen-m1", "citizen-m2"]
CONTENTS = [b"", b"x", b"shared content " * 300, bytes(range(256)) * 200, b"other " * 5000]
FUTURE = int(time.time()) + 10**7


@dataclass
class Version:
    data: bytes
    retain_until: int | None = None
    hold: bool = False


@dataclass
class Obj:
    next: int = 1
    versions: dict[int, Version] = field(default_factory=dict)


class VaultModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="vaultd-model-"))
        self.v: Vaults = open_vaults(self.dir, policy=Policy.from_dict(POLICY), key_provider=FileKeyProvider(self.dir),
                                     map_size=1 << 28)
        self.model: dict[str, dict[str, Obj]] = {}
        self.key_version = 1

    def teardown(self) -> None:
        self.v.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- rules -------------------------------------------------------------------------------------
    @rule(vault=st.sampled_from(VAULTS))
    def create(self, vault: str) -> None:
        if vault in self.model:
            return
        self.v.create_vault(SERVICE, vault)
        self.model[vault] = {}

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), name=st.sampled_from(NAMES), content=st.sampled_from(CONTENTS),
          tail=st.binary(max_size=64))
    def deposit(self, data: st.DataObject, name: str, content: bytes, tail: bytes) -> None:
        vault = data.draw(st.sampled_from(sorted(self.model)))
        doc = content + tail
        r = self.v.deposit(SERVICE, DepositHeader(vault=vault, name=name), iter([doc[:7000], doc[7000:]]))
        obj = self.model[vault].setdefault(name, Obj())
        assert r.stat.version == obj.next and r.stat.sha256 == hashlib.sha256(doc).digest()
        obj.versions[obj.next] = Version(doc)
        obj.next += 1

    def _pick(self, data: st.DataObject) -> tuple[str, str, int, Version] | None:
        live = [(vault, name, ver, v) for vault, objs in sorted(self.model.items()) for name, o in sorted(objs.items())
                for ver, v in sorted(o.versions.items())]
        return data.draw(st.sampled_from(live)) if live else None

    @rule(data=st.data())
    def destroy(self, data: st.DataObject) -> None:
        picked = self._pick(data)
        if picked is None:
            return
        vault, name, ver, v = picked
        if v.hold or (v.retain_until is not None and v.retain_until > time.time()):
            try:
                self.v.destroy(SERVICE, vault, name, ver)
            except FailedPrecondition:
                return
            raise AssertionError(f"{vault}/{name} v{ver} destroyed despite its hold or retention")
        self.v.destroy(SERVICE, vault, name, ver)
        del self.model[vault][name].versions[ver]

    @rule(data=st.data(), future=st.booleans())
    def retain(self, data: st.DataObject, future: bool) -> None:
        picked = self._pick(data)
        if picked is None:
            return
        vault, name, ver, v = picked
        until = FUTURE if future else 1
        if v.retain_until is not None and until < v.retain_until:
            try:
                self.v.set_retention(SERVICE, vault, name, until, ver)
            except FailedPrecondition:
                return
            raise AssertionError("a retention date was shortened")
        st_ = self.v.set_retention(SERVICE, vault, name, until, ver)
        v.retain_until = until
        assert st_.retain_until == until

    @rule(data=st.data(), hold=st.booleans())
    def legal_hold(self, data: st.DataObject, hold: bool) -> None:
        picked = self._pick(data)
        if picked is None:
            return
        vault, name, ver, v = picked
        assert self.v.set_legal_hold(SERVICE, vault, name, hold, ver).legal_hold is hold
        v.hold = hold

    @rule()
    def rotate(self) -> None:
        new = self.v.rotate_keys(OPERATOR)
        assert new == self.key_version + 1
        self.key_version = new

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def shred(self, data: st.DataObject) -> None:
        vault = data.draw(st.sampled_from(sorted(self.model)))
        kept = sum(1 for o in self.model[vault].values() for v in o.versions.values()
                   if v.hold or (v.retain_until is not None and v.retain_until > time.time()))
        if kept:  # a vault with any held or retained version stays, whole
            try:
                self.v.destroy_vault(OPERATOR, vault)
            except FailedPrecondition as e:
                assert f"{kept} version(s)" in str(e), str(e)
                return
            raise AssertionError(f"vault {vault} destroyed despite {kept} held or retained version(s)")
        self.v.destroy_vault(OPERATOR, vault)
        del self.model[vault]
        try:
            self.v.read(SERVICE, vault, "a")
        except NotFound:
            pass
        else:
            raise AssertionError("a shredded vault is still readable")

    # -- the store equals the model -----------------------------------------------------------------
    @invariant()
    def equal_to_the_model(self) -> None:
        for vault, objs in self.model.items():
            listed = {(s.name, s.version): s for s in self.v.list(SERVICE, vault, versions=True, page_size=1000)[0]}
            expected = {(n, ver): v for n, o in objs.items() for ver, v in o.versions.items()}
            assert set(listed) == set(expected), (vault, sorted(listed), sorted(expected))
            for key, v in expected.items():
                stat = listed[key]
                assert stat.size == len(v.data) and stat.legal_hold is v.hold and stat.retain_until == v.retain_until
                _, it = self.v.read(SERVICE, vault, key[0], key[1])
                assert b"".join(it) == v.data
            assert self.v.count(SERVICE, vault) == sum(1 for o in objs.values() if o.versions)
            for n, o in objs.items():
                latest = max(o.versions, default=None)
                if latest is None:
                    continue
                assert self.v.stat(SERVICE, vault, n).version == latest
            report = self.v.check(SERVICE, vault)
            assert report.ok and report.objects == len(expected)

    @invariant()
    def sound_structure(self) -> None:
        # the structure of what is reachable: shredded vaults are purged later, so look at live ones
        problems = [p for p in store_structure(self.dir, self.v.store.env) if not any(v not in self.model and v in p for v in VAULTS)]
        assert problems == [], problems


VaultModel.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
TestVaultModel = VaultModel.TestCase
