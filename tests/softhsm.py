"""A real SoftHSM2 token for tests, in a temporary folder: ``from softhsm import make_token``.

The token lives under its own SOFTHSM2_CONF (no global state is touched); the caller puts
``SOFTHSM2_CONF`` in the environment of whatever loads the module (this process or a daemon).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MODULES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
]


def softhsm_module() -> str:
    """The SoftHSM2 PKCS#11 module (``$VAULTD_PKCS11_MODULE`` first, then Debian's places)."""
    env = os.environ.get("VAULTD_PKCS11_MODULE")
    for m in ([env] if env else []) + MODULES:
        if m and Path(m).exists():
            return m
    raise FileNotFoundError("SoftHSM2 module not found (install softhsm2 or set VAULTD_PKCS11_MODULE)")


def make_token(folder: Path, label: str, pin: str = "1234", so_pin: str = "5678") -> Path:
    """Initialise a token ``label`` whose files live in ``folder``; returns its SOFTHSM2_CONF file."""
    tokdir = folder / "tokens"
    tokdir.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokdir}\nobjectstore.backend = file\nlog.level = ERROR\n")
    util = shutil.which("softhsm2-util")
    assert util, "softhsm2-util is required (Debian package softhsm2)"
    subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
                   check=True, capture_output=True, env=dict(os.environ, SOFTHSM2_CONF=str(conf)))
    return conf
