"""Shared fixtures over ``servers``: a real vaultd and clients for its identities.

- ``vault_server``: one server per test module;
- ``client_for``: ``client_for("permits")`` / ``client_for("op-admin")`` -> a connected
  ``VaultClient`` of the module's server, closed after the test;
- ``server_factory``: ``server_factory(map_size=...)`` for a dedicated server, stopped after the
  test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import RunningServer, start_server

from vaultd.client import VaultClient


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vaultd reliability")
    group.addoption("--soak", action="store_true", default=False,
                    help="long runs: many more SIGKILL cycles, faults and fuzz executions")
    group.addoption("--kill-cycles", type=int, default=None,
                    help="SIGKILL cycles of the crash test (default 6, 200 with --soak)")
    group.addoption("--fuzz-runs", type=int, default=None,
                    help="executions per fuzz harness (default 3000, 200000 with --soak)")


@pytest.fixture(scope="module")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("vaultd"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client_for(vault_server: RunningServer) -> Iterator[Callable[..., VaultClient]]:
    made: list[VaultClient] = []

    def make(identity: str = "permits", **kwargs: Any) -> VaultClient:
        c = VaultClient.for_dev(vault_server.address, vault_server.data_dir, identity, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    made: list[RunningServer] = []

    def make(**settings: Any) -> RunningServer:
        srv = start_server(tmp_path / f"srv{len(made)}", **settings)
        made.append(srv)
        return srv

    yield make
    for s in made:
        s.stop()
