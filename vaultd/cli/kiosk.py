"""``vaultd-kiosk``: the kiosk program citizens use with their card.

It waits for a card, asks for the PIN without showing it, logs the citizen in (the card signs the
server's challenge with its authentication key), lists the citizen's documents, downloads one with a
progress bar, and signs one after showing its name, size and SHA-256 and asking for confirmation and
the PIN again. Taking the card out logs the citizen out at once. The PIN only ever goes to the card;
it is never written to disk or to a log, and neither is any key.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives import serialization

from vaultd.errors import VaultError
from vaultd.kiosk import cms, piv

__all__ = ["KioskApp", "main", "build_parser"]

POLL_SECONDS = 0.5


class CardWatch:
    """Watches the reader on a thread; calls ``on_removed`` once when the card leaves it."""

    def __init__(self, reader: str, on_removed: Callable[[], None]) -> None:
        self.reader = reader
        self.removed = threading.Event()
        self._stop = threading.Event()
        self._on_removed = on_removed
        self._thread = threading.Thread(target=self._run, name="card-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from smartcard.scard import (  # type: ignore[import-untyped]
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCARD_STATE_PRESENT,
            SCARD_STATE_UNAWARE,
            SCardEstablishContext,
            SCardGetStatusChange,
            SCardReleaseContext,
        )

        rc, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        if rc != SCARD_S_SUCCESS:
            return
        try:
            state = SCARD_STATE_UNAWARE
            while not self._stop.is_set():
                rc, states = SCardGetStatusChange(ctx, 250, [(self.reader, state)])
                if rc != SCARD_S_SUCCESS:
                    if rc != 0x8010000A:  # SCARD_E_TIMEOUT: nothing changed
                        time.sleep(0.1)
                    continue
                _, state, _ = states[0]
                if not state & SCARD_STATE_PRESENT:
                    self.removed.set()
                    self._on_removed()
                    return
        finally:
            SCardReleaseContext(ctx)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class KioskApp:
    """The kiosk's dialogue. ``ask``/``ask_pin``/``out`` are injectable so that it can be scripted."""

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        reader: str | None,
        download_dir: Path,
        ask: Callable[[str], str] = input,
        ask_pin: Callable[[str], str] = getpass.getpass,
        out: TextIO = sys.stdout,
        progress: bool = True,
    ) -> None:
        self._connect = connect
        self.reader = reader
        self.download_dir = download_dir
        self._ask = ask
        self._ask_pin = ask_pin
        self.out = out
        self._progress = progress

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # -- the card ------------------------------------------------------------------------------
    def wait_for_card(self, timeout: float | None = None) -> piv.PivCard:
        said = ""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return piv.PivCard.open(self.reader)
            except (piv.NoReader, piv.NoCard) as e:
                msg = "Please plug in the card reader." if isinstance(e, piv.NoReader) else "Please insert your card."
                if msg != said:
                    self.say(msg)
                    said = msg
            if deadline is not None and time.monotonic() > deadline:
                raise piv.NoCard(self.reader or "")
            time.sleep(POLL_SECONDS)

    def _pin(self, card: piv.PivCard, why: str) -> None:
        """Asks for the PIN until the card accepts it; raises PinBlocked."""
        while True:
            pin = self._ask_pin(f"PIN ({why}): ")
            try:
                card.verify_pin(pin)
                return
            except piv.WrongPin as e:
                self.say(str(e))
            except VaultError as e:  # a PIN of the wrong format: say so, the card saw nothing
                if isinstance(e, (piv.PinBlocked, piv.CardRemoved)):
                    raise
                self.say(str(e))
            finally:
                pin = ""  # noqa: F841  (drop the reference as soon as possible)

    # -- one citizen's visit ---------------------------------------------------------------------
    def session(self, card: piv.PivCard) -> None:
        card.select()
        cert = card.read_certificate(piv.SLOT_AUTH)
        kiosk = self._connect()
        watch = CardWatch(card.reader, kiosk.end_session)
        try:
            challenge = kiosk.begin_session()
            self._pin(card, "to log in")
            signature = card.sign_digest(piv.SLOT_AUTH, hashlib.sha256(challenge.to_sign).digest())
            s = kiosk.complete_session(
                challenge.nonce, cert.public_bytes(serialization.Encoding.DER), signature
            )
            self.say(f"Welcome, {s.display_name}.")
            with kiosk.vault_client() as vault:
                self._menu(card, kiosk, vault, s.vault, watch)
        finally:
            watch.stop()
            kiosk.end_session()
            kiosk.close()
        self.say("You are logged out. Goodbye.")

    def _menu(self, card: piv.PivCard, kiosk: Any, vault: Any, vault_id: str, watch: CardWatch) -> None:
        while not watch.removed.is_set():
            docs = list(vault.list(vault_id))
            self.say("")
            if not docs:
                self.say("You have no documents.")
            for i, d in enumerate(docs, 1):
                self.say(f"  {i}. {d.name}  ({_size(d.size)})")
            choice = self._ask("Type a number to open a document, or q to finish: ").strip().lower()
            if watch.removed.is_set() or choice in ("q", "quit", ""):
                return
            if not choice.isdigit() or not 1 <= int(choice) <= len(docs):
                self.say("There is no such document.")
                continue
            doc = docs[int(choice) - 1]
            self.say(f"{doc.name}\n  size: {_size(doc.size)}\n  version: {doc.version}\n  SHA-256: {doc.sha256.hex()}")
            action = self._ask("d to download, s to sign, anything else to go back: ").strip().lower()
            if watch.removed.is_set():
                return
            if action == "d":
                self._download(vault, vault_id, doc)
            elif action == "s":
                self._sign(card, kiosk, vault_id, doc)

    def _download(self, vault: Any, vault_id: str, doc: Any) -> None:
        self.download_dir.mkdir(parents=True, exist_ok=True)
        target = self.download_dir / Path(doc.name).name
        bar: Any = None
        if self._progress:
            from tqdm import tqdm

            bar = tqdm(total=doc.size, unit="B", unit_scale=True, desc=target.name, file=self.out)

        def progress(done: int, total: int | None) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        try:
            vault.read_to(vault_id, doc.name, target, version=doc.version, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        self.say(f"Saved to {target} (SHA-256 checked).")

    def _sign(self, card: piv.PivCard, kiosk: Any, vault_id: str, doc: Any) -> None:
        self.say("You are about to sign, with legal value:")
        self.say(f"  {doc.name}, version {doc.version}, {_size(doc.size)}\n  SHA-256 {doc.sha256.hex()}")
        if self._ask("Type yes to sign: ").strip().lower() != "yes":
            self.say("Not signed.")
            return
        cert = card.read_certificate(piv.SLOT_SIGN)
        self._pin(card, "to sign")
        der = cms.sign_detached(doc.sha256, cert, lambda d: card.sign_digest(piv.SLOT_SIGN, d))
        r = kiosk.submit_signature(vault_id, doc.name, doc.version, der)
        if r.valid:
            self.say(f"Signed. The signature is recorded (journal entry {r.journal_index}).")
        else:
            self.say(f"The signature was refused: {r.reason}.")

    def run(self, *, once: bool = False) -> int:
        while True:
            card = self.wait_for_card()
            try:
                self.session(card)
            except piv.PinBlocked as e:
                self.say(str(e))
            except piv.CardRemoved:
                self.say("The card was removed. Nothing was signed. You are logged out.")
            except VaultError as e:
                self.say(f"Sorry: {e}")
            finally:
                card.close()
            if once:
                return 0
            self.say("Please take your card.")
            self._wait_removed()

    def _wait_removed(self) -> None:
        while True:
            try:
                with piv.PivCard.open(self.reader):
                    pass
            except (piv.NoCard, piv.NoReader, piv.CardRemoved):
                return
            time.sleep(POLL_SECONDS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vaultd-kiosk",
        description="The citizens' kiosk of vaultd: log in with a PIV citizen card, see, download and "
        "sign your documents.",
        epilog="With the development setup (`vaultd serve --dev`, certificates in DATA/pki), run "
        "`vaultd-kiosk --dev-data DATA`. For a physical reader, give its PC/SC name with --reader "
        "(list them with `pcsc_scan` or `opensc-tool -l`); any PIV card with ECC P-256 keys in slots "
        "9A and 9C works. The PIN is read without echo and only ever sent to the card.",
    )
    p.add_argument("--server", default="127.0.0.1:7443", metavar="HOST:PORT", help="the vaultd server (default %(default)s)")
    p.add_argument("--ca", type=Path, help="the CA certificate (PEM) that signed the server's certificate")
    p.add_argument("--cert", type=Path, help="this kiosk's client certificate (PEM, subject CN svc-kiosk-NAME)")
    p.add_argument("--key", type=Path, help="this kiosk's private key (PEM)")
    p.add_argument("--server-name", default=None, help="the name in the server's certificate, if not the host")
    p.add_argument("--dev-data", type=Path, metavar="DIR",
                   help="use the development PKI in DIR/pki (CA, svc-kiosk-NAME certificate) instead of --ca/--cert/--key")
    p.add_argument("--kiosk-name", default="townhall", help="with --dev-data: the kiosk's name (default %(default)s)")
    p.add_argument("--reader", default=None,
                   help="PC/SC reader name or prefix (default: the first reader; the virtual one is 'Virtual PCD 00 00')")
    p.add_argument("--download-dir", type=Path, default=Path.home() / "Downloads", help="where downloads go (default %(default)s)")
    p.add_argument("--once", action="store_true", help="serve one citizen, then exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dev_data:
        from vaultd.pki import CertKey, ensure_dev_pki, issue_cert

        pki = ensure_dev_pki(args.dev_data)
        ck = pki.client(f"svc-kiosk-{args.kiosk_name}")
        if not ck.cert.exists():
            issue_cert(pki.ca, f"svc-kiosk-{args.kiosk_name}", CertKey(ck.cert, ck.key))
        ca, cert, key, server_name = pki.ca.cert, ck.cert, ck.key, args.server_name or "localhost"
    else:
        if not (args.ca and args.cert and args.key):
            print("vaultd-kiosk: give --ca, --cert and --key (or --dev-data DIR)", file=sys.stderr)
            return 2
        ca, cert, key, server_name = args.ca, args.cert, args.key, args.server_name

    from vaultd.transport.kiosk import KioskClient

    def connect() -> KioskClient:
        return KioskClient(args.server, ca=ca, cert=cert, key=key, server_name=server_name)

    app = KioskApp(connect, reader=args.reader, download_dir=args.download_dir)
    try:
        return app.run(once=args.once)
    except KeyboardInterrupt:
        print("\nvaultd-kiosk stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


def kiosk_for_daemon(cfg: Any, vaults: Any) -> tuple[Any, list[tuple[str, Callable[[Any], None]]]]:
    """The server side of the kiosks for ``vaultd serve``: (token authenticator, extra services).

    Without a citizen-card CA (and outside development mode) there are no kiosks: (None, []).

    Reads the settings ``citizen_ca`` (PEM of the citizen-card CA), ``citizen_crls`` (its revocation
    lists, read again when they change) and ``session_secret`` (a file of 32 random bytes, made mode
    0600 on first run; default ``<data-dir>/session.key``). Only in development mode, when no
    ``citizen_ca`` is configured, a development citizen-card CA is used (made on first run in
    ``<data-dir>/citizen-ca``, with its revocation list).

        sessions, kiosk = kiosk_for_daemon(cfg, vaults)
        VaultServer(..., tokens=sessions, extra_services=[..., *kiosk])
    """
    import os

    from vaultd.core.sessions import Sessions
    from vaultd.core.signatures import CitizenTrustFiles
    from vaultd.transport.kiosk import kiosk_service

    data_dir = Path(cfg.data_dir)
    ca = getattr(cfg, "citizen_ca", None)
    crls = list(getattr(cfg, "citizen_crls", None) or [])
    if ca is None:
        if not getattr(cfg, "dev", False):
            return None, []
        dev_dir = data_dir / "citizen-ca"
        if not (dev_dir / "ca.pem").exists():
            from vaultd.kiosk.devca import DevCA

            DevCA.create().save(dev_dir)
        ca = dev_dir / "ca.pem"
        if not crls and (dev_dir / "crl.pem").exists():
            crls = [dev_dir / "crl.pem"]
    secret_path = Path(getattr(cfg, "session_secret", None) or data_dir / "session.key")
    if not secret_path.exists():
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    trust = CitizenTrustFiles(Path(ca), crls)
    sessions = Sessions(trust, secret_path.read_bytes())  # type: ignore[arg-type]
    return sessions, [kiosk_service(vaults, sessions, trust)]  # type: ignore[arg-type]
