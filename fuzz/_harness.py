"""Shared start-up of the atheris harnesses in this folder.

``run(test_one_input, seeds)`` writes ``seeds`` into the first corpus folder given on the command
line when that folder is empty (so every run starts from valid inputs made by the real code), then
hands the remaining libFuzzer options (``-runs=N``, ``-max_total_time=S``, ``-seed=N``) to atheris.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def write_seeds(argv: list[str], seeds: Iterable[bytes]) -> None:
    dirs = [Path(a) for a in argv[1:] if not a.startswith("-")]
    if not dirs:
        return
    corpus = dirs[0]
    if corpus.is_file():  # replaying one input (a crash file): no seeds
        return
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for s in seeds:
        (corpus / hashlib.sha256(s).hexdigest()[:16]).write_bytes(s)


def run(test_one_input: Callable[[bytes], None], seeds: Iterable[bytes] = ()) -> None:
    write_seeds(sys.argv, seeds)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
