"""One loader for the Merkle test vectors (<repo>/../shared/vectors/merkle or $VAULTD_VECTORS/merkle)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def vectors_dir() -> Path:
    root = Path(os.environ.get("VAULTD_VECTORS", REPO.parent / "shared" / "vectors"))
    return root / "merkle"


def b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def probes(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """All probe files of ``kind`` ("inclusion" or "consistency"), as (relative name, content)."""
    base = vectors_dir() / kind
    files = sorted(base.rglob("*.json"))
    if not files:
        raise FileNotFoundError(f"no {kind} vectors under {base}")
    return [(str(f.relative_to(base)), json.loads(f.read_text())) for f in files]


def reference_tree() -> dict[str, Any]:
    return json.loads((vectors_dir() / "rfc6962_reference_tree.json").read_text())
