"""The real daemon as the benchmarks run it: ``vaultd serve --dev`` in a child process on an ephemeral
loopback port (mutual TLS, durable commits), with what they measure of it: CPU seconds and anonymous
RSS read from /proc, and optionally the peak anonymous RSS sampled every 20 ms.

Scripts import it after putting this folder on ``sys.path`` (``sys.path.insert(0, str(BENCH))``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Daemon:
    def __init__(self, data_dir: Path, *, src: Path = REPO, sample_peak: bool = False,
                 stop_timeout: float = 120.0, program: list[str] | None = None) -> None:
        """Start ``vaultd serve`` from the package in ``src`` (another checkout, for A/B runs);
        ``program`` replaces ``-m vaultd.cli.daemon`` (a script that wraps its ``main``)."""
        self.data_dir = data_dir
        self.stop_timeout = stop_timeout
        self.proc = subprocess.Popen(
            [sys.executable, *(program or ["-m", "vaultd.cli.daemon"]), "serve", "--dev", "--data-dir", str(data_dir),
             "--listen", "127.0.0.1:0", "--metrics-listen", "", "--log-level", "warning"],
            cwd=src, env=dict(os.environ, PYTHONPATH=str(src)), stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            m = re.search(r"serving on (\S+)", line)
            if m:
                self.address = m.group(1)
                break
        else:
            raise RuntimeError("vaultd did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        self.peak_anon = 0
        self._stop = threading.Event()
        if sample_peak:
            threading.Thread(target=self._sample, daemon=True).start()

    def anon_rss(self) -> int:
        """The daemon's anonymous RSS in bytes (LMDB's file-backed map pages are not counted)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_anon = max(self.peak_anon, self.anon_rss())

    def reset_peak(self) -> None:
        self.peak_anon = self.anon_rss()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the daemon so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu(self) -> dict[str, tuple[float, float]]:
        """User and system CPU seconds of each of the daemon's threads so far, by thread id."""
        out = {}
        tick = os.sysconf("SC_CLK_TCK")
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # the thread ended meanwhile
                continue
            out[tid] = (int(parts[11]) / tick, int(parts[12]) / tick)
        return out

    def thread_names(self) -> dict[str, str]:
        """The Python name of each thread (by thread id), from ``py-spy dump`` (Python 3.11 does not name
        its threads for the OS); numbered names of a pool (``grpc_12``) are folded into one (``grpc_*``).
        Empty when py-spy is not installed."""
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            return {}
        out = subprocess.run([str(spy), "dump", "--pid", str(self.proc.pid), "--nonblocking"],
                             capture_output=True, text=True, timeout=60).stdout
        names = {}
        for line in out.splitlines():
            m = re.match(r'Thread (\S+) \(.*?\): "([^"]+)"', line)
            if m:
                tid = m.group(1)
                names[str(int(tid, 16)) if tid.startswith("0x") else tid] = re.sub(r"_\d+$", "_*", m.group(2))
        return names

    def stop(self) -> None:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(self.stop_timeout)
