from __future__ import annotations

import gc
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@dataclass
class Token:
    module: str
    label: str
    pin: str
    conf: Path


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Token]:
    """A fresh SoftHSM2 token in a temporary folder (SOFTHSM2_CONF points at a temporary config)."""
    tokdir = tmp_path / "tokens"
    tokdir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokdir}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    util = shutil.which("softhsm2-util")
    assert util, "softhsm2-util is required (Debian package softhsm2)"
    subprocess.run(
        [util, "--init-token", "--free", "--label", "vaultd-test", "--pin", "1234", "--so-pin", "5678"],
        check=True,
        capture_output=True,
    )
    module = softhsm_module()
    # SoftHSM2 reads SOFTHSM2_CONF when initialised; python-pkcs11 keeps one instance per module
    # and initialises it again on next use once finalised. Finalise before (to read this config)
    # and after (so later tests read theirs).
    _finalize(module)
    yield Token(module, "vaultd-test", "1234", conf)
    gc.collect()
    _finalize(module)


def _finalize(module: str) -> None:
    import pkcs11

    lib = pkcs11._loaded.get(module)
    if lib is not None and lib.initialized:
        lib.finalize()
