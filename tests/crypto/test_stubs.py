"""The extension's hand-kept stub matches the compiled module, and vaultd.crypto type-checks."""

from __future__ import annotations

import subprocess
import sys

from .vectors import REPO


def test_stubtest() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "vaultd._vaultcore"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_crypto_module_is_strictly_typed() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "vaultd/crypto.py", "vaultd/_vaultcore.pyi"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_only_crypto_imports_the_extension() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "vaultd").rglob("*.py")
        if p.name != "crypto.py" and "_vaultcore" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
