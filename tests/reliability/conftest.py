"""Fixtures of the reliability tests: how long to run. ``--soak`` (registered in tests/conftest.py,
so it works from any folder) runs the crash loop and the fuzzers for longer; so do the environment
variables ``VAULTD_SOAK=1``, ``VAULTD_KILL_CYCLES=N``, ``VAULTD_FUZZ_RUNS=N``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _soak(config: pytest.Config) -> bool:
    return bool(config.getoption("--soak", default=False)) or os.environ.get("VAULTD_SOAK") == "1"


def _number(config: pytest.Config, option: str, env: str, normal: int, long: int) -> int:
    n = config.getoption(option, default=None) or os.environ.get(env)
    if n:
        return int(n)
    return long if _soak(config) else normal


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    return _soak(request.config)


@pytest.fixture
def kill_cycles(request: pytest.FixtureRequest) -> int:
    return _number(request.config, "--kill-cycles", "VAULTD_KILL_CYCLES", 6, 200)


@pytest.fixture
def fuzz_runs(request: pytest.FixtureRequest) -> int:
    return _number(request.config, "--fuzz-runs", "VAULTD_FUZZ_RUNS", 3000, 200_000)
