"""`vaultd serve` writes one JSON line per request to stderr (identity, method, vault, status,
duration), and never document content or key material, checked on the real daemon process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from servers import new_vault_id
from vaultd.client import VaultClient
from vaultd.errors import NotFound, PermissionDenied

ROOT = Path(__file__).resolve().parents[2]


def test_one_json_line_per_request_on_stderr(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultd.cli.daemon", "serve", "--dev", "--data-dir", str(tmp_path),
         "--listen", "127.0.0.1:0", "--metrics-listen", "", "--log-level", "info"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        address = None
        deadline = time.monotonic() + 30
        while address is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                assert proc.poll() is None, "".join(log)
                continue
            if line.startswith("vaultd: serving on "):
                address = line.split()[-1]
        assert address is not None, "".join(log)

        secret_doc = b"CONFIDENTIAL-permit-body-" + os.urandom(8).hex().encode()
        vault = new_vault_id()
        with VaultClient.for_dev(address, tmp_path, "permits") as c:
            c.create_vault(vault)
            c.deposit(vault, "permit.pdf", secret_doc)
            assert c.read_bytes(vault, "permit.pdf") == secret_doc
            with pytest.raises(NotFound):
                c.stat(vault, "missing.pdf")
        with VaultClient.for_dev(address, tmp_path, "op-admin") as other:
            with pytest.raises(PermissionDenied):
                other.read_bytes(vault, "permit.pdf")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    time.sleep(0.2)  # the pump drains the pipe
    text = "".join(log)

    records: list[dict[str, Any]] = []
    for line in log:
        if line.startswith("vaultd: "):  # the one human line: where it serves
            continue
        records.append(json.loads(line))  # every other line is one JSON object
    requests = [r for r in records if r.get("event") == "request"]
    by_method = {(r["method"].rsplit("/", 1)[-1], r["status"]): r for r in requests}
    for method, status in (("CreateVault", "OK"), ("DepositSmall", "OK"), ("Read", "OK"),
                           ("Stat", "NOT_FOUND"), ("Read", "PERMISSION_DENIED")):
        r = by_method.get((method, status))
        assert r is not None, (method, status, requests)
        assert r["vault"] == vault and r["logger"] == "vaultd.request"
        assert isinstance(r["duration_seconds"], float) and 0 <= r["duration_seconds"] < 30
        assert r["ts"].endswith("Z")
    assert by_method[("DepositSmall", "OK")]["identity"].endswith("permits")
    assert by_method[("Read", "PERMISSION_DENIED")]["identity"] == "operator:admin"
    assert by_method[("Read", "PERMISSION_DENIED")]["level"] == "warning"
    # exactly one line per call: 5 calls of the clients above (plus none from elsewhere)
    assert len([r for r in requests if r["vault"] == vault]) == 5, requests
    assert any(r.get("event") == "vaultd serving" for r in records)
    assert any(r.get("event") == "vaultd stopped" for r in records)

    # never content nor keys: the document, the keyring's and journal key's secrets
    assert secret_doc.decode() not in text
    keyring = json.loads((tmp_path / "keyring.json").read_text())
    for value in _strings(keyring):
        if len(value) >= 16:
            assert value not in text
    journal_key = (tmp_path / "journal" / "journal.key").read_text()
    body = "".join(journal_key.strip().splitlines()[1:-1])
    assert body and body not in text and body[:24] not in text
    assert (tmp_path / "session.key").read_bytes().hex() not in text


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []
