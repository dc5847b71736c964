"""Refusals, retention and hold changes and key rotations are journal entries (through the real
daemon); a flood of refused calls grows the journal only within a bound, and what is left out is
counted in the next entry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from servers import RunningServer, journal_leaves
from vaultd.client import VaultClient
from vaultd.core.vaults import DenialBudget
from vaultd.errors import PermissionDenied




def test_every_denied_verb_is_journaled(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv: RunningServer = server_factory()
    permits, op = srv.client("permits"), srv.client("op-admin")
    start = op.checkpoint().tree_size
    other = "taxation"  # a vault the permits office's policy does not name
    calls: dict[str, Callable[[], Any]] = {
        "create": lambda: permits.create_vault(other),
        "deposit": lambda: permits.deposit(other, "x", b"x"),
        "read": lambda: permits.read_bytes(other, "x"),
        "stat": lambda: permits.stat(other, "x"),
        "list": lambda: list(permits.list(other)),
        "count": lambda: permits.count(other),
        "destroy": lambda: permits.destroy(other, "x"),
        "retention": lambda: permits.set_retention(other, "x", 2_000_000_000),
        "hold": lambda: permits.set_legal_hold(other, "x", True),
        "check": lambda: permits.check(other),
        "journal": lambda: permits.delivery_proof(other, "x", version=1),
        "admin": lambda: permits.rotate_keys(),
    }
    for verb, call in calls.items():
        with pytest.raises(PermissionDenied):
            call()
    denied = [lf for lf in journal_leaves(op, start) if lf.outcome == "denied"]
    assert [lf.operation for lf in denied] == list(calls)
    for lf in denied:
        assert (lf.actor_kind, lf.actor_name) == ("service", "permits")
        assert lf.vault == ("" if lf.operation == "admin" else other)


def test_retention_hold_and_key_rotation_are_journaled(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv: RunningServer = server_factory()
    permits, op = srv.client("permits"), srv.client("op-admin")
    start = op.checkpoint().tree_size
    op.rotate_keys()  # no vault yet: the rotation is still an entry
    permits.create_vault("citizen-rhea")
    sha = permits.deposit("citizen-rhea", "deed.pdf", b"deed").stat.sha256
    permits.set_retention("citizen-rhea", "deed.pdf", 4_000_000_000)
    permits.set_legal_hold("citizen-rhea", "deed.pdf", True)
    permits.set_legal_hold("citizen-rhea", "deed.pdf", False)
    version = op.rotate_keys()
    leaves = journal_leaves(op, start)
    rot = [lf for lf in leaves if lf.operation == "rotate_keys"]
    assert [lf.extra_dict["vaults"] for lf in rot] == [b"0", b"1"] and rot[1].version == version
    assert all(lf.actor_kind == "operator" for lf in rot)
    ret = [lf for lf in leaves if lf.operation == "retention"]
    assert len(ret) == 1 and ret[0].extra_dict["retain_until"] == b"4000000000" and ret[0].sha256 == sha
    holds = [lf.extra_dict["hold"] for lf in leaves if lf.operation == "hold"]
    assert holds == [b"1", b"0"]


def test_a_flood_of_refusals_is_bounded_and_counted(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv: RunningServer = server_factory()
    permits, op = srv.client("permits"), srv.client("op-admin")
    budget: DenialBudget = srv.daemon.vaults.denials
    start = op.checkpoint().tree_size
    for _ in range(3 * budget.burst):
        with pytest.raises(PermissionDenied):
            permits.count("taxation")
    denied = [lf for lf in journal_leaves(op, start) if lf.outcome == "denied"]
    assert budget.burst <= len(denied) <= budget.burst + 3  # the bucket refills at 1/s meanwhile
    left_out = 3 * budget.burst - len(denied)
    assert budget.suppressed_total == left_out > 0
    time.sleep(1.1 / budget.rate)
    with pytest.raises(PermissionDenied):
        permits.count("taxation")
    last = [lf for lf in journal_leaves(op, start) if lf.outcome == "denied"][-1]
    assert last.extra_dict["suppressed"] == str(left_out).encode()


def test_denial_budget_per_identity_and_global() -> None:
    b = DenialBudget(per_identity_rate=0.001, per_identity_burst=3, global_rate=0.001, global_burst=5)
    assert [b.take("service:a") for _ in range(5)] == [0, 0, 0, None, None]
    assert [b.take("service:b") for _ in range(3)] == [0, 0, None]  # the global bucket is empty
    assert b.suppressed_total == 3
    small = DenialBudget(per_identity_burst=1, max_identities=2)
    assert small.take("x") == 0 and small.take("x") is None and small.take("y") == 0
    assert small.take("z") == 1  # x was forgotten: its left-out refusal is carried, not lost
