"""vaultctl against a real daemon: every command, and the exit codes scripts rely on."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from servers import RunningServer, journal_leaves, new_vault_id, start_server
from vaultd.cli import vaultctl

ROOT = Path(__file__).resolve().parents[2]


def ctl(srv: RunningServer, *args: str, who: str = "permits", stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run vaultctl's main in this process (fast), with its own stdin, stdout and stderr."""
    argv = ["--server", srv.address, "--data-dir", str(srv.data_dir), "--as", who, *args]
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    wrappers = (io.TextIOWrapper(io.BytesIO(stdin or b"")), io.TextIOWrapper(out, write_through=True),
                io.TextIOWrapper(err, write_through=True))
    sys.stdin, sys.stdout, sys.stderr = wrappers
    try:
        try:
            code = vaultctl.main(argv)
        except SystemExit as e:
            code = int(e.code or 0)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        for w in wrappers:
            w.detach()  # keep the buffers open
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def ok(p: subprocess.CompletedProcess[bytes]) -> str:
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_every_command(vault_server: RunningServer, tmp_path: Path) -> None:
    vault = new_vault_id()
    assert json.loads(ok(ctl(vault_server, "mkvault", vault)))["vault"] == vault
    src = tmp_path / "permit.pdf"
    src.write_bytes(os.urandom(1_500_000))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    r = json.loads(ok(ctl(vault_server, "put", vault, "permits/A-1.pdf", str(src), "--content-type",
                          "application/pdf", "--meta", "case=A-1", "--sha256", sha, "--request-id", "r1")))
    assert (r["version"], r["sha256"], r["request_id"]) == (1, sha, "r1")
    ok(ctl(vault_server, "put", vault, "permits/A-1.pdf", "-", stdin=b"second version"))
    out = tmp_path / "copy.pdf"
    ok(ctl(vault_server, "get", vault, "permits/A-1.pdf", "-o", str(out), "--version", "1"))
    assert out.read_bytes() == src.read_bytes()
    assert ctl(vault_server, "get", vault, "permits/A-1.pdf").stdout == b"second version"
    listing = ok(ctl(vault_server, "ls", vault, "permits/", "--versions"))
    assert listing.count("permits/A-1.pdf") == 2
    assert [json.loads(x)["version"] for x in ok(ctl(vault_server, "ls", vault, "--json")).splitlines()] == [2]
    assert ok(ctl(vault_server, "count", vault)).strip() == "1"
    st = json.loads(ok(ctl(vault_server, "stat", vault, "permits/A-1.pdf", "--version", "1")))
    assert st["metadata"] == {"case": "A-1"} and st["content_type"] == "application/pdf"
    assert json.loads(ok(ctl(vault_server, "check", vault)))["ok"] is True
    until = int(time.time()) + 3600
    assert json.loads(ok(ctl(vault_server, "retain", vault, "permits/A-1.pdf", str(until))))["retain_until"] == until
    assert ctl(vault_server, "rm", vault, "permits/A-1.pdf").returncode == 8  # FAILED_PRECONDITION
    assert json.loads(ok(ctl(vault_server, "hold", vault, "permits/A-1.pdf", "--version", "1")))["legal_hold"]
    assert ctl(vault_server, "rm", vault, "permits/A-1.pdf", "--version", "1").returncode == 8
    ok(ctl(vault_server, "hold", vault, "permits/A-1.pdf", "--version", "1", "--release"))
    assert json.loads(ok(ctl(vault_server, "rm", vault, "permits/A-1.pdf", "--version", "1")))["version"] == 1
    v = json.loads(ok(ctl(vault_server, "keys", "rotate", who="op-admin")))["key_version"]
    assert v >= 2


def test_keys_retire(server_factory: Callable[..., RunningServer]) -> None:
    """Rotate, then retire the old master key version through vaultctl; refusals have their exit
    codes, the retirement is journaled and the daemon starts again on the keyring without it."""
    srv = server_factory()
    vault = new_vault_id()
    ok(ctl(srv, "mkvault", vault))
    ok(ctl(srv, "put", vault, "deed", "-", stdin=b"deed of sale"))
    assert ctl(srv, "keys", "retire", "1", who="op-admin").returncode == 8  # the current version
    srv.daemon.vaults.keys.rotate()  # version 2, the vault key still wrapped under 1
    p = ctl(srv, "keys", "retire", "1", who="op-admin")
    assert p.returncode == 8 and b"still wraps the keys of 1 vault" in p.stderr, p.stderr.decode()
    assert json.loads(ok(ctl(srv, "keys", "rotate", who="op-admin")))["key_version"] == 3
    assert ctl(srv, "keys", "retire", "1", who="permits").returncode == 5
    assert ctl(srv, "keys", "retire", "9", who="op-admin").returncode == 4
    assert ctl(srv, "keys", "retire", "0", who="op-admin").returncode == 1
    op = srv.client("op-admin")
    start = op.checkpoint().tree_size
    assert json.loads(ok(ctl(srv, "keys", "retire", "1", who="op-admin"))) == {"retired_key_version": 1}
    ok(ctl(srv, "keys", "retire", "2", who="op-admin"))
    assert ctl(srv, "keys", "retire", "1", who="op-admin").returncode == 4  # gone
    retired = [lf for lf in journal_leaves(op, start) if lf.operation == "retire_key"]
    assert [lf.version for lf in retired] == [1, 2] and all(lf.actor_kind == "operator" for lf in retired)
    assert ctl(srv, "get", vault, "deed").stdout == b"deed of sale"
    keyring = json.loads((srv.data_dir / "keyring.json").read_bytes())
    assert set(keyring["keys"]["keks"]) == {"3"}
    srv.stop()
    again = start_server(srv.data_dir)
    try:
        assert ctl(again, "get", vault, "deed").stdout == b"deed of sale"
        assert json.loads(ok(ctl(again, "check", vault)))["ok"] is True
    finally:
        again.stop()


