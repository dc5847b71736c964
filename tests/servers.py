"""A real vaultd for tests (gRPC over TLS on 127.0.0.1, real LMDB in a temporary folder, development
PKI and policy), shared by every test folder: ``from servers import start_server``. (A module of its own,
not ``conftest``: several folders have a conftest.py, and ``from conftest import`` would pick whichever
was loaded last.)

- ``start_server(data_dir, **settings)`` starts a daemon in this process and returns a
  ``RunningServer`` (``address``, ``data_dir``, ``pki``, ``client(identity)``, ``stop()``);
- ``vault_server``: one such server per test module;
- ``client_for``: ``client_for("permits")`` / ``client_for("op-admin")`` -> a connected
  ``VaultClient`` of the module's server, closed after the test;
- ``server_factory``: ``server_factory(map_size=...)`` for a dedicated server, stopped after the
  test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from vaultd.cli.daemon import Daemon
from vaultd.client import VaultClient
from vaultd.config import Config
from vaultd.pki import DevPKI, ensure_dev_pki

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunningServer:
    address: str
    data_dir: Path
    pki: DevPKI
    daemon: Daemon
    _clients: list[VaultClient] = field(default_factory=list)

    def client(self, identity: str = "permits", **kwargs: Any) -> VaultClient:
        """A client with the development certificate of ``identity`` (``permits``, ``op-admin``)."""
        c = VaultClient.for_dev(self.address, self.data_dir, identity, server_name="localhost", **kwargs)
        self._clients.append(c)
        return c

    def stop(self, grace: float = 2.0) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()
        self.daemon.stop(grace)


def start_server(data_dir: Path, **settings: Any) -> RunningServer:
    """A daemon on an ephemeral loopback port with the development PKI, keyring and policy."""
    values: dict[str, Any] = dict(data_dir=data_dir, listen="127.0.0.1:0", metrics_listen="", dev=True,
                                  map_size=1 << 30, workers=32, grace_period=2.0)
    values.update(settings)
    daemon = Daemon(Config(**values))
    daemon.start()
    return RunningServer(daemon.address, data_dir, ensure_dev_pki(data_dir), daemon)


@contextmanager
def raw_stub(server: RunningServer, max_send: int = 8 << 20) -> Iterator[Any]:
    """The bare VaultService stub of ``permits``, on a channel that may send what the client library
    never would (messages larger than the server accepts)."""
    import grpc

    from vaultd.v1 import vault_pb2_grpc

    svc = server.pki.service("permits")
    creds = grpc.ssl_channel_credentials(server.pki.ca.cert.read_bytes(), svc.key.read_bytes(),
                                         svc.cert.read_bytes())
    ch = grpc.secure_channel(server.address, creds, [("grpc.max_send_message_length", max_send)])
    try:
        yield vault_pb2_grpc.VaultServiceStub(ch)  # type: ignore[no-untyped-call]
    finally:
        ch.close()


def journal_leaves(op: VaultClient, start: int = 0) -> list[Any]:
    """Every journal leaf from ``start`` on, decoded, read page by page through ReadJournal."""
    from vaultd.journal.leaf import Leaf

    out: list[Any] = []
    while True:
        page = op.read_journal("", start=start, page_size=1000)
        out += [Leaf.decode(e.leaf) for e in page.entries]
        if not page.entries or page.next_index >= page.tree_size:
            return out
        start = page.next_index


def new_vault_id(prefix: str = "citizen") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
