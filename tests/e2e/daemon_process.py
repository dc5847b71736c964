"""`vaultd serve --dev` as a child process on an ephemeral loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from vaultd.client import VaultClient

ROOT = Path(__file__).resolve().parents[2]


class DaemonProcess:
    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vaultd.cli.daemon", "serve", "--dev", "--data-dir", str(data_dir),
             "--listen", "127.0.0.1:0", "--metrics-listen", "", *extra],
            cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.address = self._wait_for("vaultd: serving on ").split()[-1]
        self.data_dir = data_dir

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def _wait_for(self, marker: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError("vaultd exited:\n" + "".join(self.log)) from None
                continue
            if marker in line:
                return line.strip()
        raise AssertionError(f"no {marker!r} from vaultd:\n" + "".join(self.log))

    def client(self, identity: str = "permits") -> VaultClient:
        return VaultClient.for_dev(self.address, self.data_dir, identity)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