@pytest.mark.parametrize("args,who,code", [
    (["stat", "{vault}", "missing"], "permits", 4),             # NOT_FOUND
    (["count", "taxation"], "permits", 5),                       # PERMISSION_DENIED
    (["keys", "rotate"], "permits", 5),
    (["put", "{vault}", "x\x01y", "{file}"], "permits", 7),      # INVALID_ARGUMENT
    (["mkvault", "{vault}"], "permits", 9),                      # ALREADY_EXISTS
    (["put", "{vault}", "x", "/nonexistent/file"], "permits", 1),  # usage
    (["frobnicate"], "permits", 1),
    (["get"], "permits", 1),
])
def test_exit_codes(vault_server: RunningServer, tmp_path: Path, args: list[str], who: str, code: int) -> None:
    vault = new_vault_id()
    ok(ctl(vault_server, "mkvault", vault))
    f = tmp_path / "f"
    f.write_bytes(b"x")
    p = ctl(vault_server, *[a.format(vault=vault, file=f) for a in args], who=who)
    assert p.returncode == code, p.stderr.decode()


def test_unreachable_server_is_unavailable(vault_server: RunningServer) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "vaultd.cli.vaultctl", "--server", "127.0.0.1:1", "--data-dir",
         str(vault_server.data_dir), "count", "citizen-x"],
        cwd=ROOT, capture_output=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert p.returncode == 3, p.stderr.decode()


def test_help_documents_exit_codes() -> None:
    out = subprocess.run([sys.executable, "-m", "vaultd.cli.vaultctl", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0
    for word in ("NOT_FOUND", "PERMISSION_DENIED", "DATA_LOSS", "exit codes"):
        assert word in out.stdout


def test_an_auditor_verifies_offline_with_what_vaultctl_fetches(vault_server: RunningServer, tmp_path: Path) -> None:
    """put -> receipt, journal key, checkpoints and a consistency proof fetched with vaultctl; then
    `vaultctl verify` and `verify-consistency` with no server: 0 when all holds, 11 when the
    document or the proof is not the right one."""
    vault = new_vault_id()
    ok(ctl(vault_server, "mkvault", vault))
    doc = tmp_path / "contract.pdf"
    doc.write_bytes(os.urandom(300_000))
    ok(ctl(vault_server, "put", vault, "contract.pdf", str(doc)))
    files = {n: tmp_path / n for n in ("receipt.json", "key.txt", "cp1.note", "cp2.note", "proof.json")}
    ok(ctl(vault_server, "receipt", vault, "contract.pdf", "-o", str(files["receipt.json"])))
    ok(ctl(vault_server, "journal", "key", "-o", str(files["key.txt"])))
    ok(ctl(vault_server, "journal", "checkpoint", "-o", str(files["cp1.note"])))
    old_size = int(files["cp1.note"].read_text().splitlines()[1])
    for i in range(3):
        ok(ctl(vault_server, "put", vault, f"later-{i}", "-", stdin=os.urandom(1000)))
    ok(ctl(vault_server, "journal", "checkpoint", "-o", str(files["cp2.note"])))
    new_size = int(files["cp2.note"].read_text().splitlines()[1])
    assert new_size >= old_size + 3
    ok(ctl(vault_server, "journal", "consistency", str(old_size), str(new_size), "-o", str(files["proof.json"])))

    def offline(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "vaultd.cli.vaultctl", *args], capture_output=True, timeout=60)

    key = str(files["key.txt"])
    assert offline("verify", str(files["receipt.json"]), "--document", str(doc), "--public-key", key).returncode == 0
    assert offline("verify-consistency", str(files["cp1.note"]), str(files["cp2.note"]), str(files["proof.json"]),
                   "--public-key", key).returncode == 0
    other = tmp_path / "other.pdf"
    other.write_bytes(os.urandom(300_000))
    bad = offline("verify", str(files["receipt.json"]), "--document", str(other), "--public-key", key)
    assert bad.returncode == 11 and b"document-sha256" in bad.stdout + bad.stderr
    swapped = offline("verify-consistency", str(files["cp2.note"]), str(files["cp1.note"]), str(files["proof.json"]),
                      "--public-key", key)
    assert swapped.returncode == 11
