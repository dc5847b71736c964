"""Hot, consistent backups of the store and their restore into an empty data folder.

A backup is a folder::

    MANIFEST.json          format, time, tree size, and the SHA-256 and size of every file below
    store/data.mdb         a compacted copy of the LMDB environment, taken from ONE read transaction
    journal/checkpoint     the signed checkpoint (C2SP note) of exactly the journal in that copy
    journal/origin ...     other non-secret files the caller names (the journal's name)

The copy runs while the daemon serves: LMDB copies the snapshot of a read transaction (with
compaction, so free pages are dropped), writers go on meanwhile. The checkpoint must describe that
same snapshot; the caller's ``head_for(txn)`` returns the signed note whose tree size is the one
in the transaction, or ``None`` while the checkpoint of the last commit is not signed yet (then the
backup retries with a fresh transaction: the writer signs right after each commit).

What a backup never holds: the master key (keyring file, HSM key) and the journal's signing key.
Vault keys are inside the LMDB copy, wrapped by the master key: reading the backup again needs the
master key from where the operator keeps it (key escrow, the HSM). ``restore`` takes those secret
files separately (``secret_files``) so they never travel with the backup.

The folder is written under a temporary name beside ``dest`` and renamed at the end, so a backup
that is visible is complete; every file and folder is fsync'd.

This module knows nothing of the journal (the store sits below it): the journal-specific parts are
callbacks. :func:`journal_head_for` builds ``head_for`` from any object with ``tree.size(txn)`` and
``head()`` (the daemon's ``Journal``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import lmdb

from vaultd.errors import FailedPrecondition, IntegrityError, InvalidArgument, Unavailable

__all__ = [
    "FORMAT",
    "BackupResult",
    "RestoreResult",
    "backup",
    "backup_data_dir",
    "checkpoint_size",
    "restore",
    "verify_backup",
    "read_manifest",
    "journal_head_for",
]

FORMAT = "vaultd-backup/1"
MANIFEST = "MANIFEST.json"
STORE_FILE = "store/data.mdb"
CHECKPOINT_FILE = "journal/checkpoint"
_MAX_MANIFEST = 1 << 20
_CHUNK = 1 << 20

#: Files that hold key material: a backup refuses to carry them.
_SECRET_NAMES = ("keyring", ".key", ".pem", "secret", "passphrase", "pin")

HeadFor = Callable[[Any], "tuple[int, bytes] | None"]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    tree_size: int
    checkpoint: bytes  # the signed note the backup leads to: print it, keep it
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 hex
    store_bytes: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class RestoreResult:
    data_dir: Path
    tree_size: int
    checkpoint: bytes
    files: dict[str, str] = field(default_factory=dict)


def journal_head_for(journal: Any) -> HeadFor:
    """``head_for`` over a journal with ``tree.size(txn)`` and ``head()`` -> ``(.checkpoint.size,
    .note)``: the signed note of exactly the tree in ``txn``, or None until it is signed. A journal
    with ``stored_note(txn)`` (the note stored with the batch it signs) is asked that first: it
    describes the snapshot itself, whatever was signed since."""

    def head_for(txn: Any) -> tuple[int, bytes] | None:
        size = int(journal.tree.size(txn))
        stored = getattr(journal, "stored_note", None)
        if stored is not None and (found := _signing(stored(txn), size)) is not None:
            return found
        head = journal.head()
        if head.checkpoint.size == size:
            return size, bytes(head.note)
        return None

    return head_for


def _check_relative(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or name != str(p):
        raise InvalidArgument(f"backup file names are plain relative paths, not {name!r}")
    return name


def _looks_secret(name: str) -> bool:
    base = PurePosixPath(name).name.lower()
    return any(s in base for s in _SECRET_NAMES)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            _fsync_path(Path(dirpath) / f)
        _fsync_path(Path(dirpath))


def _write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _empty_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def backup(
    store: Any,
    dest: Path | str,
    *,
    head_for: HeadFor,
    copy_files: Mapping[str, Path | str] | None = None,
    timeout: float = 30.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> BackupResult:
    """Copy the store (hot, compacted, one snapshot) and the checkpoint of that snapshot to
    ``dest`` (absent or an empty folder). ``store`` is the open LMDB store (its ``read()`` gives
    a transaction wrapper with ``.raw``; its ``env`` is the environment). ``copy_files`` maps
    relative names in the backup to non-secret files to include (``journal/origin``).
    ``progress(bytes_copied, estimate)`` is called a few times a second while the store is copied
    (the estimate is the pages in use, an upper bound: compaction drops free pages) and once at
    the end with the copy's size twice."""
    dest = Path(dest)
    if not _empty_or_absent(dest):
        raise FailedPrecondition(f"backup destination {dest} exists and is not empty")
    extra = {_check_relative(k): Path(v) for k, v in (copy_files or {}).items()}
    for name in extra:
        if _looks_secret(name):
            raise InvalidArgument(f"a backup never carries key material: {name!r}")
        if name in (STORE_FILE, CHECKPOINT_FILE, MANIFEST):
            raise InvalidArgument(f"{name!r} is written by the backup itself")
    started = time.monotonic()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir(mode=0o700)
    try:
        (tmp / "store").mkdir(mode=0o700)
        deadline = time.monotonic() + timeout
        while True:
            with store.read() as r:
                head = head_for(r.raw)
                if head is not None:
                    # the snapshot of this transaction, compacted; writers go on meanwhile
                    with _CopyProgress(tmp / STORE_FILE, store.env, progress):
                        store.env.copy(str(tmp / "store"), compact=True, txn=r.raw)
                    break
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"no signed checkpoint matched the store for {timeout:.0f} s; is the journal signing?")
            time.sleep(0.005)
        tree_size, note = head
        lock = tmp / "store" / "lock.mdb"
        if lock.exists():
            lock.unlink()
        _write_file(tmp / CHECKPOINT_FILE, note, 0o644)
        for name, src in extra.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(src, target)
        files = {}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            files[rel] = _sha256_file(path)
        store_bytes = (tmp / STORE_FILE).stat().st_size
        if progress is not None:
            progress(store_bytes, store_bytes)
        manifest = {
            "format": FORMAT,
            "created_at": int(time.time()),
            "tree_size": tree_size,
            "files": {rel: {"sha256": h, "size": (tmp / rel).stat().st_size} for rel, h in files.items()},
        }
        _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n",
                    0o644)
        _fsync_tree(tmp)
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
        _fsync_path(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BackupResult(dest, tree_size, note, files, store_bytes, time.monotonic() - started)


class _CopyProgress:
    """Reports the growth of the copy's file from a thread while LMDB writes it."""

    def __init__(self, path: Path, env: Any, progress: Callable[[int, int | None], None] | None) -> None:
        self._path = path
        self._progress = progress
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._total: int | None = None
        if progress is not None:
            try:
                info, st = env.info(), env.stat()
                self._total = int((info["last_pgno"] + 1) * st["psize"])
            except lmdb.Error:
                self._total = None

    def _run(self) -> None:
        assert self._progress is not None
        while not self._done.wait(0.25):
            try:
                size = self._path.stat().st_size
            except OSError:
                size = 0
            self._progress(size, self._total)

    def __enter__(self) -> _CopyProgress:
        if self._progress is not None:
            self._thread = threading.Thread(target=self._run, name="vaultd-backup-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


class _EnvStore:
    """The two things ``backup`` needs of a store (``read()`` with ``.raw``, ``env``), over an
    environment this process opened read-only beside the running daemon."""

    class _Txn:
        def __init__(self, raw: Any) -> None:
            self.raw = raw

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env

    def read(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def cm() -> Any:
            try:
                txn = self.env.begin(buffers=True)
            except lmdb.MapResizedError:  # the daemon grew the map: adopt its size
                self.env.set_mapsize(0)
                txn = self.env.begin(buffers=True)
            try:
                yield _EnvStore._Txn(txn)
            finally:
                txn.abort()

        return cm()


def _signing(note: bytes | None, size: int) -> tuple[int, bytes] | None:
    """``(size, note)`` when ``note`` is a checkpoint of a tree of ``size`` leaves, else None."""
    return (size, note) if note is not None and checkpoint_size(note) == size else None


def checkpoint_size(note: bytes) -> int:
    """The tree size of a C2SP checkpoint note (its second line)."""
    lines = note.split(b"\n", 2)
    if len(lines) < 3 or not lines[1].isdigit() or len(lines[1]) > 20:
        raise InvalidArgument("not a checkpoint note")
    return int(lines[1])


def backup_data_dir(
    data_dir: Path | str,
    dest: Path | str,
    *,
    tree_size: Callable[[lmdb.Environment, Any], int],
    stored_head: Callable[[lmdb.Environment, Any], bytes | None] | None = None,
    timeout: float = 60.0,
    max_dbs: int = 32,
    progress: Callable[[int, int | None], None] | None = None,
) -> BackupResult:
    """``vaultctl backup``: the same backup from ANOTHER process on the daemon's host, while the
    daemon serves. LMDB lets this process open the environment read-only beside the daemon
    (readers are registered in its lock file); the checkpoint is ``stored_head(env, txn)``, the
    note the journal stores with each batch it signs before the commit, when it describes exactly
    the tree of the read transaction (the usual case: the snapshot holds its own checkpoint); else
    the journal's state file (``journal/checkpoint``, rewritten with the latest signed head at most
    once a second), and the backup retries until one of them matches. ``tree_size(env, txn)``
    reads the journal's tree size in ``txn`` (the journal layer knows where; open named databases
    with ``env.open_db(name, txn=txn, create=False)``: a handle opened outside the transaction is
    not valid in it). Run it as the
    daemon's user (it needs write access to ``store/lock.mdb``)."""
    data_dir = Path(data_dir)
    state = data_dir / "journal" / "checkpoint"
    env = lmdb.open(str(data_dir / "store"), readonly=True, lock=True, max_dbs=max_dbs,
                    subdir=True, create=False)
    try:
        def head_for(txn: Any) -> tuple[int, bytes] | None:
            size = tree_size(env, txn)
            if stored_head is not None and (found := _signing(stored_head(env, txn), size)) is not None:
                return found
            try:
                return _signing(state.read_bytes(), size)
            except FileNotFoundError:
                return None

        origin = data_dir / "journal" / "origin"
        extra = {"journal/origin": origin} if origin.exists() else {}
        return backup(_EnvStore(env), dest, head_for=head_for, copy_files=extra, timeout=timeout,
                      progress=progress)
    finally:
        env.close()


def read_manifest(src: Path | str) -> dict[str, Any]:
    """The backup's manifest, checked for shape (not yet against the files)."""
    path = Path(src) / MANIFEST
    try:
        raw = path.read_bytes()[: _MAX_MANIFEST + 1]
    except FileNotFoundError:
        raise InvalidArgument(f"{src} is not a vaultd backup (no {MANIFEST})") from None
    if len(raw) > _MAX_MANIFEST:
        raise InvalidArgument(f"{MANIFEST} is larger than {_MAX_MANIFEST} bytes")
    try:
        m = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"{MANIFEST} is not JSON: {e}") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise InvalidArgument(f"{src}: unknown backup format {m.get('format') if isinstance(m, dict) else m!r}")
    files = m.get("files")
    if not isinstance(files, dict) or STORE_FILE not in files or CHECKPOINT_FILE not in files:
        raise InvalidArgument(f"{MANIFEST} lists no store or no checkpoint")
    for name, entry in files.items():
        _check_relative(name)
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("size"), int)):
            raise InvalidArgument(f"{MANIFEST}: bad entry for {name!r}")
    if not isinstance(m.get("tree_size"), int) or m["tree_size"] < 0:
        raise InvalidArgument(f"{MANIFEST}: bad tree size")
    return m


