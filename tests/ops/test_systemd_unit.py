"""ops/systemd/vaultd.service: `systemd-analyze verify` passes with no warning, its hardening
exposure stays low, and the directives the deployment relies on are there.

systemd-analyze runs offline against a scratch root holding the distribution's units, the unit
under test and a stand-in for the daemon's executable (verify checks ExecStart= exists). If
systemd-analyze is missing the test fails: install the Debian package ``systemd``.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "ops" / "systemd" / "vaultd.service"
ANALYZE = shutil.which("systemd-analyze")
if ANALYZE is None:  # a failure, not a skip
    raise RuntimeError("systemd-analyze not found: install the Debian package 'systemd'")
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 (locked down) .. 10 (exposed)


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A scratch filesystem root: system units, the unit, a stand-in executable."""
    text = UNIT.read_text()
    exe = directives(text)["Service.ExecStart"][0].split()[0].lstrip("-@:+!")
    stand_in = tmp_path / exe.lstrip("/")
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, tmp_path / "etc/systemd/system/vaultd.service")
    return tmp_path


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_COLORS="0", LC_ALL="C")
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60, env=env)


def test_verify_passes_without_warnings(root: Path) -> None:
    done = analyze("verify", f"--root={root}", "vaultd.service")
    assert done.returncode == 0, done.stderr
    # verify reports unknown keys and bad values as warnings with exit status 0: none allowed
    assert done.stderr.strip() == "", done.stderr


def test_verify_catches_a_misspelt_directive(root: Path) -> None:
    unit = root / "etc/systemd/system/vaultd.service"
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    done = analyze("verify", f"--root={root}", "vaultd.service")
    assert "Unknown key 'NoNewPrivilege'" in done.stderr


def test_exposure_is_low(root: Path) -> None:
    done = analyze("security", "--offline=yes", f"--root={root}",
                   f"--threshold={int(MAX_EXPOSURE * 10)}", "vaultd.service")
    m = re.search(r"Overall exposure level for vaultd.service: ([0-9.]+)", done.stdout)
    assert m, done.stdout + done.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, done.stdout
    assert done.returncode == 0, done.stdout[-2000:]


def test_hardening_directives() -> None:
    d = directives(UNIT.read_text())
    expect = {
        "Service.DynamicUser": "yes", "Service.User": "vaultd", "Service.ProtectSystem": "strict",
        "Service.NoNewPrivileges": "yes", "Service.ReadWritePaths": "/var/lib/vaultd",
        "Service.Restart": "on-failure", "Service.PrivateTmp": "yes", "Service.ProtectHome": "yes",
        "Service.CapabilityBoundingSet": "", "Service.MemoryDenyWriteExecute": "yes",
        "Service.StateDirectory": "vaultd", "Service.UMask": "0077",
    }
    for key, value in expect.items():
        assert value in d.get(key, []), key
    assert int(d["Service.LimitNOFILE"][0]) >= 65536
    assert "@system-service" in d["Service.SystemCallFilter"]
    # the data folder handed to the daemon is the writable one
    assert "--data-dir /var/lib/vaultd" in d["Service.ExecStart"][0]
    # secrets never on the command line
    assert not re.search(r"passphrase|pin", d["Service.ExecStart"][0], re.IGNORECASE)
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(UNIT.read_text())
    assert cp["Install"]["WantedBy"] == "multi-user.target"
