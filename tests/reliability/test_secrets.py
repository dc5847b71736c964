"""No key material, PIN or document content where it must not be: after a run of the real daemon
(deposits, reads, key rotations, refused and failed calls), its JSON log, its Prometheus metrics,
the error messages it sent and every file of its data folder are searched for every secret it
holds (master keys, the vaults' data and dedup keys, the journal signing key, the session secret,
TLS private keys, a keyring passphrase given in the environment) in raw, hex and base64 forms, and
for the documents' content. Each secret may appear only in the one file that is its home; the LMDB
file may hold none of them (chunks are sealed, vault keys wrapped). The daemon runs with core dumps
disabled.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from daemon_proc import DaemonProcess, vault_keys  # type: ignore[import-not-found]
from vaultd.errors import VaultError

VAULTS = ["citizen-secret-a", "citizen-secret-b"]


def _forms(secret: bytes) -> list[bytes]:
    """The ways a secret could leak: raw, hex (both cases), base64 (standard and URL-safe)."""
    b64 = base64.b64encode(secret).rstrip(b"=")
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), b64,
            base64.urlsafe_b64encode(secret).rstrip(b"=")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _private_scalar(pem: Path) -> bytes:
    key = serialization.load_pem_private_key(pem.read_bytes(), None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes(32, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    raise AssertionError(f"unexpected key type in {pem}")


def test_no_secret_or_content_leaks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    d = DaemonProcess(data, args=["--metrics-listen", f"127.0.0.1:{port}", "--log-level", "debug"]).start()
    markers = [b"CONTENT-" + os.urandom(12).hex().encode() for _ in range(6)]
    docs = {f"doc{i}": m + os.urandom(3000) + m for i, m in enumerate(markers)}
    errors: list[str] = []
    metrics = b""
    try:
        with d.client("permits") as c, d.client("taxation") as other, d.client("op-admin") as op:
            for v in VAULTS:
                c.create_vault(v)
            for name, doc in docs.items():
                c.deposit(VAULTS[int(name[-1]) % 2], name, doc)
            op.rotate_keys()
            for name, doc in docs.items():
                assert c.read_bytes(VAULTS[int(name[-1]) % 2], name) == doc
            # refused and failed calls: their messages are searched too
            for call in (lambda: c.deposit(VAULTS[0], "bad", docs["doc0"], expected_sha256=b"\0" * 32),
                         lambda: other.read_bytes(VAULTS[0], "doc0"),
                         lambda: c.read_bytes(VAULTS[0], "missing"),
                         lambda: c.deposit(VAULTS[0], "x\x01", docs["doc1"]),
                         lambda: op.read_bytes(VAULTS[0], "doc0")):
                try:
                    call()
                except VaultError as e:
                    errors.append(str(e))
            assert len(errors) >= 4  # (the dev policy lets every service into citizen-* vaults)
            op.rotate_keys()
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
            assert b"vaultd_" in metrics
    finally:
        d.stop()
    log = d.log.read_bytes()
    assert b'"event":"request"' in log

    secrets: dict[str, bytes] = {}
    keyring = json.loads((data / "keyring.json").read_text())
    for version, kek in keyring["keys"]["keks"].items():
        secrets[f"master key v{version}"] = base64.b64decode(kek)
    assert len([k for k in secrets if k.startswith("master")]) == 3  # two rotations
    for v, (dk, dd) in vault_keys(data, VAULTS).items():
        secrets[f"{v} data key"] = dk
        secrets[f"{v} dedup key"] = dd
    secrets["journal signing key"] = _private_scalar(data / "journal" / "journal.key")
    secrets["session secret"] = (data / "session.key").read_bytes()
    for pem in (data / "pki").glob("*-key.pem"):
        secrets[f"TLS key {pem.name}"] = _private_scalar(pem)
    homes = {"keyring.json": "master key", "journal/journal.key": "journal signing key",
             "session.key": "session secret"}

    places: dict[str, bytes] = {"daemon log": log, "metrics": metrics, "error messages": "\n".join(errors).encode()}
    for f in sorted(p for p in data.rglob("*") if p.is_file()):
        places[f"file {f.relative_to(data)}"] = f.read_bytes()
    assert "file store/data.mdb" in places
    # the search finds what is there: each secret is found in its own home
    assert any(f in places["file keyring.json"] for f in _forms(secrets["master key v1"]))
    assert any(f in places["file session.key"] for f in _forms(secrets["session secret"]))
    leaks = []
    for what, secret in secrets.items():
        assert len(secret) >= 16
        for where, blob in places.items():
            rel = where.removeprefix("file ")
            if homes.get(rel, "\0") in what or (rel.startswith("pki/") and what == f"TLS key {Path(rel).name}"):
                continue  # the secret's own file
            if any(form in blob for form in _forms(secret)):
                leaks.append(f"{what} in {where}")
    for i, m in enumerate(markers):
        for where, blob in places.items():
            if m in blob or m.hex().encode() in blob or base64.b64encode(docs[f"doc{i}"][:600])[:40] in blob:
                leaks.append(f"content of doc{i} in {where}")
    assert leaks == [], leaks


def test_core_dumps_are_disabled(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    d = DaemonProcess(tmp_path / "data", cwd=cwd).start()
    try:
        assert d.proc is not None
        limits = Path(f"/proc/{d.proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max core file size"))
        assert line.split()[4:6] == ["0", "0"], line
        # a crash leaves no core file behind (where the kernel would write one)
        os.kill(d.proc.pid, signal.SIGSEGV)
        d.proc.wait(30)
        assert d.proc.returncode == -signal.SIGSEGV
        time.sleep(0.2)
        pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
        if not pattern.startswith("|"):
            assert not [p for p in cwd.iterdir() if p.name.startswith("core")]
            assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith("core")]
    finally:
        d.kill()


@pytest.mark.parametrize("unused", [None])
def test_keyring_passphrase_from_the_environment_never_leaks(tmp_path: Path, unused: None) -> None:
    """The keyring passphrase lives only in the daemon's environment: not in its log or files."""
    passphrase = "pass-" + os.urandom(12).hex()
    data = tmp_path / "data"
    d = DaemonProcess(data, env={"VAULTD_KEYRING_PASSPHRASE": passphrase}, args=["--log-level", "debug"])
    try:
        d.start()
        with d.client("permits") as c:
            c.create_vault("citizen-pp")
            c.deposit("citizen-pp", "x", b"hello")
    except RuntimeError:
        pass  # a refusal to start is fine too; its message is searched below
    finally:
        d.stop()
    blobs = [d.log.read_bytes()] + [f.read_bytes() for f in data.rglob("*") if f.is_file()]
    for form in (passphrase.encode(), passphrase.encode().hex().encode(), base64.b64encode(passphrase.encode())):
        assert not any(form in b for b in blobs)