def verify_backup(src: Path | str) -> dict[str, Any]:
    """Check every file of the backup against its manifest (size and SHA-256); return it."""
    src = Path(src)
    m = read_manifest(src)
    listed = set(m["files"])
    present = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()} - {MANIFEST}
    if present != listed:
        raise IntegrityError(f"backup {src}: files differ from the manifest: "
                             f"missing {sorted(listed - present)}, unexpected {sorted(present - listed)}")
    for name, entry in m["files"].items():
        path = src / name
        if path.stat().st_size != entry["size"] or not hmac.compare_digest(
                _sha256_file(path), entry["sha256"]):
            raise IntegrityError(f"backup {src}: {name} does not match its manifest digest")
    return m


def restore(
    src: Path | str,
    data_dir: Path | str,
    *,
    expected_checkpoint: bytes | None = None,
    secret_files: Mapping[str, Path | str] | None = None,
    verify: Callable[[lmdb.Environment, bytes], None] | None = None,
    max_dbs: int = 32,
) -> RestoreResult:
    """Bring the backup ``src`` back into ``data_dir`` (its ``store`` and ``journal`` folders must
    be absent or empty). Every file is checked against the manifest first; with
    ``expected_checkpoint`` (the note the backup printed) the backup's checkpoint must be that
    one, byte for byte. ``secret_files`` (relative name -> path) are the keys kept apart from
    backups (``keyring.json``, ``journal/journal.key``), copied in with mode 0600. ``verify(env,
    checkpoint)`` runs on the restored LMDB (read-only) before the restore counts as done: the
    caller checks there that the journal's tree matches the checkpoint."""
    src, data_dir = Path(src), Path(data_dir)
    m = verify_backup(src)
    note = (src / CHECKPOINT_FILE).read_bytes()
    if expected_checkpoint is not None and not hmac.compare_digest(
            note.strip(), expected_checkpoint.strip()):
        raise IntegrityError("the backup's checkpoint is not the expected one")
    for folder in ("store", "journal"):
        if not _empty_or_absent(data_dir / folder):
            raise FailedPrecondition(f"{data_dir / folder} is not empty: restore only into an empty data folder")
    secrets = {_check_relative(k): Path(v) for k, v in (secret_files or {}).items()}
    clash = set(secrets) & set(m["files"])
    if clash:
        raise InvalidArgument(f"secret files would overwrite backup files: {sorted(clash)}")
    for name in secrets:
        if (data_dir / name).exists():
            raise FailedPrecondition(f"{data_dir / name} exists already")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    try:
        for name in m["files"]:
            target = data_dir / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(src / name, target)
            os.chmod(target, 0o600)
            _fsync_path(target)
            written.append(target)
        for name, path in secrets.items():
            target = data_dir / name
            _write_file(target, path.read_bytes(), 0o600)
            written.append(target)
        for parent in {t.parent for t in written}:
            _fsync_path(parent)
        # the copy must open as an LMDB environment before anyone serves from it
        if not hmac.compare_digest(_sha256_file(data_dir / STORE_FILE),
                                   m["files"][STORE_FILE]["sha256"]):
            raise IntegrityError("the restored store differs from the backup")
        env = lmdb.open(str(data_dir / "store"), readonly=True, lock=False, max_dbs=max_dbs,
                        subdir=True)
        try:
            if verify is not None:
                verify(env, note)
        finally:
            env.close()
        lock = data_dir / "store" / "lock.mdb"
        if lock.exists():  # lock=False made none, but an older lmdb may have
            lock.unlink()
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return RestoreResult(data_dir, int(m["tree_size"]), note,
                         {k: v["sha256"] for k, v in m["files"].items()})
