"""``vaultd serve``: the vault daemon, the composition root of the server side.

It reads the configuration (defaults < ``--config`` TOML < ``VAULTD_*`` environment < flags),
opens the store and the keys, and serves the gRPC API over mutual TLS with health, reflection and,
on their own port, Prometheus metrics. SIGTERM or SIGINT stops it gracefully: health turns
NOT_SERVING, new calls are refused, calls in flight get the grace period to finish (an unfinished
deposit is cancelled and stores nothing), then the store is closed.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from vaultd.config import DEFAULT_LISTEN, DEFAULT_METRICS_LISTEN, Config, load_config
from vaultd.errors import VaultError
from vaultd.traffic import Traffic

__all__ = ["Daemon", "main", "build_parser"]

log = logging.getLogger("vaultd.daemon")


def _open_key_provider(cfg: Config) -> Any:
    if cfg.key_provider == "pkcs11":
        from vaultd.keys.hsm import Pkcs11KeyProvider

        pin = os.environ.get(cfg.pkcs11_pin_env)
        if not pin:
            raise VaultError(f"the pkcs11 key provider needs the token PIN in ${cfg.pkcs11_pin_env}")
        return Pkcs11KeyProvider(cfg.pkcs11_module, cfg.pkcs11_token, pin)
    from vaultd.keys.file import FileKeyProvider

    assert cfg.keyring is not None
    return FileKeyProvider(cfg.keyring, os.environ.get(cfg.keyring_passphrase_env) or None)


def _call_with_known(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments its signature accepts (optional wiring)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


def _storage_source(vaults: Any, journal: Any, metrics: Any = None, key_max_age_days: float = 0.0) -> Any:
    """What the metrics endpoint reads at each scrape: LMDB's own entry counts and page use (one
    short read transaction), the counters the core keeps in the store's stats record (logical
    bytes, master key versions in use), the journal's size and the keys' state. When the store is
    closing only readiness is reported."""
    from vaultd.metrics import lmdb_storage_source

    def extra() -> dict[str, float]:
        out = dict(vaults.storage_counters())
        out["kek_current_version"] = float(vaults.keys.current_version())
        since = out.get("kek_current_since")
        if metrics is not None and since is not None and key_max_age_days > 0:
            metrics.set_key_expiry("kek", since + key_max_age_days * 86400.0)
        out["journal_leaves"] = float(journal.tree.size())
        out["ready"] = float(bool(vaults.ready()))
        return out

    lmdb_source = lmdb_storage_source(vaults.store.env, vaults.store.databases(), extra=extra,
                                      read=vaults.store.raw_read)

    def source() -> dict[str, float]:
        if not vaults.ready():
            return {"ready": 0.0}
        try:
            return lmdb_source()
        except Exception:  # closed between the check and the read: report readiness only
            return {"ready": float(bool(vaults.ready()))}

    return source


def _last_checkpoint_time(journal: Any, state_dir: Path) -> float | None:
    """When the journal's current head was signed: its state file is rewritten after each signing,
    and its last leaf was appended just before (the later of the two)."""
    size = journal.head().checkpoint.size
    times: list[float] = []
    try:
        times.append((state_dir / "checkpoint").stat().st_mtime)
    except OSError:
        pass
    if size:
        from vaultd.journal.leaf import Leaf

        times.append(Leaf.decode(journal.tree.leaf(size - 1)).time_ns / 1e9)
    return max(times) if times else None


def _last_scrub_from_journal(journal: Any, limit: int = 10_000) -> tuple[float | None, int | None]:
    """(time of the last clean whole-store ``check`` leaf, problems of the last one) among the last
    ``limit`` leaves: for a store whose stats record holds no scrub yet (bounded, read at start)."""
    from vaultd.journal.leaf import Leaf

    size = journal.tree.size()
    clean: float | None = None
    problems: int | None = None
    for index in range(size - 1, max(-1, size - 1 - limit), -1):
        leaf = Leaf.decode(journal.tree.leaf(index))
        extra = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in leaf.extra}
        if leaf.operation != "check" or extra.get("scope") != "all" or extra.get("completed") != "1":
            continue
        if problems is None:
            problems = int(extra.get("problems", "0") or 0)
        if leaf.outcome == "ok":
            clean = leaf.time_ns / 1e9
            break
    return clean, problems


class Daemon:
    """The running daemon: store, keys, gRPC server, metrics endpoint. ``start`` then ``stop``."""

    def __init__(self, config: Config) -> None:
        self.config = config.resolved()
        self.vaults: Any = None
        self.server: Any = None
        self.metrics: Any = None
        self.scrubber: Any = None
        self.traffic = Traffic()  # the calls being served, which the scrub gives way to
        self._metrics_server: Any = None
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return str(self.server.address)

    @property
    def metrics_port(self) -> int | None:
        """The TCP port of the Prometheus endpoint (the one chosen when ``metrics_listen`` asked
        for port 0), or None when metrics are off."""
        return None if self._metrics_server is None else int(self._metrics_server.port)

    @property
    def metrics_url(self) -> str | None:
        """``http://HOST:PORT/metrics`` of this daemon, or None when metrics are off."""
        return None if self._metrics_server is None else str(self._metrics_server.url)

    def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        if cfg.dev:
            from vaultd.pki import ensure_dev_pki, ensure_dev_policy

            ensure_dev_pki(cfg.data_dir)
            ensure_dev_policy(cfg.data_dir)
        cfg.validate()
        from vaultd.core.policy import Policy
        from vaultd.core.vaults import open_vaults
        from vaultd.metrics import Metrics, start_metrics_server
        from vaultd.transport.server import ServerLimits, TLSConfig, VaultServer

        assert cfg.policy is not None and cfg.tls_cert and cfg.tls_key and cfg.client_ca
        policy = Policy.from_file(cfg.policy)
        self.metrics = Metrics()
        keys = _open_key_provider(cfg)
        from vaultd.journal.hook import JournalHook, leaf_factory, open_journal
        from vaultd.transport.journal import journal_service

        hook = JournalHook()  # the journal writes in the store writer's transactions
        self.vaults = _call_with_known(
            open_vaults, cfg.data_dir, policy=policy, key_provider=keys, map_size=cfg.map_size,
            max_map_size=cfg.max_map_size or None, max_object_size=cfg.max_object_size,
            metrics=self.metrics, leaf_factory=leaf_factory, journal=hook, after_commit=hook.after_commit,
        )
        try:
            pin = os.environ.get(cfg.pkcs11_pin_env) if cfg.key_provider == "pkcs11" else None
            self.journal = open_journal(
                self.vaults.store.env, cfg.data_dir / "journal", name=cfg.journal_origin or None,
                read=self.vaults.store.raw_read,  # gated: growing the map waits for the journal's reads
                pkcs11=(cfg.pkcs11_module, cfg.pkcs11_token, pin) if pin else None,
            )
            self.journal.metrics = self.metrics  # checkpoints signed, leaves, journal integrity errors
            self.journal.deposit_index = self.vaults.deposit_leaf_index  # kept in each version's record
            hook.bind(self.journal)
            from vaultd.cli.kiosk import kiosk_for_daemon

            self.sessions, kiosk = kiosk_for_daemon(cfg, self.vaults)  # card logins, KioskService (if set up)
            self.server = VaultServer(
                self.vaults,
                listen=cfg.listen,
                tls=TLSConfig(cfg.tls_cert, cfg.tls_key, cfg.client_ca, cfg.require_client_cert),
                limits=ServerLimits(workers=cfg.workers, max_concurrent_streams=cfg.max_concurrent_streams,
                                    max_calls_per_identity=min(cfg.max_calls_per_identity, cfg.workers)),
                metrics=self.metrics,
                tokens=self.sessions,
                extra_services=[journal_service(self.journal, self.vaults.authorize, self.metrics), *kiosk],
                traffic=self.traffic,
            )
            self._start_operations(kiosks=self.sessions is not None)
            if cfg.metrics_listen:
                self._metrics_server = start_metrics_server(self.metrics, cfg.metrics_listen)
            self.server.start()
            if self.scrubber is not None:
                self.scrubber.start()
        except BaseException:
            if self.scrubber is not None:
                self.scrubber.stop()
            if self._metrics_server is not None:
                self._metrics_server.close()
                self._metrics_server = None
            self.vaults.close()
            raise
        log.info("vaultd serving", extra={"listen": self.address, "data_dir": str(cfg.data_dir),
                                          "metrics": cfg.metrics_listen or None})

    def _start_operations(self, *, kiosks: bool) -> None:
        """Metrics wiring done once the store, journal and server exist: the storage source, the
        certificates to watch, the last checkpoint and scrub as recorded, and the scrub schedule."""
        cfg = self.config
        m = self.metrics
        m.set_storage_source(_storage_source(self.vaults, self.journal, m, cfg.key_max_age_days))
        assert cfg.tls_cert is not None and cfg.client_ca is not None
        m.watch_certificate("server", cfg.tls_cert)
        m.watch_certificate("client_ca", cfg.client_ca)
        citizen_ca = cfg.citizen_ca
        if citizen_ca is None and cfg.dev and kiosks:
            citizen_ca = cfg.data_dir / "citizen-ca" / "ca.pem"  # the development citizen-card CA
        if kiosks and citizen_ca is not None and Path(citizen_ca).exists():
            m.watch_certificate("citizen_ca", citizen_ca)
        signed_at = _last_checkpoint_time(self.journal, cfg.data_dir / "journal")
        if signed_at is not None:
            m.journal_checkpoint_ts.set(signed_at)
        from vaultd.scrub import Scrubber, journal_pass, last_pass

        clean_at, problems = last_pass(self.vaults.store)
        if clean_at is None and problems is None:
            clean_at, problems = _last_scrub_from_journal(self.journal)
        if clean_at is not None:
            m.scrub_last_success_ts.set(clean_at)
        if clean_at is not None or problems is not None:
            m.scrub_last_problems.set(problems or 0)
        if cfg.scrub_interval > 0:
            from vaultd.journal.hook import leaf_factory

            self.scrubber = Scrubber(
                self.vaults, metrics=m, interval=cfg.scrub_interval,
                initial_delay=min(cfg.scrub_interval, 600.0),
                bytes_per_second=cfg.scrub_bytes_per_second or None,
                traffic=self.traffic, busy_share=cfg.scrub_busy_share,
                on_pass=journal_pass(self.vaults.store, leaf_factory))

    def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_period if grace is None else grace
        log.info("vaultd stopping", extra={"grace_seconds": grace})
        try:
            if self.scrubber is not None:  # a pass in progress ends now and counts as failed
                self.scrubber.stop()
            if self.server is not None:
                self.server.stop(grace)
        finally:
            if self.vaults is not None:
                self.vaults.close()
            if getattr(self, "journal", None) is not None:
                self.journal.close()  # writes the last signed checkpoint
            if self._metrics_server is not None:
                self._metrics_server.close()
        log.info("vaultd stopped")


