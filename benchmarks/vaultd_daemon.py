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

    def stop(self) -> None:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(self.stop_timeout)
