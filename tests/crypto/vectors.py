"""The one loader of known-answer vectors for the crypto tests.

Vectors live outside the repository: in the folder named by the environment variable
``VAULTD_VECTORS``, else in ``<repo>/../shared/vectors``. A missing folder fails the test (it is
never skipped): the suite must not pass without having checked the vectors.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def vectors_dir() -> Path:
    env = os.environ.get("VAULTD_VECTORS")
    d = Path(env) if env else REPO.parent / "shared" / "vectors"
    if not d.is_dir():
        pytest.fail(f"test vectors not found in {d} (set VAULTD_VECTORS)")
    return d


def load_json(relative: str) -> Any:
    """Parses one vector file, e.g. ``load_json("wycheproof/aes_gcm_test.json")``."""
    path = vectors_dir() / relative
    if not path.is_file():
        pytest.fail(f"vector file missing: {path}")
    with path.open("rb") as f:
        return json.load(f)


def json_files(relative_dir: str) -> list[tuple[str, Any]]:
    """Every ``*.json`` below a vector folder, as (path relative to the folder, parsed content), sorted."""
    base = vectors_dir() / relative_dir
    files = sorted(base.rglob("*.json"))
    if not files:
        pytest.fail(f"no vector files in {base}")
    return [(str(p.relative_to(base)), json.loads(p.read_bytes())) for p in files]


def wycheproof(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, test) pairs of a Wycheproof file; ``name`` without ``.json``."""
    doc = load_json(f"wycheproof/{name}.json")
    count = 0
    for group in doc["testGroups"]:
        for test in group["tests"]:
            count += 1
            yield group, test
    assert count == doc["numberOfTests"], f"{name}: read {count} tests, header says {doc['numberOfTests']}"


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def b64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def report(title: str, **counts: int) -> None:
    """Prints the counts a vector test checked (visible with ``pytest -s`` or in the ``-rA`` report)."""
    print(f"{title}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