def _help(name: str) -> str:
    for f in fields(Config):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    return ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vaultd",
        description="vaultd: a digital vault for documents with legal value.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser(
        "serve",
        help="run the vault daemon",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the vault daemon: the gRPC API over mutual TLS, health, reflection and "
        "Prometheus metrics.",
        epilog=(
            "Settings come from, in increasing priority: built-in defaults, the --config TOML file,\n"
            "VAULTD_* environment variables (VAULTD_LISTEN, VAULTD_DATA_DIR, VAULTD_METRICS_LISTEN,\n"
            "VAULTD_TLS_CERT, VAULTD_TLS_KEY, VAULTD_CLIENT_CA, VAULTD_POLICY, VAULTD_MAP_SIZE, ...:\n"
            "VAULTD_ and the setting's name in capitals), then these flags.\n\n"
            "The keyring passphrase, if the keyring has one, is read from $VAULTD_KEYRING_PASSPHRASE;\n"
            "a PKCS#11 PIN from $VAULTD_PKCS11_PIN. Secrets are never flags.\n\n"
            "SIGTERM or SIGINT stops the daemon gracefully: health turns NOT_SERVING, new calls are\n"
            "refused, calls in flight get the grace period to finish; an unfinished deposit stores\n"
            "nothing."
        ),
    )
    s.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML configuration file (top-level keys named like the settings)")
    s.add_argument("--data-dir", type=Path, metavar="DIR",
                   help=_help("data_dir") + " (default ./data)")
    s.add_argument("--listen", metavar="HOST:PORT",
                   help=f"{_help('listen')} (default {DEFAULT_LISTEN}, loopback only)")
    s.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help=f"{_help('metrics_listen')} (default {DEFAULT_METRICS_LISTEN})")
    s.add_argument("--tls-cert", type=Path, metavar="FILE", help=_help("tls_cert"))
    s.add_argument("--tls-key", type=Path, metavar="FILE", help=_help("tls_key"))
    s.add_argument("--client-ca", type=Path, metavar="FILE", help=_help("client_ca"))
    s.add_argument("--policy", type=Path, metavar="FILE", help=_help("policy"))
    s.add_argument("--key-provider", choices=["file", "pkcs11"], help=_help("key_provider"))
    s.add_argument("--map-size", type=int, metavar="BYTES", help=_help("map_size"))
    s.add_argument("--max-map-size", type=int, metavar="BYTES", help=_help("max_map_size"))
    s.add_argument("--grace-period", type=float, metavar="SECONDS", help=_help("grace_period"))
    s.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help=_help("log_level"))
    s.add_argument("--citizen-ca", type=Path, metavar="FILE", help=_help("citizen_ca"))
    s.add_argument("--citizen-crl", dest="citizen_crls", type=Path, action="append", metavar="FILE",
                   help=_help("citizen_crls"))
    s.add_argument("--session-secret", type=Path, metavar="FILE", help=_help("session_secret"))
    s.add_argument("--journal-origin", metavar="NAME", help=_help("journal_origin"))
    s.add_argument("--scrub-interval", type=float, metavar="SECONDS", help=_help("scrub_interval"))
    s.add_argument("--key-max-age-days", type=float, metavar="DAYS", help=_help("key_max_age_days"))
    s.add_argument("--scrub-bytes-per-second", type=float, metavar="BYTES",
                   help=_help("scrub_bytes_per_second"))
    s.add_argument("--scrub-busy-share", type=float, metavar="SHARE", help=_help("scrub_busy_share"))
    s.add_argument("--dev", action="store_true", default=None,
                   help="development mode: on first run make a CA, server and service certificates "
                   "(svc-permits, svc-taxation, svc-procurement, op-admin) in <data-dir>/pki, a "
                   "keyring and a development policy <data-dir>/policy.toml, and use them")
    r = sub.add_parser(
        "restore",
        help="bring a backup (vaultctl backup) back into an empty data folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Restore the backup SRC into the data folder DIR, with the keys kept apart from "
        "backups (ESCROW), checked against the checkpoint the backup printed. The daemon must not run "
        "on DIR.",
        epilog=RESTORE_EPILOG,
    )
    r.add_argument("src", type=Path, metavar="SRC", help="the backup folder (made by vaultctl backup)")
    r.add_argument("--data-dir", type=Path, metavar="DIR", required=True,
                   help="the data folder to restore into; its store/ and journal/ must be absent or empty")
    r.add_argument("--expect-checkpoint", type=Path, metavar="FILE", required=True,
                   help="the checkpoint vaultctl backup printed, kept apart from the backup")
    r.add_argument("--keys-from", type=Path, metavar="ESCROW", required=True,
                   help="folder with the keys kept in escrow: " + ", ".join(ESCROW_FILES)
                   + " (those that exist; with pkcs11 the master and journal keys stay in the token)")
    return p


