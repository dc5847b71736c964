"""The daemon with its master key in a real SoftHSM2 token (pkcs11 provider), end to end over gRPC."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon_process import DaemonProcess

MODULES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
]


def softhsm_module() -> str:
    env = os.environ.get("VAULTD_PKCS11_MODULE")
    for m in ([env] if env else []) + MODULES:
        if m and Path(m).exists():
            return m
    raise FileNotFoundError("SoftHSM2 module not found (install softhsm2 or set VAULTD_PKCS11_MODULE)")


def test_pkcs11_master_key(tmp_path: Path) -> None:
    tokdir = tmp_path / "tokens"
    tokdir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokdir}\nobjectstore.backend = file\nlog.level = ERROR\n")
    util = shutil.which("softhsm2-util")
    assert util, "softhsm2-util is required (Debian package softhsm2)"
    env = {"SOFTHSM2_CONF": str(conf), "VAULTD_PKCS11_MODULE": softhsm_module(), "VAULTD_PKCS11_TOKEN": "vaultd-e2e",
           "VAULTD_PKCS11_PIN": "1234"}
    subprocess.run([util, "--init-token", "--free", "--label", "vaultd-e2e", "--pin", "1234", "--so-pin", "5678"],
                   check=True, capture_output=True, env=dict(os.environ, **env))
    data = tmp_path / "data"
    d = DaemonProcess(data, "--key-provider", "pkcs11", env=env)
    body = os.urandom(300_000)
    try:
        with d.client() as c:
            c.create_vault("citizen-hsm")
            c.deposit("citizen-hsm", "doc", body)
            with d.client("op-admin") as admin:
                v = admin.rotate_keys()
            assert v >= 2
            assert c.read_bytes("citizen-hsm", "doc") == body
            assert c.check("citizen-hsm").ok
    finally:
        assert d.terminate() == 0
    assert not (data / "keyring.json").exists(), "the pkcs11 provider must not make a keyring file"
    again = DaemonProcess(data, "--key-provider", "pkcs11", env=env)
    try:
        with again.client() as c:
            assert c.read_bytes("citizen-hsm", "doc") == body
    finally:
        again.terminate()
    # without the token's PIN the daemon refuses to start
    bad = dict(env, VAULTD_PKCS11_PIN="")
    with pytest.raises(AssertionError, match="exited"):
        DaemonProcess(data, "--key-provider", "pkcs11", env=bad)
