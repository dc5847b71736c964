"""vaultd.logs: one JSON line per event; secrets and content never reach the log."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from vaultd.logs import log_request, setup_logging
from vaultd.types import Identity


@pytest.fixture()
def out() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("DEBUG", buf)
    yield buf
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def lines(buf: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_request_line(out: io.StringIO) -> None:
    log_request(Identity("service", "permits"), "/vaultd.v1.Vault/Deposit", "citizen-ana", "OK",
                0.0123456789, request_id="r-1", name="permit.pdf", size=1234)
    log_request(Identity("citizen", "ana", kiosk="k7"), "/vaultd.v1.Vault/Read", "citizen-ana",
                "PERMISSION_DENIED", 0.002)
    log_request("operator:bob", "/vaultd.v1.Admin/Check", None, "DATA_LOSS", 1.5)
    a, b, c = lines(out)
    assert a["event"] == "request" and a["level"] == "info" and a["logger"] == "vaultd.request"
    assert a["identity"] == "service:permits" and a["vault"] == "citizen-ana"
    assert a["method"] == "/vaultd.v1.Vault/Deposit" and a["status"] == "OK"
    assert a["duration_seconds"] == 0.012346 and a["request_id"] == "r-1"
    assert a["object_name"] == "permit.pdf" and a["size"] == 1234
    assert a["ts"].endswith("Z")
    assert b["identity"] == "citizen:ana@k7" and b["level"] == "warning"
    assert c["level"] == "error" and c["vault"] is None


def test_secrets_and_content_never_logged(out: io.StringIO) -> None:
    secret = b"\x13\x37" * 16
    logging.getLogger("vaultd.keys").info(
        "unwrapped", extra={"data_key": secret, "passphrase": "hunter2", "pin": "123456",
                            "session_token": "tok-abc", "key_version": 3, "digest": secret,
                            "nested": {"private_key": "pem"}, "content_type": "application/pdf"})
    log_request(Identity("service", "permits"), "/m", "v", "OK", 0.1, data=b"document body",
                token="t0k")
    text = out.getvalue()
    for leak in ("hunter2", "123456", "tok-abc", "t0k", "document body", "1337", "pem\""):
        assert leak not in text, leak
    first, second = lines(out)
    assert first["data_key"] == "[redacted]" and first["passphrase"] == "[redacted]"
    assert first["key_version"] == 3 and first["content_type"] == "application/pdf"
    assert first["digest"] == "<32 bytes>"
    assert first["nested"] == {"private_key": "[redacted]"}
    assert second["data"] == "[redacted]" and second["token"] == "[redacted]"


def test_one_line_per_event_and_bounded(out: io.StringIO) -> None:
    logging.getLogger("x").warning("multi\nline %s", "y" * 5000)
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("x").exception("failed")
    raw = out.getvalue().splitlines()
    assert len(raw) == 2
    first, second = (json.loads(r) for r in raw)
    assert len(first["event"]) < 1100 and first["event"].endswith("[cut]")
    assert second["error"] == "ValueError: bad\nthing" and "Traceback" not in raw[1]