#: Files kept apart from backups (key material), copied from the escrow folder by ``vaultd restore``.
ESCROW_FILES = ("keyring.json", "journal/journal.key", "session.key")
_MAX_CHECKPOINT = 64 * 1024

RESTORE_EPILOG = """\
Before anything is written: every file of the backup is checked against its manifest (size,
SHA-256), the backup's checkpoint must be the expected one byte for byte, and DIR must not hold a
store or journal (a folder in use is refused). Then the store, the journal's name and the escrowed
keys are copied in (keys mode 0600), and the restored journal must have exactly the tree of the
checkpoint (size and root; its signature is checked with journal/journal.key when that is in
ESCROW). A failed restore removes what it wrote.

exit codes:
   0  restored: start the daemon on DIR
   1  usage error (bad arguments, a file or folder missing, nothing in ESCROW)
   2  other error
   7  SRC is not a vaultd backup (no or malformed MANIFEST.json)
   8  DIR is not empty (holds a store, a journal or keys already) or is in use
  11  integrity: a file differs from the manifest, the checkpoint is not the expected one, or
      the restored journal does not match it
"""


def _verify_restored_journal(journal_key: Path | None) -> Any:
    """``verify(env, note)`` for ``vaultd.store.backup.restore``: the restored journal has exactly the
    tree of the checkpoint (size and root), whose signature verifies when the key file is at hand."""

    def verify(env: Any, note: bytes) -> None:
        from vaultd.errors import IntegrityError
        from vaultd.journal.checkpoint import Checkpoint, SignedNote, open_checkpoint
        from vaultd.journal.tree import MerkleTree

        cp = Checkpoint.parse_body(SignedNote.parse(note).text)
        if journal_key is not None:
            from vaultd.journal.signer import Ed25519Signer

            open_checkpoint(note, Ed25519Signer.load_or_create(journal_key, cp.origin).verifier())
        tree = MerkleTree(env)
        size = tree.size()
        if size != cp.size:
            raise IntegrityError(f"the restored journal holds {size} leaves, its checkpoint {cp.size}")
        if size and tree.root(size) != cp.root:
            raise IntegrityError("the restored journal's root differs from its checkpoint's")

    return verify


