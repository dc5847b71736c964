"""The layering of ARCHITECTURE.md, enforced: import-linter contracts in .importlinter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" not in proc.stdout.lower().replace("0 broken", ""), proc.stdout


def test_only_crypto_imports_the_rust_extension() -> None:
    """import-linter cannot see into a compiled module, so this rule is checked on the source text."""
    offenders = []
    for path in (ROOT / "vaultd").rglob("*.py"):
        if path.name == "crypto.py" and path.parent.name == "vaultd":
            continue
        text = path.read_text(encoding="utf-8")
        if "_vaultcore" in text and ("import _vaultcore" in text or "vaultd._vaultcore" in text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_package_is_mypy_strict_clean() -> None:
    """pyproject's [tool.mypy] (strict, generated code excluded) over the whole package."""
    proc = subprocess.run([sys.executable, "-m", "mypy", "vaultd"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
