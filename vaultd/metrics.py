"""The Prometheus metrics of vaultd.

A leaf every layer may import: it imports nothing from the project. Each :class:`Metrics` owns its
own :class:`prometheus_client.CollectorRegistry`, so several daemons (or tests) can live in one
process without sharing counters. The composition root builds one ``Metrics`` per daemon and hands
it to the layers that record something; they call the small methods below and never touch
prometheus-client themselves.

Naming follows the Prometheus conventions: the ``vaultd_`` prefix, base units (``_seconds``,
``_bytes``), counters ending in ``_total``, gRPC labels ``grpc_service``, ``grpc_method``,
``grpc_code`` and ``grpc_type``. No label ever carries a vault id, a user, an object name or a
digest: label values come from small fixed sets (method names, status codes, operation kinds,
certificate roles, key versions).

Numbers that live in the store (object counts, bytes, LMDB map use, ...) are not pushed: the store
registers a callback with :meth:`Metrics.set_storage_source` and they are read at scrape time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "Metrics",
    "MetricsServer",
    "STORAGE_GAUGES",
    "lmdb_storage_source",
    "GRPC_CODES",
    "LATENCY_BUCKETS",
    "parse_listen",
    "start_metrics_server",
]

_log = logging.getLogger(__name__)

#: Every gRPC status code name, the only values ``grpc_code`` takes.
GRPC_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)

#: Latency buckets of gRPC handling (seconds): from a cached stat to a multi-GiB stream. The
#: latency SLO of the alert rules (250 ms) is one of the bounds, so its ratio is exact.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_CRYPTO_ITEM_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_CRYPTO_BYTE_BUCKETS = tuple(float(4**i * 1024) for i in range(0, 9))  # 1 KiB .. 64 GiB
_CRYPTO_TIME_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)

#: Keys the storage source may return, with the gauge each one fills and its help text.
STORAGE_GAUGES: dict[str, tuple[str, str]] = {
    "vaults": ("vaultd_store_vaults", "Vaults in the store."),
    "objects": ("vaultd_store_objects", "Live objects (names with at least one version)."),
    "versions": ("vaultd_store_object_versions", "Live object versions."),
    "logical_bytes": (
        "vaultd_store_logical_bytes",
        "Bytes of all live object versions as deposited (before deduplication).",
    ),
    "stored_bytes": (
        "vaultd_store_stored_bytes",
        "Bytes of sealed chunks kept (after deduplication, with AEAD overhead).",
    ),
    "chunks": ("vaultd_store_chunks", "Sealed chunks kept."),
    "map_size_bytes": ("vaultd_lmdb_map_size_bytes", "Size of the LMDB memory map."),
    "map_used_bytes": ("vaultd_lmdb_map_used_bytes", "Bytes of the LMDB map in use (pages * size)."),
    "journal_leaves": ("vaultd_journal_leaves", "Leaves in the journal (its tree size)."),
    "kek_current_version": (
        "vaultd_key_kek_current_version", "Version of the master key (KEK) new wraps use."),
    "kek_versions_in_use": (
        "vaultd_key_kek_versions_in_use",
        "Distinct master key (KEK) versions still wrapping some vault key.",
    ),
    "kek_current_since": (
        "vaultd_key_kek_current_since_timestamp_seconds",
        "Unix time the current master key (KEK) version came into use.",
    ),
    "ready": ("vaultd_ready", "1 when the store is open and the keys are unlocked, else 0."),
}


class _SourceCollector(Collector):
    """Reads the storage source at scrape time and turns its numbers into gauges."""

    def __init__(self, owner: Metrics) -> None:
        self._owner = owner

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, doc) for name, doc in STORAGE_GAUGES.values()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self._owner._refresh_certificates()
        source = self._owner._storage_source
        if source is None:
            return
        started = time.perf_counter()
        try:
            values = dict(source())
        except Exception:  # a failing store must not break the scrape of everything else
            _log.exception("storage metrics source failed")
            self._owner.source_errors.inc()
            return
        finally:
            self._owner.source_seconds.observe(time.perf_counter() - started)
        for key, value in values.items():
            spec = STORAGE_GAUGES.get(key)
            if spec is None:
                _log.warning("storage metrics source returned an unknown key %r", key)
                self._owner.source_errors.inc()
                continue
            name, doc = spec
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], float(value))
            yield family


class Metrics:
    """All metrics of one vaultd daemon, in a registry of their own."""

    def __init__(self, *, process: bool = True) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        Info("vaultd_build", "Version of the running vaultd.", registry=r).info(
            {"version": _version()}
        )

        # --- gRPC RED, recorded by the transport's MetricsInterceptor -------------------------
        rpc = ["grpc_service", "grpc_method", "grpc_type"]
        self.grpc_started = Counter(
            "vaultd_grpc_server_started_total", "RPCs started on the server.", rpc, registry=r)
        self.grpc_handled = Counter(
            "vaultd_grpc_server_handled_total",
            "RPCs completed on the server, whatever their status.",
            [*rpc, "grpc_code"], registry=r)
        self.grpc_seconds = Histogram(
            "vaultd_grpc_server_handling_seconds",
            "Time from the start of an RPC to its last response message or its status.",
            rpc, buckets=LATENCY_BUCKETS, registry=r)
        self.grpc_in_flight = Gauge(
            "vaultd_grpc_server_in_flight",
            "RPCs (unary calls and streams) being handled now.",
            ["grpc_service", "grpc_method"], registry=r)
        self.grpc_msg_received = Counter(
            "vaultd_grpc_server_msg_received_total", "Request messages received.", rpc,
            registry=r)
        self.grpc_msg_sent = Counter(
            "vaultd_grpc_server_msg_sent_total", "Response messages sent.", rpc, registry=r)
        self.grpc_bytes_received = Counter(
            "vaultd_grpc_server_received_bytes_total",
            "Bytes of serialized request messages received.",
            ["grpc_service", "grpc_method"], registry=r)
        self.grpc_bytes_sent = Counter(
            "vaultd_grpc_server_sent_bytes_total",
            "Bytes of serialized response messages sent.",
            ["grpc_service", "grpc_method"], registry=r)

        # --- storage, read at scrape time from the store ----------------------------------
        self._storage_source: Callable[[], Mapping[str, float]] | None = None
        # registered before its error counter, so a scrape reports its own failures
        r.register(_SourceCollector(self))
        self.source_errors = Counter(
            "vaultd_metrics_source_errors_total",
            "Scrapes where the storage source failed or returned an unknown key.", registry=r)
        self.source_seconds = Histogram(
            "vaultd_metrics_source_seconds", "Time the storage source took at scrape.",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0), registry=r)

        # --- the writer (group commit) --------------------------------------------------------
        self.writer_batch = Histogram(
            "vaultd_writer_batch_operations",
            "Units of work committed together in one LMDB write transaction.",
            buckets=_BATCH_BUCKETS, registry=r)
        self.writer_commit_seconds = Histogram(
            "vaultd_writer_commit_seconds",
            "Time to run and commit one write transaction (fsync included).",
            buckets=_COMMIT_BUCKETS, registry=r)
        self.writer_transactions = Counter(
            "vaultd_writer_transactions_total",
            "LMDB write transactions, by outcome (committed, aborted).", ["outcome"], registry=r)
        self.writer_queue = Gauge(
            "vaultd_writer_queue_operations", "Units of work waiting for the writer.", registry=r)
        self._committed = self.writer_transactions.labels("committed")
        self._aborted = self.writer_transactions.labels("aborted")

        # --- the Rust core ------------------------------------------------------------------
        self.crypto_items = Histogram(
            "vaultd_crypto_batch_items", "Items (chunks, signatures, leaves) per Rust call.",
            ["operation"], buckets=_CRYPTO_ITEM_BUCKETS, registry=r)
        self.crypto_bytes = Histogram(
            "vaultd_crypto_batch_bytes", "Bytes handed to the Rust core per call.",
            ["operation"], buckets=_CRYPTO_BYTE_BUCKETS, registry=r)
        self.crypto_seconds = Histogram(
            "vaultd_crypto_batch_seconds", "Time of one Rust call.", ["operation"],
            buckets=_CRYPTO_TIME_BUCKETS, registry=r)

        # --- journal ------------------------------------------------------------------------
        self.journal_checkpoint_ts = Gauge(
            "vaultd_journal_last_checkpoint_timestamp_seconds",
            "Unix time of the last signed checkpoint (tree head).", registry=r)
        self.journal_checkpoints = Counter(
            "vaultd_journal_checkpoints_signed_total", "Checkpoints signed.", registry=r)
        self.journal_appended = Counter(
            "vaultd_journal_leaves_appended_total", "Leaves appended to the journal.",
            registry=r)
        self.journal_proofs = Counter(
            "vaultd_journal_proofs_served_total", "Proofs served, by kind (inclusion, consistency).",
            ["kind"], registry=r)
        for kind in ("inclusion", "consistency"):
            self.journal_proofs.labels(kind)

        # --- scrub and integrity ------------------------------------------------------------------
        self.scrub_last_success_ts = Gauge(
            "vaultd_scrub_last_success_timestamp_seconds",
            "Unix time a full scrub (Check over every vault) last completed.", registry=r)
        self.scrub_last_problems = Gauge(
            "vaultd_scrub_last_problems",
            "Problems the last completed full scrub found (0 when all was sound).", registry=r)
        self.scrub_runs = Counter(
            "vaultd_scrub_runs_total", "Full scrubs run, by outcome (completed, failed).",
            ["outcome"], registry=r)
        for outcome in ("completed", "failed"):
            self.scrub_runs.labels(outcome)
        self.scrub_errors = Counter(
            "vaultd_scrub_errors_total", "Problems found by scrubs since start.", registry=r)
        self.scrub_objects = Counter(
            "vaultd_scrub_objects_checked_total", "Object versions checked by scrubs.", registry=r)
        self.scrub_bytes = Counter(
            "vaultd_scrub_bytes_checked_total", "Bytes checked by scrubs.", registry=r)
        self.integrity_errors = Counter(
            "vaultd_integrity_errors_total",
            "Integrity failures (AEAD tag, chunk id, digest, proof), by where they were found.",
            ["where"], registry=r)
        for where in ("read", "stat", "list", "update", "deposit", "check", "scrub", "journal"):
            self.integrity_errors.labels(where)

        # --- certificates and keys --------------------------------------------------------------
        self.cert_expiry = Gauge(
            "vaultd_certificate_expiry_timestamp_seconds",
            "Unix time a certificate the daemon uses stops being valid, by role.",
            ["role"], registry=r)
        self.key_expiry = Gauge(
            "vaultd_key_expiry_timestamp_seconds",
            "Unix time a key must be rotated by, by role (kek, journal).", ["role"], registry=r)
        self.key_rotations = Counter(
            "vaultd_key_rotations_total", "Master key rotations performed.", registry=r)

        self._lock = threading.Lock()
        self._certificates: dict[str, _WatchedCertificate] = {}
        self._crypto_children: dict[str, tuple[Any, Any, Any]] = {}

    # --- storage ----------------------------------------------------------------------------
    def set_storage_source(self, fn: Callable[[], Mapping[str, float]] | None) -> None:
        """Register the callback read at every scrape; keys are those of :data:`STORAGE_GAUGES`.

        The callback should be cheap (an LMDB ``stat()`` and a few counters kept by the
        writer), since Prometheus calls it every scrape interval. ``None`` unregisters it.
        """
        self._storage_source = fn

    # --- writer -----------------------------------------------------------------------------
    def observe_commit(self, operations: int, seconds: float, *, committed: bool = True) -> None:
        """One write transaction of ``operations`` units of work took ``seconds``."""
        (self._committed if committed else self._aborted).inc()
        if committed:
            self.writer_batch.observe(operations)
            self.writer_commit_seconds.observe(seconds)

    def set_writer_queue(self, operations: int) -> None:
        self.writer_queue.set(operations)

    # --- Rust core ----------------------------------------------------------------------------
    def observe_crypto(self, operation: str, items: int, nbytes: int, seconds: float) -> None:
        """One call into the Rust core (``operation`` e.g. ingest, open, sign, verify, merkle)."""
        children = self._crypto_children.get(operation)
        if children is None:  # the labelled series, looked up once per operation (hot path)
            children = (self.crypto_items.labels(operation), self.crypto_bytes.labels(operation),
                        self.crypto_seconds.labels(operation))
            self._crypto_children[operation] = children
        children[0].observe(items)
        children[1].observe(nbytes)
        children[2].observe(seconds)

    @contextlib.contextmanager
    def time_crypto(self, operation: str, items: int, nbytes: int) -> Iterator[None]:
        """``with metrics.time_crypto("ingest", n, len(buf)): crypto.ingest(...)``"""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe_crypto(operation, items, nbytes, time.perf_counter() - started)

    # --- journal ------------------------------------------------------------------------------
    def journal_appended_leaves(self, n: int) -> None:
        self.journal_appended.inc(n)

    def checkpoint_signed(self, at: float | None = None) -> None:
        """A checkpoint was signed (``at``: its unix time, now by default)."""
        self.journal_checkpoints.inc()
        self.journal_checkpoint_ts.set(time.time() if at is None else at)

    def proof_served(self, kind: str) -> None:
        """``kind``: ``inclusion`` or ``consistency``."""
        self.journal_proofs.labels(kind).inc()

    # --- scrub and integrity ------------------------------------------------------------------
    def scrub_finished(self, *, objects: int, nbytes: int, problems: int,
                       at: float | None = None) -> None:
        """A full scrub went over everything and found ``problems`` problems."""
        self.scrub_runs.labels("completed").inc()
        self.scrub_objects.inc(objects)
        self.scrub_bytes.inc(nbytes)
        self.scrub_errors.inc(problems)
        self.scrub_last_problems.set(problems)
        if problems == 0:
            self.scrub_last_success_ts.set(time.time() if at is None else at)

    def scrub_failed(self) -> None:
        """A scrub could not run to its end (the store failed, the daemon stopped it)."""
        self.scrub_runs.labels("failed").inc()

    def integrity_error(self, where: str, n: int = 1) -> None:
        """``n`` integrity failures found by ``where``: read, stat, list, update, deposit, check, scrub
        or journal."""
        self.integrity_errors.labels(where).inc(n)

    # --- certificates and keys ------------------------------------------------------------------
    def set_certificate_expiry(self, role: str, not_after: float) -> None:
        """``role``: server, client_ca, citizen_ca, journal ... (never a subject name)."""
        self.cert_expiry.labels(role).set(not_after)

    def watch_certificate(self, role: str, path: str | os.PathLike[str]) -> float:
        """Follow the PEM file ``path`` (a certificate or a bundle): its earliest ``notAfter`` is
        re-read whenever the file changes, at scrape time, so a renewed certificate shows without a
        restart. Returns the expiry read now (raises if the file holds no certificate)."""
        watched = _WatchedCertificate(Path(path))
        not_after = watched.not_after()
        with self._lock:
            self._certificates[role] = watched
        self.cert_expiry.labels(role).set(not_after)
        return not_after

    def _refresh_certificates(self) -> None:
        with self._lock:
            items = list(self._certificates.items())
        for role, watched in items:
            try:
                self.cert_expiry.labels(role).set(watched.not_after())
            except (OSError, ValueError):
                _log.warning("cannot read the certificate to watch", extra={"role": role})
                self.source_errors.inc()

    def set_key_expiry(self, role: str, deadline: float) -> None:
        self.key_expiry.labels(role).set(deadline)

    def key_rotated(self) -> None:
        self.key_rotations.inc()

    # --- exposition ---------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The text exposition format of every metric (what a scrape returns)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def metric_names(self) -> set[str]:
        """Names of every sample this registry can expose (for dashboards and rule checks)."""
        names: set[str] = set(STORAGE_GAUGES_NAMES)
        for family in self.registry.collect():
            names.add(family.name)
            for sample in family.samples:
                names.add(sample.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
            if family.type == "info":
                names.add(family.name + "_info")
        return names


class _WatchedCertificate:
    """A PEM file whose earliest notAfter is cached until the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._value = 0.0

    def not_after(self) -> float:
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            from cryptography import x509

            data = self.path.read_bytes()[: 1 << 20]
            certs = x509.load_pem_x509_certificates(data)
            self._value = min(c.not_valid_after_utc.timestamp() for c in certs)
            self._stamp = stamp
        return self._value


