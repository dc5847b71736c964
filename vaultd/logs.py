"""Structured JSON logs: one line per event, on stderr (journald keeps it under systemd).

``setup_logging()`` installs a JSON formatter on the root logger. Every record becomes one JSON
object with ``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``event`` (the message) and the fields
passed in ``extra=``. ``log_request()`` writes the one line per RPC the transport's logging
interceptor emits: identity, method, vault, status, duration.

What is never logged: key material and document content. The formatter enforces it rather than
trusting every caller: a field whose name looks secret (key, secret, token, password, pin,
passphrase, ...) is replaced by ``"[redacted]"``, and bytes values are replaced by their length
(``"<32 bytes>"``), so no raw key, nonce, digest-as-bytes or chunk can reach a log line. Strings
are cut at 1 KiB so one bad input cannot flood the log.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import sys
from typing import IO, Any

__all__ = ["JsonFormatter", "setup_logging", "log_request", "REQUEST_LOGGER"]

REQUEST_LOGGER = "vaultd.request"

_SECRET_NAME = re.compile(
    r"(^|_)(key|keys|secret|token|password|passwd|passphrase|pin|puk|kek|dek|seed|private|"
    r"plaintext|content|data|payload|chunk|authorization|cookie)(_|$)",
    re.IGNORECASE,
)
# Field names that look like the pattern above but carry no secret.
_ALLOWED_NAMES = frozenset({"key_version", "kek_version", "data_dir", "content_type"})
_MAX_STR = 1024

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _clean(name: str, value: Any, depth: int = 0) -> Any:
    if name not in _ALLOWED_NAMES and _SECRET_NAME.search(name):
        return "[redacted]"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return value if len(value) <= _MAX_STR else value[:_MAX_STR] + "...[cut]"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth < 3 and isinstance(value, dict):
        return {str(k): _clean(str(k), v, depth + 1) for k, v in list(value.items())[:64]}
    if depth < 3 and isinstance(value, (list, tuple)):
        return [_clean(name, v, depth + 1) for v in list(value)[:64]]
    return _clean(name, str(value), depth + 1)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets redacted, bytes reduced to their length."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _clean("event", record.getMessage()),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRS and not name.startswith("_") and name not in out:
                out[name] = _clean(name, value)
        if record.exc_info and record.exc_info[0] is not None:
            # the exception type and message only: a traceback may quote local values
            exc = record.exc_info[1]
            out["error"] = _clean("error", f"{record.exc_info[0].__name__}: {exc}")
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)


def setup_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record of the process, as JSON lines, to ``stream`` (stderr by default).

    Replaces the handlers of the root logger (so calling it twice does not double lines) and
    returns the handler it installed.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler


def _identity_text(identity: Any) -> str | None:
    if identity is None:
        return None
    kind = getattr(identity, "kind", None)
    name = getattr(identity, "name", None)
    if kind is not None and name is not None:
        kiosk = getattr(identity, "kiosk", None)
        return f"{kind}:{name}" + (f"@{kiosk}" if kiosk else "")
    return str(identity)


def log_request(
    identity: Any,
    method: str,
    vault: str | None,
    status: str,
    duration: float,
    *,
    request_id: str | None = None,
    peer: str | None = None,
    logger: logging.Logger | None = None,
    **fields: Any,
) -> None:
    """Log one finished request: who (``Identity`` or text), which method, on which vault,
    with which gRPC status name, in how many seconds. ``fields`` adds safe extras (object
    name, version, sizes); names that look secret are redacted by the formatter anyway.
    """
    lg = logger or logging.getLogger(REQUEST_LOGGER)
    level = logging.INFO
    if status in ("INTERNAL", "UNKNOWN", "DATA_LOSS"):
        level = logging.ERROR
    elif status not in ("OK", "NOT_FOUND", "CANCELLED"):
        level = logging.WARNING
    extra = {
        "identity": _identity_text(identity),
        "method": method,
        "vault": vault,
        "status": status,
        "duration_seconds": round(float(duration), 6),
    }
    if request_id is not None:
        extra["request_id"] = request_id
    if peer is not None:
        extra["peer"] = peer
    for k, v in fields.items():
        if k in _RECORD_ATTRS:  # ``name``, ``msg``... belong to the record: keep them apart
            k = "object_name" if k == "name" else f"field_{k}"
        if k not in extra:
            extra[k] = v
    lg.log(level, "request", extra=extra)
