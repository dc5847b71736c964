"""The daemon tunes glibc's allocator at start (vaultd.cli.daemon.tune_allocator): large buffers come
from the heap and are reused instead of being fresh mappings, and an operator's own GLIBC_TUNABLES
malloc settings win. Each case runs in a child process so the test runner's allocator is untouched."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

# In the child: tune (or not), then malloc a 2 MiB block and report whether glibc mapped it on its
# own (mallinfo2's hblks counts blocks that are separate mappings).
CHILD = r"""
import ctypes, json, sys
from vaultd.cli.daemon import tune_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = tune_allocator() if sys.argv[1] == "tune" else {}
before = libc.mallinfo2().hblks
block = libc.malloc(2 << 20)
mapped = libc.mallinfo2().hblks - before
libc.free(block)
print(json.dumps({"applied": {str(k): v for k, v in applied.items()}, "mapped": mapped}))
"""


def run_child(mode: str, tunables: str | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_tuned_allocator_keeps_large_blocks_on_the_heap() -> None:
    from vaultd.cli.daemon import ALLOCATOR_SETTINGS, M_ARENA_MAX

    untuned = run_child("plain")
    assert untuned["mapped"] == 1, "glibc's default maps a 2 MiB block on its own"
    tuned = run_child("tune")
    applied = tuned["applied"]
    assert isinstance(applied, dict)
    assert {int(k): v for k, v in applied.items()} == {
        **ALLOCATOR_SETTINGS,
        M_ARENA_MAX: max(2, os.cpu_count() or 2),
    }
    assert tuned["mapped"] == 0, "after tuning, the 2 MiB block comes from the heap"


def test_operator_malloc_tunables_win() -> None:
    kept = run_child("tune", tunables="glibc.malloc.arena_max=4")
    assert kept["applied"] == {}
    assert kept["mapped"] == 1, "the operator's settings (here the default threshold) stay in force"
    # Tunables that are not malloc's do not stop the tuning.
    other = run_child("tune", tunables="glibc.pthread.rseq=0")
    assert other["applied"] != {}
    assert other["mapped"] == 0
