"""The real PC/SC stack for the kiosk tests: pcscd with the vpcd reader, and the virtual PIV card.

``pcscd`` (session) starts the daemon through scripts/pcscd unless it already runs, and stops it at
the end only if it started it. ``insert_card`` puts a virtual card into the reader "Virtual PCD 00 00"
and waits until pyscard sees it; the card leaves the reader when the test ends. A file lock keeps two
test processes from plugging cards into the one reader at the same time.
"""

from __future__ import annotations

import fcntl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vaultd.kiosk import devca, piv
from vaultd.kiosk.virtual_card import VirtualPivCard
from vaultd.kiosk.vpcd import VpcdLink

ROOT = Path(__file__).resolve().parents[2]
READER = "Virtual PCD 00 00"


@pytest.fixture(scope="session")
def pcscd() -> Iterator[str]:
    lock_file = open(Path(tempfile.gettempdir()) / "vaultd-vpcd-reader.lock", "w")
    fcntl.flock(lock_file, fcntl.LOCK_EX)
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pcscd"), "start"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    started = "started" in out.stdout
    try:
        yield READER
    finally:
        if started:
            subprocess.run(["bash", str(ROOT / "scripts" / "pcscd"), "stop"], capture_output=True, timeout=60)
        fcntl.flock(lock_file, fcntl.LOCK_UN)
        lock_file.close()


@pytest.fixture(scope="session")
def ca() -> devca.DevCA:
    return devca.DevCA.create()


def wait_for_card(reader: str, present: bool, timeout: float = 10.0) -> None:
    """Waits until pcscd reports the card in (or out of) the reader."""
    from smartcard.scard import (
        SCARD_S_SUCCESS,
        SCARD_SCOPE_USER,
        SCARD_STATE_PRESENT,
        SCARD_STATE_UNAWARE,
        SCardEstablishContext,
        SCardGetStatusChange,
        SCardReleaseContext,
    )

    rc, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    assert rc == SCARD_S_SUCCESS
    try:
        deadline = time.monotonic() + timeout
        state = SCARD_STATE_UNAWARE
        while time.monotonic() < deadline:
            rc, states = SCardGetStatusChange(ctx, 200, [(reader, state)])
            if rc == SCARD_S_SUCCESS:
                _, state, _ = states[0]
                if bool(state & SCARD_STATE_PRESENT) == present:
                    return
            else:
                time.sleep(0.05)
        raise AssertionError(f"card never {'appeared in' if present else 'left'} {reader}")
    finally:
        SCardReleaseContext(ctx)


class Plugged:
    """A virtual card in the reader, with what a test needs to handle it."""

    def __init__(self, card: VirtualPivCard, link: VpcdLink, creds: devca.CardCredentials, folder: Path,
                 reader: str) -> None:
        self.card, self.link, self.creds, self.folder, self.reader = card, link, creds, folder, reader

    def open(self) -> piv.PivCard:
        return piv.PivCard.open(self.reader)

    def remove(self) -> None:
        self.link.remove()
        wait_for_card(self.reader, present=False)
        # After a failed transmit the reader state turns EMPTY at once, but the vpcd driver only
        # notices at its next presence poll (pcscd polls every 400 ms); a card plugged in before
        # that would be taken for the old one.
        time.sleep(0.6)

    def insert(self) -> None:
        self.link.insert()
        wait_for_card(self.reader, present=True)


@pytest.fixture
def insert_card(pcscd: str, ca: devca.DevCA, tmp_path: Path) -> Iterator[Callable[..., Plugged]]:
    plugged: list[Plugged] = []

    def make(creds: devca.CardCredentials | None = None, *, has_piv: bool = True, pin_tries: int = 3) -> Plugged:
        creds = creds or ca.issue_card("alice.martin", display_name="Alice Martin")
        folder = devca.write_card(creds, tmp_path / f"card{len(plugged)}", pin_tries=pin_tries, has_piv=has_piv)
        card = VirtualPivCard(folder)
        p = Plugged(card, VpcdLink(card), creds, folder, pcscd)
        plugged.append(p)
        p.insert()
        return p

    yield make
    for p in plugged:
        p.remove()


# -- a vaultd with KioskService -------------------------------------------------------------------
class KioskServer:
    """vaultd over mTLS on 127.0.0.1 (real LMDB, journal) with KioskService and card-login tokens."""

    def __init__(self, data: Path, trust: object) -> None:
        import os

        from vaultd.core.policy import Policy
        from vaultd.core.sessions import Sessions
        from vaultd.core.vaults import open_vaults
        from vaultd.journal.hook import JournalHook, leaf_factory, open_journal
        from vaultd.keys.file import FileKeyProvider
        from vaultd.pki import ensure_dev_pki, ensure_dev_policy, issue_cert
        from vaultd.transport.journal import journal_service
        from vaultd.transport.kiosk import kiosk_service
        from vaultd.transport.server import ServerLimits, TLSConfig, VaultServer

        self.data = data
        self.pki = ensure_dev_pki(data)
        for cn in ("svc-kiosk-townhall", "svc-kiosk-library"):
            issue_cert(self.pki.ca, cn, self.pki.client(cn))
        self.policy = Policy.from_file(ensure_dev_policy(data))
        hook = JournalHook()
        self.vaults = open_vaults(
            data, policy=self.policy, key_provider=FileKeyProvider(data / "keyring.json"), map_size=1 << 28,
            leaf_factory=leaf_factory, journal=hook, after_commit=hook.after_commit,
        )
        self.journal = open_journal(self.vaults.store.env, data / "journal")
        hook.bind(self.journal)
        self.sessions = Sessions(trust, os.urandom(32))  # type: ignore[arg-type]
        self.server = VaultServer(
            self.vaults, listen="127.0.0.1:0",
            tls=TLSConfig(self.pki.server.cert, self.pki.server.key, self.pki.ca.cert),
            limits=ServerLimits(workers=32), tokens=self.sessions,
            extra_services=[journal_service(self.journal, self.policy.check),
                            kiosk_service(self.vaults, self.sessions, trust)],  # type: ignore[arg-type]
        )
        self.server.start()
        self.address = self.server.address

    def kiosk(self, name: str = "townhall"):  # type: ignore[no-untyped-def]
        from vaultd.transport.kiosk import KioskClient

        ck = self.pki.client(f"svc-kiosk-{name}")
        return KioskClient(self.address, ca=self.pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost")

    def service(self, name: str = "permits"):  # type: ignore[no-untyped-def]
        from vaultd.client import VaultClient

        return VaultClient.for_dev(self.address, self.data, name, server_name="localhost")

    def stop(self) -> None:
        self.server.stop(1.0)
        self.vaults.close()
