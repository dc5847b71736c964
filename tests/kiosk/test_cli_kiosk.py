"""vaultd-kiosk driven by a scripted citizen, on the real stack (gRPC + pcscd + virtual card)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from vaultd.cli.kiosk import KioskApp, build_parser
from vaultd.core.signatures import CitizenTrust
from vaultd.kiosk import devca

from .conftest import KioskServer, wait_for_card

DOC = b"Residence certificate\n" * 500
VAULT = "citizen-alice.martin"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, ca: devca.DevCA) -> Iterator[KioskServer]:
    s = KioskServer(tmp_path_factory.mktemp("vaultd"), CitizenTrust((ca.cert,), (ca.crl(),)))
    with s.service("permits") as permits:
        permits.create_vault(VAULT)
        permits.deposit(VAULT, "certificates/residence.txt", DOC)
    try:
        yield s
    finally:
        s.stop()


class Script:
    """Answers the prompts in order; records every prompt; fails the test on an unexpected one."""

    def __init__(self, answers: list[object]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        assert self.answers, f"unexpected prompt {prompt!r}"
        a = self.answers.pop(0)
        return a() if callable(a) else str(a)


def test_help_explains_every_option() -> None:
    text = build_parser().format_help()
    for opt in ("--server", "--ca", "--cert", "--key", "--reader", "--dev-data", "--download-dir", "--once"):
        assert opt in text


def test_visit_login_download_sign(srv: KioskServer, insert_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    ask = Script(["1", "d", "1", "s", "yes", "q"])
    pins = Script(["000000", "123456", "123456"])
    out = io.StringIO()
    app = KioskApp(srv.kiosk, reader=p.reader, download_dir=tmp_path / "dl", ask=ask, ask_pin=pins, out=out,
                   progress=True)
    assert app.run(once=True) == 0
    text = out.getvalue()
    assert "Wrong PIN: 2 attempts left." in text
    assert "Welcome, Alice Martin." in text
    assert hashlib.sha256(DOC).hexdigest() in text  # shown before signing
    assert "Signed. The signature is recorded" in text
    assert "logged out" in text
    assert (tmp_path / "dl" / "residence.txt").read_bytes() == DOC
    assert "123456" not in text and "000000" not in text  # the PIN is never shown
    assert pins.prompts == ["PIN (to log in): ", "PIN (to log in): ", "PIN (to sign): "]


def test_declining_does_not_sign(srv: KioskServer, insert_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    out = io.StringIO()
    app = KioskApp(srv.kiosk, reader=p.reader, download_dir=tmp_path, ask=Script(["1", "s", "no", "q"]),
                   ask_pin=Script(["123456"]), out=out, progress=False)
    app.run(once=True)
    assert "Not signed." in out.getvalue()
    assert p.card.signatures_made == 1  # the login challenge only


def test_removing_the_card_logs_out(srv: KioskServer, insert_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = insert_card()
    tokens: list[str] = []
    made: list[object] = []

    def connect():  # type: ignore[no-untyped-def]
        k = srv.kiosk()
        made.append(k)
        return k

    def pull() -> str:
        tokens.append(made[0].token)  # type: ignore[attr-defined]
        p.remove()
        return "1"

    out = io.StringIO()
    app = KioskApp(connect, reader=p.reader, download_dir=tmp_path, ask=Script([pull]),
                   ask_pin=Script(["123456"]), out=out, progress=False)
    app.run(once=True)
    assert "logged out" in out.getvalue()
    from vaultd.errors import Unauthenticated

    with pytest.raises(Unauthenticated):
        srv.sessions.verify_token(tokens[0], "service:kiosk-townhall")


def test_blocked_card_is_reported(srv: KioskServer, insert_card, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = insert_card(ca.issue_card("bob.blocked"), pin_tries=2)
    out = io.StringIO()
    app = KioskApp(srv.kiosk, reader=p.reader, download_dir=tmp_path, ask=Script([]),
                   ask_pin=Script(["000000", "111111"]), out=out, progress=False)
    app.run(once=True)
    assert "Wrong PIN: 1 attempt left." in out.getvalue()
    assert "blocked" in out.getvalue()
    wait_for_card(p.reader, present=True)