STORAGE_GAUGES_NAMES = frozenset(name for name, _ in STORAGE_GAUGES.values())


def lmdb_storage_source(
    env: Any,
    dbs: Mapping[str, Any],
    extra: Callable[[], Mapping[str, float]] | None = None,
    read: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> Callable[[], dict[str, float]]:
    """A storage source over an LMDB environment, for :meth:`Metrics.set_storage_source`.

    ``env`` is the ``lmdb.Environment``; ``dbs`` maps ``vaults``, ``objects``, ``versions`` and
    ``chunks`` to their named database handles (missing ones are skipped). Counts are LMDB's own
    entry counts and ``stored_bytes`` the pages the ``chunks`` database holds (sealed chunks as
    stored, after deduplication), so a scrape costs one short read transaction, whatever the
    store's size. ``read`` opens that transaction: the store's ``raw_read`` for a store the
    process writes (growing its map waits for it), ``env.begin`` by default. ``extra`` adds what
    LMDB cannot count cheaply (``logical_bytes``, kept by the core; ``ready``; key versions).
    """
    counted = {"vaults": "vaults", "objects": "objects", "versions": "versions", "chunks": "chunks"}
    begin = read or env.begin

    def source() -> dict[str, float]:
        with begin() as txn:
            info = env.info()
            st = env.stat()
            psize = int(st["psize"])
            out: dict[str, float] = {
                "map_size_bytes": float(info["map_size"]),
                "map_used_bytes": float((info["last_pgno"] + 1) * psize),
            }
            for db_name, key in counted.items():
                handle = dbs.get(db_name)
                if handle is None:
                    continue
                s = txn.stat(handle)
                out[key] = float(s["entries"])
                if db_name == "chunks":
                    pages = s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]
                    out["stored_bytes"] = float(pages * psize)
        if extra is not None:
            out.update(extra())
        return out

    return source


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("vaultd")
    except Exception:
        return "unknown"


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) to ``(host, port)``; port 0 picks a free one."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"metrics listen address must be host:port, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    p = int(port)
    if not 0 <= p <= 65535:
        raise ValueError(f"metrics port out of range: {p}")
    return host, p


class MetricsServer:
    """The HTTP endpoint serving ``/metrics`` of one registry; ``close()`` stops it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_metrics_server(metrics: Metrics, listen: str) -> MetricsServer:
    """Serve ``metrics`` over HTTP on ``listen`` (``--metrics-listen``, e.g. ``127.0.0.1:9464``)."""
    from prometheus_client import start_http_server

    host, port = parse_listen(listen)
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    _log.info("metrics listening", extra={"event": "metrics_listen", "listen": listen})
    return MetricsServer(server, thread)
