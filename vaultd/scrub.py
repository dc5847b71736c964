"""The scheduled scrub: ``Check`` over every object version of every vault, at a bounded pace,
with its results in the metrics and in the journal.

A pass walks the vaults and, in each, every object version (a page of the listing at a time), and
checks each version on its own (every chunk opened: AEAD tag, chunk id, sizes, the document's
SHA-256). Checking per version keeps the pace even: after each one the scrubber sleeps as long as
needed to stay under ``bytes_per_second``. While the daemon serves calls (``traffic``: a call in
flight, or one ended less than ``quiet`` seconds ago) it also gives way to them: it works at most
``busy_share`` of the time, sleeping after each version for as long as that version took divided by
the share (less the version's own time). A pass over small objects is bound by the CPU, not by
bytes, and one running flat out next to the calls tripled their median latency: it held the
interpreter's lock 70% of the time the lock was held at all (py-spy ``--gil``). Giving way keeps the
calls' latency as it is without a scrub, and the pass takes longer under load
(``yielded_seconds``). Problems are counted, logged (vault, object, version and what, never
content) and reported; a version destroyed while the pass runs is skipped.

At the end of a pass: ``Metrics.scrub_finished`` (the time of the last clean pass, the problems of
the last pass), and ``on_pass(result)``, where the composition root journals one ``check`` leaf for
the whole pass (see :func:`journal_pass`). A pass that cannot finish (the store closed, the daemon
stopping) counts as failed.

The scrubber lists object versions from the store (short read transactions, a page at a time) and
checks each through ``Vaults.check`` with an operator identity, so the policy must grant it
``admin`` (``operator:*`` in the default policy). It imports nothing but the
leaves: the daemon hands it the ``Vaults`` object.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vaultd.errors import NotFound, VaultError
from vaultd.traffic import Traffic
from vaultd.types import Identity

__all__ = ["Scrubber", "ScrubResult", "journal_pass", "last_pass", "SCRUB_IDENTITY"]

log = logging.getLogger("vaultd.scrub")

SCRUB_IDENTITY = Identity("operator", "scrub")


@dataclass
class ScrubResult:
    started_at: float
    finished_at: float = 0.0
    vaults: int = 0
    objects: int = 0
    bytes: int = 0
    problems: list[Any] = field(default_factory=list)  # vaultd.types.Problem
    problems_omitted: int = 0  # found in versions with more problems than a check lists
    completed: bool = False
    worked_seconds: float = 0.0  # spent checking versions
    yielded_seconds: float = 0.0  # slept to give way to calls, beyond the bytes pace

    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.problems_omitted

    @property
    def clean(self) -> bool:
        return self.completed and not self.problem_count


class Scrubber:
    """Runs full passes every ``interval`` seconds in a background thread (``start``/``stop``),
    or one pass on demand (``run_once``)."""

    def __init__(
        self,
        vaults: Any,
        *,
        metrics: Any = None,
        interval: float = 86400.0,
        initial_delay: float = 600.0,
        bytes_per_second: float | None = 64 * 1024 * 1024,
        identity: Identity = SCRUB_IDENTITY,
        on_pass: Callable[[ScrubResult], None] | None = None,
        list_vaults: Callable[[], Iterable[str]] | None = None,
        page_size: int = 500,
        traffic: Traffic | None = None,
        busy_share: float = 0.02,
        quiet: float = 1.0,
    ) -> None:
        if interval <= 0 or initial_delay < 0:
            raise ValueError("scrub interval must be positive and the initial delay not negative")
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("scrub pace must be positive (or None for no limit)")
        if not 0 < busy_share <= 1 or quiet < 0:
            raise ValueError("the scrub's busy share must be in (0, 1] and its quiet time not negative")
        self.vaults = vaults
        self.metrics = metrics
        self.interval = interval
        self.initial_delay = initial_delay
        self.pace = bytes_per_second
        self.identity = identity
        self.on_pass = on_pass
        self._list_vaults = list_vaults or self._store_vaults
        self.page_size = page_size
        self.traffic = traffic
        self.busy_share = busy_share
        self.quiet = quiet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: ScrubResult | None = None

    # --- scheduling ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="vaultd-scrub", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        if self._stop.wait(self.initial_delay):
            return
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.run_once()
            except Exception:  # a bug must not end the schedule: the next pass runs as planned
                log.exception("scrub pass failed")
                if self.metrics is not None:
                    self.metrics.scrub_failed()
            if self._stop.wait(max(0.0, self.interval - (time.monotonic() - began))):
                return

    # --- one pass ---------------------------------------------------------------------------------
    def _store_vaults(self) -> Iterator[str]:
        """Every vault id, read a page at a time in short read transactions (a pass that begins by
        reading 10^5 vault ids at once holds the interpreter for that long, in one go)."""
        after: str | None = None
        while True:
            with self.vaults.store.read() as r:
                page = [v for v, _ in itertools.islice(r.iter_vaults(after=after), self.page_size)]
            if not page:
                return
            yield from page
            after = page[-1]

    def _versions(self, vault: str) -> Iterator[tuple[str, int]]:
        """Every (name, version) of ``vault``, read a page at a time in short read transactions
        (the listing use case wants the ``list`` verb, which operators do not hold)."""
        after: str | None = None
        while True:
            page: list[tuple[str, int]] = []
            with self.vaults.store.read() as r:
                for name, _ in r.iter_objects(vault, after=after):
                    page.extend((name, v) for v, _ in r.iter_versions(vault, name))
                    after = name
                    if len(page) >= self.page_size:
                        break
            if not page:
                return
            yield from page

    def run_once(self) -> ScrubResult:
        """One full pass over everything; returns its result (also kept in ``last``)."""
        res = ScrubResult(started_at=time.time())
        began = time.monotonic()
        log.info("scrub pass started", extra={"busy_share": self.busy_share if self.traffic else 1.0})
        try:
            for vault in self._list_vaults():
                if self._stop.is_set():
                    raise InterruptedError("the scrub was stopped")
                res.vaults += 1
                for name, version in self._versions(vault):
                    if self._stop.is_set():
                        raise InterruptedError("the scrub was stopped")
                    t0 = time.monotonic()
                    try:
                        report = self.vaults.check(self.identity, vault, name, version,
                                                   record_errors=False)
                    except NotFound:  # destroyed while the pass runs
                        continue
                    worked = time.monotonic() - t0
                    res.worked_seconds += worked
                    res.objects += 1
                    res.bytes += report.bytes
                    for p in report.problems:
                        res.problems.append(p)
                        log.error("scrub found a problem", extra={
                            "vault": p.vault, "object_name": p.name, "version": p.version,
                            "problem": p.what})
                        if self.metrics is not None:
                            self.metrics.integrity_error("scrub")
                    if report.problems_omitted:
                        res.problems_omitted += report.problems_omitted
                        log.error("scrub found more problems than it lists", extra={
                            "vault": vault, "object_name": name, "version": version,
                            "problems": report.problems_omitted})
                        if self.metrics is not None:
                            self.metrics.integrity_error("scrub", report.problems_omitted)
                    self._keep_pace(res, began, worked)
            res.completed = True
        except (VaultError, OSError, InterruptedError) as e:
            log.warning("scrub pass did not finish", extra={"error": f"{type(e).__name__}: {e}"})
            if self.metrics is not None:
                self.metrics.scrub_failed()
        except Exception:  # a bug: the pass counts as failed, and is journalled as such
            log.exception("scrub pass failed")
            if self.metrics is not None:
                self.metrics.scrub_failed()
        res.finished_at = time.time()
        if res.completed:
            if self.metrics is not None:
                self.metrics.scrub_finished(objects=res.objects, nbytes=res.bytes,
                                            problems=res.problem_count, at=res.finished_at)
            log.info("scrub pass done", extra={
                "vaults": res.vaults, "objects": res.objects, "bytes": res.bytes,
                "problems": res.problem_count,
                "duration_seconds": round(res.finished_at - res.started_at, 3),
                "worked_seconds": round(res.worked_seconds, 3),
                "yielded_seconds": round(res.yielded_seconds, 3)})
        self.last = res
        if self.on_pass is not None:
            try:
                self.on_pass(res)
            except Exception:
                log.exception("recording the scrub pass failed")
        return res

    def _keep_pace(self, res: ScrubResult, began: float, worked: float) -> None:
        """Sleep after a version that took ``worked`` seconds: to stay under the bytes pace, and
        while calls are being served, to work at most ``busy_share`` of the time."""
        wait = 0.0
        if self.pace is not None:
            wait = res.bytes / self.pace - (time.monotonic() - began)
        if self.traffic is not None and self.busy_share < 1 and self.traffic.busy(self.quiet):
            give_way = worked * (1 / self.busy_share - 1)
            if give_way > wait:
                res.yielded_seconds += give_way - max(wait, 0.0)
                wait = give_way
        if wait > 0:
            self._stop.wait(wait)


#: Counters of the store's ``stats`` record written with each pass's journal leaf, so a daemon
#: that starts again knows when the last clean pass ended without searching the journal.
STAT_LAST_CLEAN_NS = "scrub/last_clean_ns"
STAT_LAST_PROBLEMS = "scrub/last_problems"


def journal_pass(store: Any, leaf_factory: Callable[..., bytes],
                 identity: Identity = SCRUB_IDENTITY) -> Callable[[ScrubResult], None]:
    """``on_pass`` that journals one ``check`` leaf per pass in the store's writer transaction
    (outcome ok, or failed when it found problems or did not finish; counts as extra fields).
    In the same transaction a completed pass sets the ``scrub/*`` counters of the store's stats
    record (when the store keeps one): the time of the last clean pass, the problems of the last."""

    def on_pass(res: ScrubResult) -> None:
        finished_ns = int(res.finished_at * 1e9)
        leaf = leaf_factory(
            "check", actor=identity, vault="", name="", version=0,
            outcome="ok" if res.clean else "failed", time_ns=finished_ns,
            scope="all", vaults=res.vaults, objects=res.objects, bytes=res.bytes,
            problems=res.problem_count, completed=int(res.completed))

        def unit(t: Any) -> None:
            t.journal(leaf)
            put = getattr(t, "put_stat", None)
            if put is not None and res.completed:
                put(STAT_LAST_PROBLEMS, res.problem_count)
                if res.clean:
                    put(STAT_LAST_CLEAN_NS, finished_ns)

        store.write(unit)

    return on_pass


def last_pass(store: Any) -> tuple[float | None, int | None]:
    """(unix time of the last clean pass, problems of the last completed pass) as recorded by
    :func:`journal_pass`, or None for what was never recorded."""
    with store.read() as r:
        get = getattr(r, "get_stat", None)
        if get is None:
            return None, None
        clean_ns = get(STAT_LAST_CLEAN_NS)
        problems = get(STAT_LAST_PROBLEMS)
    return (None if clean_ns is None else clean_ns / 1e9), problems