def restore_command(args: argparse.Namespace) -> int:
    from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument
    from vaultd.store.backup import restore

    try:
        with open(args.expect_checkpoint, "rb") as f:
            expected = f.read(_MAX_CHECKPOINT + 1)
    except OSError as e:
        print(f"vaultd restore: cannot read the expected checkpoint: {e}", file=sys.stderr)
        return 1
    if len(expected) > _MAX_CHECKPOINT or not expected.strip():
        print(f"vaultd restore: {args.expect_checkpoint} is not a checkpoint", file=sys.stderr)
        return 1
    if not args.src.is_dir():
        print(f"vaultd restore: {args.src} is not a folder", file=sys.stderr)
        return 1
    if not args.keys_from.is_dir():
        print(f"vaultd restore: the escrow folder {args.keys_from} does not exist", file=sys.stderr)
        return 1
    secrets = {name: args.keys_from / name for name in ESCROW_FILES if (args.keys_from / name).is_file()}
    if not secrets:
        print(f"vaultd restore: {args.keys_from} holds none of {', '.join(ESCROW_FILES)}", file=sys.stderr)
        return 1
    data_dir: Path = args.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        print(f"vaultd restore: {data_dir} is not a folder", file=sys.stderr)
        return 1
    codes: list[tuple[type[Exception], int]] = [
        (IntegrityError, 11), (FailedPrecondition, 8), (InvalidArgument, 7)]
    try:
        result = restore(args.src, data_dir, expected_checkpoint=expected, secret_files=secrets,
                         verify=_verify_restored_journal(secrets.get("journal/journal.key")))
    except VaultError as e:
        code = next((c for cls, c in codes if isinstance(e, cls)), 2)
        print(f"vaultd restore: refused ({type(e).__name__}): {e}", file=sys.stderr)
        return code
    except Exception as e:  # OSError, lmdb.Error: the copy could not be made or opened
        print(f"vaultd restore: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    print(f"vaultd restore: {data_dir} restored from {args.src}: journal tree size {result.tree_size}, "
          f"keys from escrow: {', '.join(sorted(secrets))}. Start the daemon on it.", file=sys.stderr)
    return 0


