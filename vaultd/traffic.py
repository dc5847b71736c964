"""How busy the daemon is with calls, for background work that should give way to them.

The transport counts every vaultd call into one :class:`Traffic` (the authentication interceptor,
which sees each call begin and end); the scheduled scrub asks it whether the daemon is serving
calls and, while it is, works only a small share of the time. It imports nothing of vaultd.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Traffic"]


class Traffic:
    """Calls in flight, and when the last one ended (monotonic clock)."""

    __slots__ = ("_lock", "_in_flight", "_last_end")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_end = float("-inf")

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_end = time.monotonic()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def busy(self, quiet: float) -> bool:
        """True while a call is in flight or one ended less than ``quiet`` seconds ago."""
        with self._lock:
            return self._in_flight > 0 or time.monotonic() - self._last_end < quiet
