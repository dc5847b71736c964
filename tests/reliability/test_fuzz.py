"""The atheris harnesses of fuzz/ in CI: each runs for a bounded number of executions in a child
process (``--fuzz-runs N``, ``VAULTD_FUZZ_RUNS``; many more with ``--soak``) from its seed corpus
and must end without a crash. Inputs that once crashed a harness are kept under
fuzz/regressions/<harness>/ and replayed, and each fixed finding has a test of its own here."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUZZ = REPO / "fuzz"
HARNESSES = sorted(p.stem.removeprefix("fuzz_") for p in FUZZ.glob("fuzz_*.py"))
SLOW = {"servicer": 3}  # a real gRPC call per execution: a third of the runs


def _run(name: str, args: list[str], tmp: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(FUZZ / f"fuzz_{name}.py"), *args, f"-artifact_prefix={tmp}/"],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_parser_of_outside_bytes_has_a_harness() -> None:
    assert set(HARNESSES) >= {"servicer", "verify", "cms", "piv", "tlv", "leaf", "chunks"}


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_runs_without_a_crash(name: str, tmp_path: Path, fuzz_runs: int) -> None:
    runs = max(200, fuzz_runs // SLOW.get(name, 1))
    seed = int(os.environ.get("VAULTD_FUZZ_SEED", random.randrange(1, 1 << 31)))
    corpus = tmp_path / "corpus"
    r = _run(name, [str(corpus), f"-runs={runs}", f"-seed={seed}", "-max_len=8192"], tmp_path,
             timeout=max(300, runs / 50))
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert r.returncode == 0 and not crashes, (
        f"fuzz_{name} (seed {seed}) crashed: {crashes}\n" + r.stderr[-4000:])
    done = re.search(r"Done (\d+) runs", r.stderr)
    # libFuzzer checks its run limit between mutation rounds, so it may end a few runs past it
    # (1,013 of 1,000 was seen); fewer would mean the harness stopped early
    assert done and int(done.group(1)) >= runs, r.stderr[-2000:]
    assert any(corpus.iterdir()), "the seed corpus was not written"
    print(f"fuzz_{name}: {runs} executions, seed {seed}")


@pytest.mark.parametrize("name", sorted(p.name for p in (FUZZ / "regressions").iterdir() if p.is_dir()))
def test_regression_inputs_replay_cleanly(name: str, tmp_path: Path) -> None:
    files = sorted(str(p) for p in (FUZZ / "regressions" / name).iterdir())
    assert files
    r = _run(name, files, tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]


def _regression(name: str) -> bytes:
    return (FUZZ / "regressions" / "cms" / name).read_bytes()[1:]  # the first byte picks the input kind


def test_certificate_on_an_unknown_curve_is_refused() -> None:
    from cryptography import x509

    from vaultd.core.signatures import USAGE_SIGN, CertificateRejected, CitizenTrust, check_certificate
    from vaultd.errors import VaultError
    from vaultd.kiosk.devca import DevCA

    ca = DevCA.create("regression CA")
    cert = x509.load_der_x509_certificate(_regression("unsupported-curve-certificate"))
    with pytest.raises((CertificateRejected, VaultError)):
        check_certificate(cert, CitizenTrust((ca.cert,), (ca.crl(),)), usage=USAGE_SIGN,
                          at=dt.datetime.now(dt.timezone.utc))


class _OneReplyCard:
    """A card connection that answers a command with one reply (a PIV GET DATA object), in pieces of
    at most 256 bytes fetched with GET RESPONSE (SW 61xx), as ISO 7816-4 cards do."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.left = b""

    def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]:
        if apdu[1] != 0xC0:  # a new command: start the reply over
            self.left = self.reply
        part, self.left = self.left[:256], self.left[256:]
        if self.left:
            return list(part), 0x61, min(len(self.left), 0xFF)
        return list(part), 0x90, 0x00

    def disconnect(self) -> None:
        pass


def test_card_certificate_with_an_unknown_x509_version_is_a_card_error() -> None:
    from vaultd.errors import VaultError
    from vaultd.kiosk import tlv
    from vaultd.kiosk.piv import PivCard

    der = _regression("invalid-x509-version")
    reply = tlv.encode(0x53, tlv.encode(0x70, der) + tlv.encode(0x71, b"\x00"))
    with pytest.raises(VaultError):
        PivCard(_OneReplyCard(reply), "regression").read_certificate(0x9A)


def test_login_with_an_unknown_x509_version_is_refused() -> None:
    import time

    from vaultd.core.sessions import LoginFailed, Sessions
    from vaultd.core.signatures import CitizenTrust
    from vaultd.kiosk.devca import DevCA

    ca = DevCA.create("regression CA")
    sessions = Sessions(CitizenTrust((ca.cert,), (ca.crl(),)), os.urandom(32), clock=time.time)
    challenge = sessions.begin("service:kiosk-1")
    with pytest.raises(LoginFailed):
        sessions.complete("service:kiosk-1", challenge.nonce, _regression("invalid-x509-version"), b"\x30\x00")
