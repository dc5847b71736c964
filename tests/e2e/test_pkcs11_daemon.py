"""The daemon with its master key in a real SoftHSM2 token (pkcs11 provider), end to end over gRPC."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon_process import DaemonProcess
from softhsm import make_token, softhsm_module

def test_pkcs11_master_key(tmp_path: Path) -> None:
    conf = make_token(tmp_path, "vaultd-e2e")
    env = {"SOFTHSM2_CONF": str(conf), "VAULTD_PKCS11_MODULE": softhsm_module(), "VAULTD_PKCS11_TOKEN": "vaultd-e2e",
           "VAULTD_PKCS11_PIN": "1234"}
    data = tmp_path / "data"
    d = DaemonProcess(data, "--key-provider", "pkcs11", env=env)
    body = os.urandom(300_000)
    try:
        with d.client() as c:
            c.create_vault("citizen-hsm")
            c.deposit("citizen-hsm", "doc", body)
            with d.client("op-admin") as admin:
                v = admin.rotate_keys()
                for old in range(1, v):  # the old key objects are destroyed in the token
                    admin.retire_key(old)
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