def no_core_dumps() -> None:
    """Keys and documents live in this process's memory: no core file (RLIMIT_CORE 0) and not
    dumpable (PR_SET_DUMPABLE 0: no core through a pipe handler, no ptrace by other processes)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


# glibc's allocator, tuned for a daemon that moves megabytes per call (see tune_allocator)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
ALLOCATOR_SETTINGS = {
    # Blocks up to 4 MiB (1 MiB messages, chunks of up to 2 MiB, their sealed forms) come from the heap
    # and are reused, instead of each being a fresh mapping that the kernel faults in and zeroes.
    M_MMAP_THRESHOLD: 4 << 20,
    # Free memory at the top of a heap is given back to the kernel only past 64 MiB, not after every
    # large free.
    M_TRIM_THRESHOLD: 64 << 20,
}


def tune_allocator() -> dict[int, int]:
    """Tune glibc's malloc for the deposit path; return the settings applied (none elsewhere).

    Measured on ingest (4 clients, 512 MiB, fresh daemons alternated 4 times; the profile and figures
    are in benchmarks/results/peers-profile.md): the defaults map, fault in and zero fresh memory for
    most large buffers (about 9% of the daemon's CPU in page faults and page clearing) and keep one
    arena per thread that allocated (up to 8 per CPU), each holding its own free memory. With these
    settings and one arena per CPU the daemon spent 15% less CPU per GiB ingested (medians 4.75 ->
    4.02 s), ingested 9% faster, and its peak anonymous RSS was about 50 MiB lower (199-224 -> 161-170
    MiB); 16 KiB deposits did not change.
    An operator's own ``GLIBC_TUNABLES`` malloc settings win: nothing is changed then."""
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return {}
    import platform

    if platform.libc_ver()[0] != "glibc":
        return {}
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - a libc without mallopt
        return {}
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    wanted = {**ALLOCATOR_SETTINGS, M_ARENA_MAX: max(2, os.cpu_count() or 2)}
    return {param: value for param, value in wanted.items() if mallopt(param, value) == 1}


def serve(cfg: Config) -> int:
    from vaultd.logs import setup_logging

    no_core_dumps()
    tune_allocator()
    setup_logging(cfg.log_level)
    daemon = Daemon(cfg)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    print(f"vaultd: serving on {daemon.address}", file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    # A second signal during the stop is ignored: the stop is already bounded by the grace period.
    daemon.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "restore":
        return restore_command(args)
    if args.command != "serve":
        parser.print_help()
        return 1
    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    try:
        cfg = load_config(args.config, overrides=overrides)
        return serve(cfg)
    except VaultError as e:
        print(f"vaultd: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"vaultd: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
