"""Options of the reliability tests: ``--soak`` runs the crash loop and the fuzzers for longer.

The options are registered when pytest starts from this folder (``pytest tests/reliability --soak``);
from elsewhere the environment does the same: ``VAULTD_SOAK=1``, ``VAULTD_KILL_CYCLES=N``,
``VAULTD_FUZZ_RUNS=N``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vaultd reliability")
    group.addoption("--soak", action="store_true", default=False,
                    help="long runs: many more SIGKILL cycles, faults and fuzz executions")
    group.addoption("--kill-cycles", type=int, default=None,
                    help="SIGKILL cycles of the crash test (default 6, 200 with --soak)")
    group.addoption("--fuzz-runs", type=int, default=None,
                    help="executions per fuzz harness (default 3000, 200000 with --soak)")


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
