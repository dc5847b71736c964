"""The vault use cases: create, deposit, read, stat, list, count, destroy, check, retention, hold,
key rotation and vault destruction. Every method authorizes through the policy before anything else.

Deposit: data pieces accumulate into buffers of ``BUFFER`` bytes; each buffer is cut into
content-defined chunks, the tail after the last cut is carried into the next buffer (so chunk
boundaries never depend on how the client split its messages), chunk ids are keyed BLAKE3 under the
vault's dedup key, and only chunks the vault does not have are sealed. Large deposits stage their
chunks in parts (each part takes its chunk references and is recorded as pending); the final unit
writes the version, manifest and object head and clears the pending records in one transaction. A
failure or cancellation rolls the staged parts back; pending records left by a crash are rolled back
when the store is next opened. Memory stays bounded by a few buffers per deposit.

A batch of small deposits (``deposit_batch``) runs each item through the same steps as ``deposit``
(prepare: authorize, validate, ingest, check; submit the final unit; finish: wait, or roll back), but
prepares every item before submitting any final unit, so that the writer commits them together.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import struct
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from vaultd.core import content as C
from vaultd.core.policy import Policy, validate_vault_id
from vaultd.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    IntegrityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    VaultError,
)
from vaultd.keys.envelope import (
    VaultKeys,
    WrappedVaultKeys,
    new_vault_keys,
    unwrap_vault_keys,
    wrap_vault_keys,
)
from vaultd.keys.provider import KeyProvider
from vaultd.store.interface import Committed, ReadTxn, WriteTxn
from vaultd.store.lmdb_store import LmdbStore, open_store
from vaultd.types import (
    CheckReport,
    DepositHeader,
    DestroyReceipt,
    Identity,
    ObjectStat,
    Problem,
    Receipt,
    VaultInfo,
)
from vaultd.wire import length_delimited, varint_len

__all__ = ["Vaults", "DenialBudget", "open_vaults", "MAX_PIECE", "MAX_BATCH_ITEMS", "DEFAULT_MAX_OBJECT_SIZE",
           "MAX_PAGE_TOKEN", "stat_wire_size", "MAX_CHECK_PROBLEMS"]

log = logging.getLogger("vaultd.core")

MAX_PIECE = 1 << 20
DEFAULT_MAX_OBJECT_SIZE = 4 << 30
BUFFER = 4 << 20  # one ingest call per buffer: large enough to spread chunks over the cores
PART = 8 << 20  # staged part size for large deposits (one writer unit)
MAX_INFLIGHT_PARTS = 1  # parts queued to the writer per deposit, beyond the one being built
DEPOSIT_BUFFER = BUFFER + MAX_PIECE  # a deposit's buffer: one ingest call's worth plus one message
POOLED_BUFFERS = 4  # deposit buffers kept for reuse (allocating and zeroing 5 MiB per deposit costs)
_pool: list[bytearray] = []
_pool_lock = threading.Lock()


def _take_buffer() -> bytearray:
    with _pool_lock:
        if _pool:
            return _pool.pop()
    return bytearray(DEPOSIT_BUFFER)


def _give_buffer(buf: bytearray) -> None:
    if len(buf) != DEPOSIT_BUFFER:
        return  # grown for an unusual chunk size: not kept
    with _pool_lock:
        if len(_pool) < POOLED_BUFFERS:
            _pool.append(buf)
READ_BATCH = 8 << 20
MAX_NAME = 1024
MAX_META = 64
MAX_REQUEST_ID = 128
MAX_CONTENT_TYPE = 256
MAX_BATCH_ITEMS = 256  # documents in one deposit_batch call
PURGE_BATCH = 2000  # records of a destroyed vault removed per write unit
_ENTRY = struct.Struct(">32sI")
MAX_CHECK_PROBLEMS = 1000  # problems a check lists (a response stays far below 4 MiB); the rest are counted
CHECK_PAGE = 64  # object versions a vault check reads in one read transaction
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_Checked = tuple[int, set[bytes], list[Problem], int]  # one version checked: bytes, chunks, problems, omitted
MAX_RETAIN_UNTIL = 253402300799  # 9999-12-31T23:59:59Z: the last second a UTC date can name


class _Missing(Exception):
    """A chunk the deposit counted on vanished before its unit ran (destroyed meanwhile)."""

    def __init__(self, ids: set[bytes]) -> None:
        super().__init__(len(ids))
        self.ids = ids


def _now_ns() -> int:
    return time.time_ns()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def validate_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidArgument("object name must be a string")
    b = name.encode("utf-8", "surrogatepass")
    if not 1 <= len(b) <= MAX_NAME:
        raise InvalidArgument(f"object name must be 1 to {MAX_NAME} UTF-8 bytes, got {len(b)}")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidArgument("object name must not contain NUL or control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument("object name is not valid UTF-8") from None
    return name


def validate_metadata(md: dict[str, str]) -> dict[str, str]:
    if len(md) > MAX_META:
        raise InvalidArgument(f"at most {MAX_META} metadata entries, got {len(md)}")
    for k, v in md.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument("metadata keys and values must be strings")
        if not 1 <= len(k.encode()) <= 128:
            raise InvalidArgument(f"metadata key {k[:40]!r}... must be 1 to 128 bytes")
        if len(v.encode()) > 1024:
            raise InvalidArgument(f"metadata value of {k!r} exceeds 1024 bytes")
    return dict(md)


def _stat_from(vault: str, name: str, version: int, rec: dict[str, Any]) -> ObjectStat:
    return ObjectStat(
        vault=vault,
        name=name,
        version=version,
        object_id=rec["object_id"],
        size=rec["size"],
        sha256=bytes.fromhex(rec["sha256"]),
        hash_algorithm="sha256",
        content_type=rec["content_type"],
        metadata=dict(rec["metadata"]),
        depositor=rec["depositor"],
        deposited_at_ns=rec["deposited_at_ns"],
        retain_until=rec.get("retain_until"),
        legal_hold=bool(rec.get("legal_hold", False)),
    )


def stat_wire_size(s: ObjectStat) -> int:
    """An upper bound of the bytes ``s`` takes as one ObjectStat of a ListResponse: the message's
    tag and a length of at most 5 bytes; each field (and each metadata entry, and its key and value)
    a 1-byte tag and a length of at most 3 bytes (no field reaches 2 MiB); each integer 11 bytes."""
    def text(x: str) -> int:
        return 4 + len(x.encode("utf-8", "surrogatepass"))

    n = 6 + 4 + len(s.sha256) + 5 * 11  # version, size, deposited_at_ns, retain_until, legal_hold
    n += sum(text(x) for x in (s.vault, s.name, s.object_id, s.hash_algorithm, s.content_type, s.depositor))
    n += sum(4 + text(k) + text(v) for k, v in s.metadata.items())
    return n


MAX_PAGE_TOKEN = 4096  # characters: a token holds one object name (at most 2 KiB escaped) in base64
_BAD_TOKEN = ("invalid page token: pass the next_page_token of the previous page unchanged, "
              "with the same vault, prefix and versions flag")


def _list_scope(vault: str, prefix: str, versions: bool) -> str:
    """What a page token is bound to: the listing it continues (vault, prefix, versions flag)."""
    b = b"\x00".join((vault.encode("utf-8", "surrogatepass"), prefix.encode("utf-8", "surrogatepass"),
                      b"v" if versions else b"l"))
    return hashlib.sha256(b"vaultd list page\x00" + b).hexdigest()[:32]


def _page_token_out(scope: str, name: str, version: int) -> str:
    raw = json.dumps([scope, name, version], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _page_token_in(token: str, scope: str, prefix: str) -> tuple[str, int]:
    """The (name, version) a page token resumes after; InvalidArgument for anything but a token of
    this same listing."""
    if len(token) > MAX_PAGE_TOKEN:
        raise InvalidArgument(_BAD_TOKEN)
    try:
        val = json.loads(base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8"))
    except (ValueError, RecursionError):  # a UnicodeError is a ValueError
        raise InvalidArgument(_BAD_TOKEN) from None
    if not (isinstance(val, list) and len(val) == 3 and val[0] == scope):
        raise InvalidArgument(_BAD_TOKEN)
    _, name, version = val
    if not isinstance(name, str) or not name.startswith(prefix):
        raise InvalidArgument(_BAD_TOKEN)
    try:
        validate_name(name)
    except InvalidArgument:
        raise InvalidArgument(_BAD_TOKEN) from None
    if type(version) is not int or not 0 <= version < 1 << 63:
        raise InvalidArgument(_BAD_TOKEN)
    return name, version


# One encoder for every record (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
# An object head as _dumps writes it: the fast path of the writer's deposit unit.
_HEAD = re.compile(rb'\{"latest":(0|[1-9][0-9]{0,18}),"next":([1-9][0-9]{0,18})\}')


def _dumps(d: dict[str, Any]) -> bytes:
    return _ENCODER.encode(d).encode()


def _head_bytes(latest: int, nxt: int) -> bytes:
    """``_dumps({"next": nxt, "latest": latest})``, without the encoder."""
    return b'{"latest":%d,"next":%d}' % (latest, nxt)


def _next_version(head: bytes | None) -> int:
    """The next version number of an object head (1 for a new object)."""
    if head is None:
        return 1
    m = _HEAD.fullmatch(head)
    return int(m.group(2)) if m is not None else int(json.loads(head)["next"])


def _request_record(vault: str, name: str, version: int, stat: bytes, request_id: str,
                    dedup_bytes: int, stored_bytes: int) -> bytes:
    """``_dumps`` of a deposit's request record, with its stat record already encoded (``stat``,
    the version record's bytes) spliced in rather than encoded a second time."""
    e = _ENCODER.encode
    return b'{"dedup_bytes":%d,"name":%s,"request_id":%s,"stat":%s,"stored_bytes":%d,"vault":%s,"version":%d}' % (
        dedup_bytes, e(name).encode(), e(request_id).encode(), stat, stored_bytes, e(vault).encode(), version)


def _manifest_entries(manifest: bytes, what: str = "") -> list[tuple[bytes, int]]:
    if len(manifest) % _ENTRY.size:
        raise IntegrityError(f"{what}: the manifest is damaged ({len(manifest)} bytes is not a whole number of entries)")
    return [(cid, n) for cid, n in _ENTRY.iter_unpack(manifest)]


def _check_retain_until(retain_until: int) -> None:
    if not 0 <= retain_until <= MAX_RETAIN_UNTIL:
        raise InvalidArgument(
            f"retain_until must be a unix time in seconds from 0 to {MAX_RETAIN_UNTIL} "
            f"(9999-12-31T23:59:59Z), got {retain_until}")


def _check_record(raw: bytes) -> tuple[dict[str, Any], int, bytes]:
    """A version record with the size and SHA-256 it states, for ``check``; damage is an
    IntegrityError whose message starts with "record damaged"."""
    rec = _json_object(raw)
    if rec is None:
        raise IntegrityError("record damaged: it is not a JSON object")
    size = rec.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IntegrityError("record damaged: it holds no valid size")
    digest = rec.get("sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise IntegrityError("record damaged: its SHA-256 is not 64 hexadecimal digits")
    return rec, size, bytes.fromhex(digest)


def _utc(seconds: int) -> str:
    """A unix time as an ISO 8601 UTC date, or as raw seconds when no date can name it."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (unix seconds)"


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object ``raw`` holds, or None when it holds anything else: not JSON, nested deeper
    than the parser goes (RecursionError), or JSON that is not an object."""
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):  # a UnicodeError is a ValueError
        return None
    return rec if isinstance(rec, dict) else None


def _record(raw: bytes, what: str) -> dict[str, Any]:
    """A stored JSON record; damage is an IntegrityError naming ``what``, never an internal error."""
    rec = _json_object(raw)
    if rec is None:
        raise IntegrityError(f"{what}: its stored record is damaged")
    return rec


def _version_facts(vault: str, name: str, version: int, rec: dict[str, Any]) -> list[Any]:
    """What a version's MAC covers besides its manifest: the facts fixed when it was deposited, in
    a fixed order (metadata as its count, then keys and values by key). Retention and legal hold,
    which change later, are left out."""
    md = rec["metadata"]
    return [vault, name, version, rec["object_id"], rec["size"], rec["sha256"], rec["content_type"], len(md),
            *[x for k in sorted(md) for x in (k, md[k])], rec["depositor"], rec["deposited_at_ns"],
            rec.get("journal_index"), rec.get("request_id")]


def _check_version_mac(keys: VaultKeys, vault: str, name: str, version: int, rec: dict[str, Any],
                    manifest: bytes) -> None:
    """IntegrityError unless the version record and manifest are those written at the deposit (see
    ``content.version_mac``). A record without a MAC is refused as damaged: nothing tells it apart
    from a record whose MAC was removed."""
    what = f"object {name!r} version {version} in vault {vault!r}"
    mac = rec.get("mac")
    if not isinstance(mac, str):
        raise IntegrityError(f"the version record of {what} carries no MAC: altered in storage, or "
                             "written by a vaultd that did not authenticate version records")
    try:
        ok = secrets.compare_digest(C.version_mac(keys, _version_facts(vault, name, version, rec), manifest),
                                    bytes.fromhex(mac))
    except (KeyError, TypeError, AttributeError, ValueError, struct.error):
        ok = False  # a fact of the wrong type or out of range: never what a deposit wrote
    if not ok:
        raise IntegrityError(f"the version record of {what} does not match its MAC: altered in storage")


class Vaults:
    def __init__(
        self,
        store: LmdbStore,
        *,
        policy: Policy,
        key_provider: KeyProvider,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        leaf_factory: Callable[..., bytes] | None = None,
        journal: Any = None,
        metrics: Any = None,
    ) -> None:
        self.store = store
        # vaultd.metrics.Metrics of the daemon (or None): Rust call sizes and times, integrity errors
        self.metrics = metrics
        self.policy = policy
        self.keys = key_provider
        self.max_object_size = max_object_size
        self._leaf = leaf_factory
        # The journal hook the store appends leaves through (vaultd.journal.hook.JournalHook), when
        # there is one: evidence of earlier operations (an idempotent retry, signatures) comes from it.
        self.journal_hook = journal
        self.denials = DenialBudget()
        self.deferred_reads = DeferredReadLeaves()
        if hasattr(store, "open_db"):  # named databases are opened at start, outside any write
            from vaultd.core.signatures import signatures_db

            signatures_db(self)
        self._cache: dict[str, tuple[VaultKeys, str]] = {}  # vault -> (keys, incarnation)
        self._recover()
        self._init_stats()
        self._note_kek_since()

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self.store.close()
        self.keys.close()
        self._cache.clear()

    def ready(self) -> bool:
        return self.store.is_open() and self.keys.ready()

    def _recover(self) -> None:
        """Roll back the staged parts of deposits a crash interrupted, and finish removing the
        records of vaults whose destruction it interrupted."""
        with self.store.read() as r:
            pending = list(r.iter_pending())
            purging = list(r.iter_purging())
        for key, rec in pending:

            def unit(t: WriteTxn, key: bytes = key, rec: bytes = rec) -> None:
                self._rollback_part(t, key, rec)

            self.store.write(unit)
        for vault in purging:
            log.info("finishing the removal of destroyed vault %r", vault)
            self._purge(vault)

    # --- counters kept with the data (the ``stats`` record) ---------------------------------------
    # ``logical_bytes`` (sizes of live versions as deposited), ``vault_bytes/<vault>`` (the same per
    # vault, so destroying a vault subtracts its share) and ``kek/<version>`` (vaults whose keys that
    # master key version wraps) change in the transaction of the deposit, destroy, creation, rotation
    # or vault destruction they count, so a metrics scrape reads them instead of scanning.

    def _init_stats(self) -> None:
        """Count once (a store made before the counters existed), then keep them up to date."""
        with self.store.read() as r:
            if not hasattr(r, "get_stat") or r.get_stat(_STATS_READY) is not None:
                return
        def unit(t: WriteTxn) -> None:
            if t.get_stat(_STATS_READY) is not None:  # type: ignore[attr-defined]
                return
            total = 0
            for vault, raw in t.iter_vaults():
                try:
                    kek = int(json.loads(raw)["kek_version"])
                except (ValueError, KeyError, TypeError):
                    kek = 0
                t.add_stat(f"kek/{kek}", 1)  # type: ignore[attr-defined]
                size = 0
                for nm, _ in t.iter_objects(vault):
                    for _, vraw in t.iter_versions(vault, nm):
                        try:
                            size += int(json.loads(vraw)["size"])
                        except (ValueError, KeyError, TypeError):
                            pass
                t.put_stat(f"vault_bytes/{vault}", size)  # type: ignore[attr-defined]
                total += size
            t.put_stat("logical_bytes", total)  # type: ignore[attr-defined]
            t.put_stat(_STATS_READY, 1)  # type: ignore[attr-defined]

        self.store.write(unit)

    def _note_kek_since(self) -> None:
        """Record when the current master key version came into use (``kek_since/<version>``, unix
        seconds), if not yet known: the first open of a store, or a rotation made by an earlier run
        before this was kept. Rotation records it as it happens."""
        current = self.keys.current_version()
        with self.store.read() as r:
            if not hasattr(r, "get_stat") or r.get_stat(f"kek_since/{current}") is not None:
                return

        def unit(t: WriteTxn) -> None:
            if t.get_stat(f"kek_since/{current}") is None:  # type: ignore[attr-defined]
                t.put_stat(f"kek_since/{current}", int(time.time()))  # type: ignore[attr-defined]

        self.store.write(unit)

    def _integrity_error(self, where: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.integrity_error(where, n)

    def storage_counters(self) -> dict[str, float]:
        """What the metrics read at each scrape: ``logical_bytes`` and ``kek_versions_in_use`` (one
        short read transaction over the ``stats`` record)."""
        with self.store.read() as r:
            if not hasattr(r, "get_stat"):
                return {}
            logical = r.get_stat("logical_bytes") or 0
            in_use = sum(1 for _, n in r.iter_stats("kek/") if n > 0)
            since = r.get_stat(f"kek_since/{self.keys.current_version()}")
        out = {"logical_bytes": float(logical), "kek_versions_in_use": float(in_use)}
        if since is not None:
            out["kek_current_since"] = float(since)
        return out

    @staticmethod
    def _rollback_part(t: WriteTxn, key: bytes, rec: bytes) -> None:
        vault_b, _, ids = rec.partition(b"\x00")
        vault = vault_b.decode("ascii")
        if t.delete_pending(key):
            for i in range(0, len(ids), 32):
                try:
                    t.drop_chunk_ref(vault, ids[i : i + 32])
                except KeyError:
                    pass

    # --- authorization -------------------------------------------------------------------------

    def authorize(self, actor: Identity, verb: str, vault: str | None) -> None:
        """The policy's decision; a refusal is a journal entry (operation ``verb``, outcome
        ``denied``), within the bound of ``DenialBudget``, then raised."""
        try:
            self.policy.check(actor, verb, vault)
        except PermissionDenied:
            self._journal_denied(actor, verb, vault)
            raise

    def _journal_denied(self, actor: Identity, verb: str, vault: str | None) -> None:
        if not self._leaf:
            return
        suppressed = self.denials.take(str(actor))
        if suppressed is None:
            return
        extra: dict[str, Any] = {"suppressed": suppressed} if suppressed else {}
        try:
            leaf = self._leaf(verb, actor=actor, vault=vault or "", outcome="denied", **extra)
        except InvalidArgument:  # a vault id no leaf can hold (too long, control characters)
            leaf = self._leaf(verb, actor=actor, vault="", outcome="denied", vault_invalid="1", **extra)

        def unit(t: WriteTxn) -> None:
            t.journal(leaf)

        try:  # waited for: a flood of refusals is paced by the writer, and the refusal stands anyway
            self.store.write(unit, len(leaf))
        except Exception:
            log.exception("journaling a denied %s failed", verb)

    # --- keys ----------------------------------------------------------------------------------

    def _vault_keys(self, vault: str) -> VaultKeys:
        return self._vault_keys_of(vault)[0]

    def _vault_keys_of(self, vault: str) -> tuple[VaultKeys, str]:
        """The vault's keys and its incarnation (see ``_incarnation``): which vault of that id they
        belong to, so that a unit can tell when the vault was destroyed and created again."""
        cached = self._cache.get(vault)
        if cached is not None:
            return cached
        with self.store.read() as r:
            raw = r.get_vault(vault)
        if raw is None:
            raise NotFound(f"vault {vault!r} does not exist")
        rec = json.loads(raw)
        w = WrappedVaultKeys(
            kek_version=rec["kek_version"],
            data_key=base64.b64decode(rec["data_key"]),
            dedup_key=base64.b64decode(rec["dedup_key"]),
            data_key_version=rec["data_key_version"],
        )
        k = unwrap_vault_keys(self.keys, vault, w)
        incarnation = _incarnation(rec)
        with self.store.read() as r:  # not cached if the vault was destroyed while they were unwrapped
            now = r.get_vault(vault)
        if now is not None and _incarnation(json.loads(now)) == incarnation:
            self._cache[vault] = (k, incarnation)
        return k, incarnation

    # --- create --------------------------------------------------------------------------------

    def create_vault(self, actor: Identity, vault: str) -> VaultInfo:
        self.authorize(actor, "create", vault)
        validate_vault_id(vault)
        keys = new_vault_keys()
        w = wrap_vault_keys(self.keys, vault, keys)
        now = _now_ns()
        rec = _dumps(
            {
                "created_at_ns": now,
                "incarnation": secrets.token_hex(16),
                "kek_version": w.kek_version,
                "data_key": _b64(w.data_key),
                "dedup_key": _b64(w.dedup_key),
                "data_key_version": w.data_key_version,
                "creator": str(actor),
            }
        )

        def unit(t: WriteTxn) -> None:
            if t.get_vault(vault) is not None:
                raise AlreadyExists(f"vault {vault!r} exists already")
            if t.is_purging(vault):
                raise FailedPrecondition(f"vault {vault!r} is still being erased; retry shortly")
            if w.kek_version not in self.keys.versions():  # retired since the keys were wrapped
                raise Aborted(f"master key version {w.kek_version} was retired meanwhile; retry")
            t.put_vault(vault, rec)
            _count(t, f"kek/{w.kek_version}", 1)
            if self._leaf:
                t.journal(self._leaf("create_vault", actor=actor, vault=vault))

        self.store.write(unit)
        self._cache.pop(vault, None)
        return VaultInfo(vault=vault, created_at_ns=now, key_version=w.kek_version)

    # --- deposit -------------------------------------------------------------------------------

    def deposit(self, actor: Identity, header: DepositHeader, data: Iterable[bytes | memoryview]) -> Receipt:
        d = self._prepare_deposit(actor, header, data)
        if isinstance(d, Receipt):
            return d
        d.submit()
        return d.finish()

    def deposit_batch(self, actor: Identity, items: Sequence[tuple[DepositHeader, bytes]]) -> list[Receipt | Exception]:
        """Deposit many small documents (``(header, data)``, data of at most ``MAX_PIECE`` bytes each),
        each an independent deposit with exactly the rules, evidence and errors of ``deposit``: one
        result per item, in order, its ``Receipt`` or the exception that refused it (nothing of that
        item is stored). What differs is the cost: every item is prepared (authorized, validated,
        cut, sealed) first, then all their final write units are submitted to the writer together,
        so that they commit in one group (one transaction, one fsync), and only then waited for.

        At most ``MAX_BATCH_ITEMS`` items (InvalidArgument, nothing stored, over it)."""
        if len(items) > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                f"a deposit batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}; nothing was "
                "stored. Split it into several batches")
        steps: list[Receipt | _Deposit | Exception] = []
        try:
            for header, data in items:
                try:
                    steps.append(self._prepare_deposit(actor, header, [data] if data else []))
                except Exception as e:
                    steps.append(_item_error(e))
            for i, step in enumerate(steps):
                if isinstance(step, _Deposit):
                    try:
                        step.submit()
                    except Exception as e:
                        steps[i] = _item_error(e)
            results: list[Receipt | Exception] = []
            for i, step in enumerate(steps):
                if isinstance(step, _Deposit):
                    try:
                        step = step.finish()
                    except Exception as e:
                        step = _item_error(e)
                    steps[i] = step
                results.append(step)
            return results
        except BaseException:
            for step in steps:  # interrupted: whatever was not waited for is undone
                if isinstance(step, _Deposit):
                    step.rollback()
            raise

    def _prepare_deposit(
        self, actor: Identity, header: DepositHeader, data: Iterable[bytes | memoryview]
    ) -> Receipt | _Deposit:
        """A deposit up to its final write unit: authorized, validated, its data cut, identified and
        sealed, its digest checked; the ``_Deposit`` to ``submit`` then ``finish``. A retry of an
        earlier request id is answered here with that request's receipt (the data is consumed,
        nothing is stored). Anything that fails rolls back what was staged."""
        self.authorize(actor, "deposit", header.vault)
        vault = validate_vault_id(header.vault)
        name = validate_name(header.name)
        metadata = validate_metadata(header.metadata)
        if len(header.content_type.encode()) > MAX_CONTENT_TYPE:
            raise InvalidArgument(f"content type exceeds {MAX_CONTENT_TYPE} bytes")
        if header.expected_sha256 is not None and len(header.expected_sha256) != 32:
            raise InvalidArgument("expected SHA-256 must be 32 bytes")
        if header.request_id is not None and not 1 <= len(header.request_id.encode()) <= MAX_REQUEST_ID:
            raise InvalidArgument(f"request id must be 1 to {MAX_REQUEST_ID} bytes")
        if header.retain_until is not None:
            _check_retain_until(header.retain_until)
        keys, incarnation = self._vault_keys_of(vault)
        actor_s = str(actor)
        if header.request_id is not None:
            with self.store.read() as r:
                prev = r.get_request(vault, actor_s, header.request_id)
            if prev is not None:
                h = C.Sha256()
                for piece in data:  # the stream is consumed, nothing is stored
                    h.update(piece)
                return self._same_request(prev, name, h.digest())
        d = _Deposit(self, vault, keys, incarnation)
        try:
            for piece in data:
                if len(piece) > MAX_PIECE:
                    raise InvalidArgument(f"a data message may carry at most {MAX_PIECE} bytes, got {len(piece)}")
                d.feed(piece)
                if d.size > self.max_object_size:
                    raise ResourceExhausted(
                        f"the object exceeds the maximum size of {self.max_object_size} bytes"
                    )
            d.finish_chunks()
            digest = d.hasher.digest()
            if header.expected_sha256 is not None and not secrets.compare_digest(digest, header.expected_sha256):
                raise InvalidArgument(
                    "the data does not match the expected SHA-256 (got "
                    f"{digest.hex()}, expected {header.expected_sha256.hex()}); nothing was stored"
                )
        except BaseException:
            d.rollback()
            raise
        d.checked(actor, header, name, metadata, digest)
        return d

    def _same_request(self, raw: bytes, name: str, digest: bytes) -> Receipt:
        """The receipt of an earlier deposit with the same request id, if this one is the same deposit
        (same name and content); a request id reused for another deposit is refused, never answered
        with a receipt for content that was not sent."""
        receipt = self._receipt_from_request(raw)
        if receipt.stat.name != name or not secrets.compare_digest(receipt.stat.sha256, digest):
            raise InvalidArgument(
                "this request id was already used for another deposit (other name or content); "
                "nothing was stored. Use a new request id for a new deposit")
        return receipt

    def _receipt_from_request(self, raw: bytes) -> Receipt:
        """The first receipt of a deposit retried with its request id, with its evidence rebuilt from
        the journal (the deposit's leaf, with an inclusion proof to the latest signed checkpoint)."""
        rec = json.loads(raw)
        stat = _stat_from(rec["vault"], rec["name"], rec["version"], rec["stat"])
        evidence = base64.b64decode(rec["evidence"]) if rec.get("evidence") else None
        if evidence is None and self.journal_hook is not None:
            try:
                # through the version record's leaf index when the journal is wired to it, checked
                evidence = self.journal_hook.journal.object_receipt(rec["vault"], rec["name"], rec["version"])
            except Exception:  # the deposit stands; its evidence can be fetched again with GetReceipt
                log.exception("rebuilding the evidence of a retried deposit failed")
        return Receipt(
            stat=stat,
            request_id=rec["request_id"],
            deduplicated_bytes=rec["dedup_bytes"],
            stored_bytes=rec["stored_bytes"],
            evidence=evidence,
        )

    # --- read side -----------------------------------------------------------------------------

    def _version(self, r: ReadTxn, vault: str, name: str, version: int | None) -> tuple[int, dict[str, Any]]:
        if r.get_vault(vault) is None:
            raise NotFound(f"vault {vault!r} does not exist")
        if version is None:
            head = r.get_object(vault, name)
            if head is None or _record(head, f"object {name!r}").get("latest") == 0:
                raise NotFound(f"object {name!r} does not exist in vault {vault!r}")
            version = int(_record(head, f"object {name!r}")["latest"])
        elif version < 1:
            raise InvalidArgument("version must be 1 or more")
        raw = r.get_version(vault, name, version)
        if raw is None:
            raise NotFound(f"version {version} of object {name!r} does not exist in vault {vault!r}")
        return version, _record(raw, f"object {name!r} version {version} in vault {vault!r}")

    def deposit_leaf_index(self, vault: str, name: str, version: int) -> int | None:
        """The journal index of the leaf recording this version's deposit, kept in the version's
        record (None: no such version, or one deposited before records kept it). For the journal's
        ``deposit_index``; callers authorize."""
        with self.store.read() as r:
            raw = r.get_version(vault, name, version)
        if raw is None:
            return None
        index = _record(raw, f"object {name!r} version {version} in vault {vault!r}").get("journal_index")
        return index if isinstance(index, int) else None

    def stat(self, actor: Identity, vault: str, name: str, version: int | None = None) -> ObjectStat:
        self.authorize(actor, "stat", vault)
        validate_vault_id(vault)
        validate_name(name)
        keys = self._vault_keys(vault)
        with self.store.read() as r:
            v, rec = self._version(r, vault, name, version)
            manifest = r.get_manifest(vault, name, v) or b""
        self._verify_version(keys, vault, name, v, rec, manifest, "stat")
        return _stat_from(vault, name, v, rec)

    def _verify_version(self, keys: VaultKeys, vault: str, name: str, version: int, rec: dict[str, Any],
                        manifest: bytes, where: str) -> None:
        """``_check_version_mac``, its failure counted as an integrity error found by ``where``."""
        try:
            _check_version_mac(keys, vault, name, version, rec, manifest)
        except IntegrityError:
            self._integrity_error(where)
            raise

    def read(
        self,
        actor: Identity,
        vault: str,
        name: str,
        version: int | None = None,
        offset: int = 0,
        length: int | None = None,
        frame: int | None = None,
    ) -> tuple[ObjectStat, Iterator[bytes]]:
        """The object's metadata and its bytes, in pieces of at most MAX_PIECE bytes. With ``frame``
        (a protobuf field number, 1 to 15), each piece comes as that length-delimited field around
        the bytes: an encoded message the transport sends as it is."""
        self.authorize(actor, "read", vault)
        validate_vault_id(vault)
        validate_name(name)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgument("offset and length must not be negative")
        keys = self._vault_keys(vault)
        with self.store.read() as r:
            v, rec = self._version(r, vault, name, version)
            manifest = r.get_manifest(vault, name, v) or b""
        self._verify_version(keys, vault, name, v, rec, manifest, "read")  # before any byte is served
        stat = _stat_from(vault, name, v, rec)
        if offset > stat.size:
            raise InvalidArgument(f"offset {offset} is past the end of the object ({stat.size} bytes)")
        end = stat.size if length is None else min(stat.size, offset + length)
        entries = _manifest_entries(manifest, f"object {name!r} version {v} in vault {vault!r}")
        stream = self._stream(vault, name, v, keys, entries, offset, end, frame)
        if not self._leaf:
            return stat, stream
        # The read is journaled as it starts: its leaf goes to the writer now (group-committed with
        # everything else) while the first chunks are opened, and no byte is served before the leaf is
        # durable. When the store cannot commit at all (disk or map full, failed fsync), reads must keep
        # working: the leaf is then kept in a bounded backlog, committed with the next read that
        # commits, and the read is served; with the backlog full, the read is refused.
        extra: dict[str, Any] = {}
        if stat.depositor != str(actor):
            extra["depositor"] = stat.depositor  # a read by a recipient: proof of delivery
        if (offset, end) != (0, stat.size):
            extra["range"] = f"{offset}-{end}"
        leaf = self._leaf("read", actor=actor, vault=vault, name=name, version=v, sha256=stat.sha256, **extra)
        entry = _ReadEntry(leaf, self.deferred_reads)
        entry.submitted(self.store.submit(entry.unit, len(leaf) * (1 + len(self.deferred_reads))))
        return stat, _journaled(entry, stream, self.deferred_reads)

    def _stream(
        self, vault: str, name: str, version: int, keys: VaultKeys, entries: list[tuple[bytes, int]], start: int,
        end: int, frame: int | None = None,
    ) -> Iterator[bytes]:
        prefix = C.aad_prefix(vault, keys.data_key_version)
        pos = 0
        batch: list[tuple[bytes, int, int, int]] = []  # (id, lo, hi, chunk length): slice within the chunk
        batch_bytes = 0

        def groups() -> list[int]:
            """Whole chunks are opened joined into pieces of at most MAX_PIECE bytes, one Read message
            each (about 1 MiB where chunks average 256 KiB: a quarter of the messages, with no copy to
            join them); a chunk read in part is a group of its own, sliced after."""
            out: list[int] = []
            size = 0  # of the last group while it can take more whole chunks, else 0
            for _, lo, hi, n in batch:
                whole = (lo, hi) == (0, n)
                if whole and size and size + n <= MAX_PIECE:
                    out[-1] += 1
                    size += n
                else:
                    out.append(1)
                    size = n if whole else 0
            return out

        def flush() -> Iterator[bytes]:
            grouped = groups()
            # The sealed chunks are opened straight from the map (views valid in this read
            # transaction only), not copied out of it first.
            with self.store.read() as r:
                sealed = [r.chunk_view(vault, cid) for cid, _, _, _ in batch]
                missing = next((cid for (cid, _, _, _), s in zip(batch, sealed) if s is None), None)
                try:
                    if missing is None:
                        plains = C.open_many(keys, prefix, [cid for cid, _, _, _ in batch], sealed,  # type: ignore[arg-type]
                                             self.metrics, grouped, frame)
                except IntegrityError as e:
                    self._integrity_error("read")
                    raise IntegrityError(
                        f"object {name!r} version {version} in vault {vault!r} is damaged: {e}") from None
                finally:
                    del sealed  # no view into the map outlives the transaction
            if missing is not None:
                with self.store.read() as r:
                    if r.get_version(vault, name, version) is None:
                        raise NotFound(f"object {name!r} version {version} was destroyed while being read")
                self._integrity_error("read")
                raise IntegrityError(f"object {name!r} version {version} in vault {vault!r} is damaged: "
                                     f"its chunk {missing.hex()[:16]} is missing")
            first = 0
            for g, plain in zip(grouped, plains, strict=True):
                _, lo, hi, n = batch[first]
                size = sum(e[3] for e in batch[first:first + g])
                head = 0 if frame is None else 1 + varint_len(size)
                if len(plain) != head + size:
                    self._integrity_error("read")
                    raise IntegrityError(f"object {name!r} version {version} in vault {vault!r} is damaged: "
                                         "a chunk's length differs from its manifest entry")
                first += g
                if g > 1 or (lo, hi) == (0, n):
                    yield plain
                elif frame is None:
                    yield plain[lo:hi]
                else:  # a chunk read in part: its slice framed again (at most one chunk at each end)
                    yield length_delimited(frame, memoryview(plain)[head + lo:head + hi])

        for cid, n in entries:
            lo, hi = pos, pos + n
            pos = hi
            if hi <= start:
                continue
            if lo >= end:
                break
            batch.append((cid, max(start, lo) - lo, min(end, hi) - lo, n))
            batch_bytes += n
            if batch_bytes >= READ_BATCH:
                yield from flush()
                batch, batch_bytes = [], 0
        if batch:
            yield from flush()

    def list(
        self,
        actor: Identity,
        vault: str,
        prefix: str = "",
        page_size: int = 100,
        page_token: str = "",
        versions: bool = False,
        max_bytes: int | None = None,
    ) -> tuple[list[ObjectStat], str]:
        """One page of the objects (or, with ``versions``, of every version) whose name starts with
        ``prefix``, in key order, and the token of the next page ("" after the last one). Each entry's
        version record passes its MAC first (IntegrityError, DATA_LOSS, naming it otherwise). The page
        ends after ``page_size`` entries or, with ``max_bytes``, before the entry that would take the
        entries' encoded size (``stat_wire_size``) past it; it always holds at least one entry when
        one is left. A token resumes right after the entry it was made for, by key."""
        self.authorize(actor, "list", vault)
        validate_vault_id(vault)
        if not 1 <= page_size <= 1000:
            raise InvalidArgument("page size must be 1 to 1000")
        scope = _list_scope(vault, prefix, versions)
        after: tuple[str, int] | None = _page_token_in(page_token, scope, prefix) if page_token else None
        out: list[ObjectStat] = []
        used = 0
        keys = self._vault_keys(vault)

        def verified(r: ReadTxn, nm: str, ver: int, raw: bytes) -> ObjectStat:
            """The entry of a version whose record and manifest pass their MAC, as Stat serves it."""
            rec = _record(raw, f"object {nm!r} version {ver} in vault {vault!r}")
            self._verify_version(keys, vault, nm, ver, rec, r.get_manifest(vault, nm, ver) or b"", "list")
            return _stat_from(vault, nm, ver, rec)

        def fits(stat: ObjectStat) -> bool:
            nonlocal used
            if max_bytes is not None:
                n = stat_wire_size(stat)
                if out and used + n > max_bytes:
                    return False
                used += n
            out.append(stat)
            return True

        more = False
        with self.store.read() as r:
            if r.get_vault(vault) is None:
                raise NotFound(f"vault {vault!r} does not exist")
            if versions:
                def pending() -> Iterator[tuple[str, Iterator[tuple[int, bytes]]]]:
                    if after is not None:  # the versions of the last page's last object not yet listed
                        yield after[0], r.iter_versions(vault, after[0], after=after[1])
                    for nm, _ in r.iter_objects(vault, prefix, None if after is None else after[0]):
                        yield nm, r.iter_versions(vault, nm)

                for nm, vers in pending():
                    for ver, raw in vers:
                        if len(out) == page_size or not fits(verified(r, nm, ver, raw)):
                            more = True
                            break
                    if more:
                        break
            else:
                for nm, head in r.iter_objects(vault, prefix, None if after is None else after[0]):
                    latest_v = json.loads(head)["latest"]
                    if latest_v == 0:
                        continue
                    if len(out) == page_size:
                        more = True
                        break
                    latest = r.get_version(vault, nm, latest_v)
                    if latest is not None and not fits(verified(r, nm, latest_v, latest)):
                        more = True
                        break
        token = ""
        if more and out:
            last = out[-1]
            token = _page_token_out(scope, last.name, last.version if versions else 0)
        return out, token

    def count(self, actor: Identity, vault: str, prefix: str = "") -> int:
        self.authorize(actor, "count", vault)
        validate_vault_id(vault)
        n = 0
        with self.store.read() as r:
            if r.get_vault(vault) is None:
                raise NotFound(f"vault {vault!r} does not exist")
            for _, head in r.iter_objects(vault, prefix):
                if json.loads(head)["latest"]:
                    n += 1
        return n

    # --- destroy, retention, hold --------------------------------------------------------------

    def destroy(self, actor: Identity, vault: str, name: str, version: int | None = None) -> DestroyReceipt:
        self.authorize(actor, "destroy", vault)
        validate_vault_id(vault)
        validate_name(name)
        now = _now_ns()

        def unit(t: WriteTxn) -> int:
            v, rec = self._version(t, vault, name, version)
            kept = _kept(rec, now, f"object {name!r} version {v}")
            if kept is not None:
                raise FailedPrecondition(f"object {name!r} version {v} is {kept[0]}; {kept[1]}")
            manifest = t.get_manifest(vault, name, v) or b""
            for cid, _ in _manifest_entries(manifest):
                try:
                    t.drop_chunk_ref(vault, cid)
                except KeyError:
                    pass
            t.delete_version(vault, name, v)
            _count(t, "logical_bytes", -int(rec.get("size", 0)))
            _count(t, f"vault_bytes/{vault}", -int(rec.get("size", 0)))
            head = json.loads(t.get_object(vault, name) or b'{"next":1,"latest":0}')
            if head["latest"] == v:
                head["latest"] = next((ver for ver, _ in t.iter_versions(vault, name, reverse=True)), 0)
                t.put_object(vault, name, _dumps(head))
            if self._leaf:
                t.journal(self._leaf("destroy", actor=actor, vault=vault, name=name, version=v))
            return v

        c = self.store.write(unit)
        return DestroyReceipt(vault, name, c.value, now, str(actor), c.evidence)

    def _update_version(
        self, actor: Identity, verb: str, vault: str, name: str, version: int | None, change: Callable[[dict[str, Any]], None]
    ) -> ObjectStat:
        self.authorize(actor, verb, vault)
        validate_vault_id(vault)
        validate_name(name)
        keys = self._vault_keys(vault)

        def unit(t: WriteTxn) -> ObjectStat:
            v, rec = self._version(t, vault, name, version)
            manifest = t.get_manifest(vault, name, v) or b""
            # a retention date or a hold is set only on a version whose record is the deposit's
            self._verify_version(keys, vault, name, v, rec, manifest, "update")
            change(rec)
            t.put_version(vault, name, v, _dumps(rec), manifest)
            if self._leaf:
                # the new state is in the leaf: retain_until (unix seconds) or hold (1 placed, 0 lifted)
                state = {"retain_until": rec.get("retain_until")} if verb == "retention" else {
                    "hold": int(bool(rec.get("legal_hold")))}
                t.journal(self._leaf(verb, actor=actor, vault=vault, name=name, version=v,
                                     sha256=bytes.fromhex(rec["sha256"]), **state))
            return _stat_from(vault, name, v, rec)

        return self.store.write(unit).value

    def set_retention(
        self, actor: Identity, vault: str, name: str, retain_until: int, version: int | None = None
    ) -> ObjectStat:
        _check_retain_until(retain_until)

        def change(rec: dict[str, Any]) -> None:
            cur = rec.get("retain_until")
            if cur is not None and retain_until < cur:
                raise FailedPrecondition(
                    f"a retention date can only be extended (it is {cur}, asked {retain_until})"
                )
            rec["retain_until"] = retain_until

        return self._update_version(actor, "retention", vault, name, version, change)

    def set_legal_hold(self, actor: Identity, vault: str, name: str, hold: bool, version: int | None = None) -> ObjectStat:
        def change(rec: dict[str, Any]) -> None:
            rec["legal_hold"] = bool(hold)

        return self._update_version(actor, "hold", vault, name, version, change)

    # --- check ---------------------------------------------------------------------------------

    def check(self, actor: Identity, vault: str, name: str | None = None, version: int | None = None,
              *, record_errors: bool = True, still_wanted: Callable[[], None] | None = None) -> CheckReport:
        """Open every chunk of the version(s) and compare sizes and SHA-256: one version of ``name``,
        every version of it (``version`` None), or every version in the vault (``name`` None too; a
        version without a name is refused). Problems count as integrity errors found by ``check``
        unless ``record_errors`` is off (the scrub counts its own); at most ``MAX_CHECK_PROBLEMS``
        are listed, the others only counted (``problems_omitted``).

        Versions are read a page at a time in short read transactions and checked as they come. A
        version destroyed while the check runs is skipped (NotFound when it is the one version asked
        for): its chunks going away is no damage. ``still_wanted`` is called before each version
        (and every few chunks of a large one); it raises (Cancelled, DeadlineExceeded) to stop."""
        if not self.policy.allows(actor, "check", vault):
            try:
                self.policy.check(actor, "admin", None)
            except PermissionDenied:
                self._journal_denied(actor, "check", vault)
                raise
        validate_vault_id(vault)
        if name is None and version is not None:
            raise InvalidArgument("a version can only be checked with the name of its object; give the name too")
        if name is not None:
            validate_name(name)
        if version is not None and version < 1:
            raise InvalidArgument("version must be 1 or more")
        keys = self._vault_keys(vault)
        prefix = C.aad_prefix(vault, keys.data_key_version)
        problems: list[Problem] = []
        omitted = 0
        opened: set[bytes] = set()
        objects = nbytes = 0
        for nm, v, raw, manifest in self._check_targets(vault, name, version):
            if still_wanted is not None:
                still_wanted()
            found = self._check_version(keys, prefix, vault, nm, v, raw, manifest, still_wanted)
            if found is None:  # destroyed while the check ran
                if version is not None:
                    raise NotFound(f"version {v} of object {nm!r} in vault {vault!r} was destroyed while it was checked")
                continue
            size, chunks, mine, more = found
            objects += 1
            nbytes += size
            opened |= chunks
            listed = mine[: max(0, MAX_CHECK_PROBLEMS - len(problems))]
            problems.extend(listed)
            omitted += len(mine) - len(listed) + more
        if (problems or omitted) and record_errors:
            self._integrity_error("check", len(problems) + omitted)
        return CheckReport(vault=vault, objects=objects, chunks=len(opened), bytes=nbytes, problems=problems,
                           problems_omitted=omitted)

    def _check_targets(self, vault: str, name: str | None, version: int | None) -> Iterator[tuple[str, int, bytes, bytes]]:
        """(name, version, record, manifest) of each version a check goes over, read ``CHECK_PAGE``
        versions at a time in short read transactions: none stays open while the caller checks (an
        old read transaction would keep LMDB from reusing the pages written since)."""
        if name is not None:
            with self.store.read() as r:
                if r.get_vault(vault) is None:
                    raise NotFound(f"vault {vault!r} does not exist")
                if version is not None:
                    raw = r.get_version(vault, name, version)
                    if raw is None:
                        raise NotFound(f"version {version} of object {name!r} does not exist in vault {vault!r}")
                    page = [(name, version, raw, r.get_manifest(vault, name, version) or b"")]
                else:
                    page = [(name, v, raw, r.get_manifest(vault, name, v) or b"")
                            for v, raw in r.iter_versions(vault, name)]
                    if not page:
                        raise NotFound(f"object {name!r} does not exist in vault {vault!r}")
            yield from page
            return
        after: str | None = None
        while True:
            page = []
            with self.store.read() as r:
                if after is None and r.get_vault(vault) is None:
                    raise NotFound(f"vault {vault!r} does not exist")
                for nm, _ in r.iter_objects(vault, after=after):
                    page.extend((nm, v, raw, r.get_manifest(vault, nm, v) or b"") for v, raw in r.iter_versions(vault, nm))
                    after = nm
                    if len(page) >= CHECK_PAGE:
                        break
            if not page:
                return
            yield from page

    def _check_version(
        self, keys: VaultKeys, prefix: bytes, vault: str, name: str, version: int, raw: bytes, manifest: bytes,
        still_wanted: Callable[[], None] | None,
    ) -> _Checked | None:
        """(bytes, chunk ids opened, problems (at most ``MAX_CHECK_PROBLEMS``), problems not listed)
        of one version; None when the version was destroyed while it was checked."""
        mine: list[Problem] = []
        more = 0

        def problem(what: str) -> None:
            nonlocal more
            if len(mine) < MAX_CHECK_PROBLEMS:
                mine.append(Problem(vault, name, version, what))
            else:
                more += 1

        expected: tuple[int, bytes] | None = None
        try:
            rec, size, digest = _check_record(raw)
            expected = (size, digest)
        except IntegrityError as e:
            problem(str(e))  # damaged beyond a MAC's say: its chunks are still opened and checked
        else:
            try:
                _check_version_mac(keys, vault, name, version, rec, manifest)
            except IntegrityError as e:
                problem(str(e))  # its facts and manifest are not the deposit's: nothing to check them against
                return 0, set(), mine, more
        try:
            entries = _manifest_entries(manifest, "manifest")
        except IntegrityError as e:
            problem(str(e))
            return 0, set(), mine, more
        h = C.Sha256()
        size = 0
        ok = True
        opened: set[bytes] = set()
        for i, (cid, n) in enumerate(entries):
            if still_wanted is not None and i and i % 64 == 0:
                still_wanted()
            sealed = self._stored_chunk(vault, cid)
            if sealed is None:
                with self.store.read() as r:
                    if r.get_version(vault, name, version) is None:
                        return None  # destroyed meanwhile: its chunks went with it
                problem(f"chunk {cid.hex()[:16]} is missing")
                ok = False
                continue
            try:
                plain = C.open_many(keys, prefix, [cid], [sealed], self.metrics)[0]
            except IntegrityError as e:
                problem(f"chunk {cid.hex()[:16]}: {e}")
                ok = False
                continue
            opened.add(cid)
            if len(plain) != n:
                problem(f"chunk {cid.hex()[:16]} has {len(plain)} bytes, manifest says {n}")
                ok = False
            h.update(plain)
            size += len(plain)
        if ok and expected is not None:
            if size != expected[0]:
                problem(f"size is {size}, recorded {expected[0]}")
            elif not secrets.compare_digest(h.digest(), expected[1]):
                problem("SHA-256 of the content differs from the recorded one")
        return size, opened, mine, more

    def _stored_chunk(self, vault: str, cid: bytes) -> bytes | None:
        """One sealed chunk as ``check`` reads it: in its own short read transaction."""
        with self.store.read() as r:
            return r.get_chunk(vault, cid)

    # --- keys: rotation and shredding ----------------------------------------------------------

    def rotate_keys(self, actor: Identity) -> int:
        self.authorize(actor, "admin", None)
        new = self.keys.rotate()
        with self.store.read() as r:
            vaults = [v for v, _ in r.iter_vaults()]

        def record(t: WriteTxn) -> None:
            if hasattr(t, "put_stat"):
                t.put_stat(f"kek_since/{new}", int(time.time()))
            if not vaults and self._leaf:  # nothing to re-wrap: the new master key version is still recorded
                t.journal(self._leaf("rotate_keys", actor=actor, vault="", version=new, vaults=0))

        self.store.write(record)
        for i in range(0, len(vaults), 64):
            group = vaults[i : i + 64]

            def unit(t: WriteTxn, group: list[str] = group) -> None:
                for vault in group:
                    raw = t.get_vault(vault)
                    if raw is None:
                        continue
                    rec = json.loads(raw)
                    w = WrappedVaultKeys(
                        rec["kek_version"],
                        base64.b64decode(rec["data_key"]),
                        base64.b64decode(rec["dedup_key"]),
                        rec["data_key_version"],
                    )
                    k = unwrap_vault_keys(self.keys, vault, w)
                    nw = wrap_vault_keys(self.keys, vault, k, new)
                    _count(t, f"kek/{rec['kek_version']}", -1)
                    _count(t, f"kek/{new}", 1)
                    rec.update(kek_version=new, data_key=_b64(nw.data_key), dedup_key=_b64(nw.dedup_key))
                    t.put_vault(vault, _dumps(rec))
                if self._leaf:
                    t.journal(self._leaf("rotate_keys", actor=actor, vault="", version=new, vaults=len(group)))

            self.store.write(unit)
        return new

    def retire_key(self, actor: Identity, version: int) -> None:
        """Remove master key version ``version`` from the provider for good, so a vault key wrapped
        under it (in an older backup, in LMDB's free pages) no longer unwraps here.

        Refused while any vault key is wrapped under it (FailedPrecondition: the ``kek/<version>``
        counter and a scan of the vault records, in the write transaction that retires it), for the
        current version (FailedPrecondition) and for a version the provider does not hold
        (NotFound). The provider retires the version inside that transaction, before the journal
        entry commits: as no vault uses it, a crash in between leaves every vault readable."""
        self.authorize(actor, "admin", None)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidArgument("a master key version is a positive integer")
        self.keys.check_retirable(version)

        def uses(raw: bytes) -> bool:
            # a record whose version cannot be read counts as using it: nothing is retired under it
            try:
                return int(json.loads(raw)["kek_version"]) == version
            except (ValueError, KeyError, TypeError):
                return True

        def unit(t: WriteTxn) -> None:
            counted = t.get_stat(f"kek/{version}") if hasattr(t, "get_stat") else None
            using = [vault for vault, raw in t.iter_vaults() if uses(raw)]
            if counted or using:
                n = max(int(counted or 0), len(using))
                raise FailedPrecondition(
                    f"master key version {version} still wraps the keys of {n} vault(s)"
                    + (f" (e.g. {using[0]!r})" if using else "")
                    + "; run vaultctl keys rotate and retry once it has re-wrapped every vault"
                )
            if version in self.keys.versions():  # a unit run again (full map) finds it retired
                self.keys.retire(version)
            if self._leaf:
                t.journal(self._leaf("retire_key", actor=actor, vault="", version=version))

        self.store.write(unit)

    def destroy_vault(self, actor: Identity, vault: str) -> None:
        """Shred the vault's keys (its content is unreadable at once), then remove its records.

        Refused (FailedPrecondition) while any version in the vault is under legal hold or retained,
        as ``destroy`` refuses it for one version. The vault is marked as being purged in the unit
        that shreds its keys; the mark goes with its last record, and a purge a crash interrupted is
        finished when the store is next opened. Until then the vault id cannot be created again."""
        self.authorize(actor, "admin", None)
        validate_vault_id(vault)
        self.store.write(self._shred_unit(actor, vault))
        self._cache.pop(vault, None)
        self._purge(vault)

    def _shred_unit(self, actor: Identity, vault: str) -> Callable[[WriteTxn], None]:
        def shred(t: WriteTxn) -> None:
            raw = t.get_vault(vault)
            if raw is None:
                raise NotFound(f"vault {vault!r} does not exist")
            _refuse_if_kept(t, vault, _now_ns())
            t.delete_vault(vault)
            t.put_purging(vault)
            if hasattr(t, "get_stat"):
                try:
                    _count(t, f"kek/{json.loads(raw)['kek_version']}", -1)
                except (ValueError, KeyError, TypeError):
                    pass
                share = t.get_stat(f"vault_bytes/{vault}") or 0
                _count(t, "logical_bytes", -share)
                t.put_stat(f"vault_bytes/{vault}", 0)  # type: ignore[attr-defined]
            t.delete_requests(vault)
            if self._leaf:
                t.journal(self._leaf("destroy_vault", actor=actor, vault=vault))

        return shred

    def _purge(self, vault: str) -> None:
        """Remove the records of a shredded vault, ``PURGE_BATCH`` a unit; the last unit clears the
        vault's purge mark."""

        def unit(t: WriteTxn) -> int:
            n = t.purge_vault(vault, PURGE_BATCH)
            if n < PURGE_BATCH:
                t.delete_purging(vault)
            return n

        while self.store.write(unit).value >= PURGE_BATCH:
            pass


def _kept(rec: dict[str, Any], now_ns: int, what: str) -> tuple[str, str] | None:
    """Why a version record may not be destroyed at ``now_ns`` (legal hold, then retention) and
    what lifts it; None when it may. A retention date that is not an integer is damage
    (IntegrityError naming ``what``), never a date that has passed."""
    if rec.get("legal_hold"):
        return "under legal hold", "lift the hold before destroying it"
    ru = rec.get("retain_until")
    if ru is None:
        return None
    if not isinstance(ru, int) or isinstance(ru, bool):
        raise IntegrityError(f"{what}: its stored retention date is damaged")
    if ru * 1_000_000_000 > now_ns:
        return f"retained until {_utc(ru)}", "it cannot be destroyed before then"
    return None


def _refuse_if_kept(t: ReadTxn, vault: str, now_ns: int) -> None:
    """FailedPrecondition when any version of ``vault`` is under legal hold or retained at ``now_ns``."""
    kept = 0
    first = ""
    for name, _ in t.iter_objects(vault):
        for v, raw in t.iter_versions(vault, name):
            what = f"object {name!r} version {v}"
            why = _kept(_record(raw, what), now_ns, what)
            if why is not None:
                kept += 1
                if not first:
                    first = f"{what} is {why[0]}"
    if kept:
        raise FailedPrecondition(
            f"vault {vault!r} cannot be destroyed: {kept} version(s) in it are under legal hold or "
            f"retained ({first}); lift the holds and wait for the retention dates before destroying it"
        )


class DenialBudget:
    """How many denied attempts are journaled: a token bucket per identity (``per_identity_rate`` a
    second, bursts of ``per_identity_burst``) and one for the whole daemon (``global_rate``,
    ``global_burst``). A flood of refused calls therefore grows the journal by at most about
    ``global_rate`` leaves a second, and never unnoticed: the refusals left out are counted per
    identity, and the next denied leaf of that identity carries the count (extra field
    ``suppressed``); ``suppressed_total`` counts them all. At most ``max_identities`` identities are
    tracked (the least recently refused is forgotten, its count carried to the next leaf of anyone).
    Identities are authenticated (certificates, session tokens), so this is not a way around it."""

    def __init__(self, *, per_identity_rate: float = 1.0, per_identity_burst: int = 20,
                 global_rate: float = 50.0, global_burst: int = 200, max_identities: int = 10_000) -> None:
        self.rate, self.burst = per_identity_rate, per_identity_burst
        self.global_rate, self.global_burst = global_rate, global_burst
        self.max_identities = max_identities
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # identity -> [tokens, time, suppressed]
        self._global = [float(global_burst), time.monotonic()]
        self._orphans = 0  # suppressed counts of identities forgotten
        self.suppressed_total = 0

    def take(self, identity: str) -> int | None:
        """None: do not journal this refusal (it is counted). Else journal it, with the returned count
        of refusals of this identity left out before it."""
        now = time.monotonic()
        with self._lock:
            b = self._buckets.pop(identity, None)
            if b is None:
                b = [float(self.burst), now, 0.0]
            b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
            b[1] = now
            g = self._global
            g[0] = min(self.global_burst, g[0] + (now - g[1]) * self.global_rate)
            g[1] = now
            self._buckets[identity] = b
            while len(self._buckets) > self.max_identities:
                _, old = self._buckets.popitem(last=False)
                self._orphans += int(old[2])
            if b[0] < 1.0 or g[0] < 1.0:
                b[2] += 1
                self.suppressed_total += 1
                return None
            b[0] -= 1.0
            g[0] -= 1.0
            count, b[2] = int(b[2]) + self._orphans, 0.0
            self._orphans = 0
            return count


def _immutable(piece: Any) -> bool:
    """``bytes``, or a view of ``bytes`` (a received message's data): nothing can change it later."""
    return type(piece) is bytes or (type(piece) is memoryview and type(piece.obj) is bytes)


class _Deposit:
    """The state of one deposit in progress: buffer, hasher, manifest, staged parts."""

    def __init__(self, vaults: Vaults, vault: str, keys: VaultKeys, incarnation: str) -> None:
        self.v = vaults
        self.vault = vault
        self.keys = keys
        self.incarnation = incarnation  # of the vault whose keys seal this deposit's chunks
        self.prefix = C.aad_prefix(vault, keys.data_key_version)
        self.hasher = C.Sha256()
        # A one-message document is ingested from the message's own bytes; longer ones are copied
        # once, into a reusable buffer, and the Rust core reads that buffer in place.
        self.first: bytes | memoryview | None = None
        self.buf: bytearray | None = None
        self.fill = 0
        self.size = 0
        self.manifest = bytearray()
        self.part: list[tuple[bytes, memoryview | None, int]] = []  # (id, stored form or None, plaintext len)
        self.part_bytes = 0
        self.seen: set[bytes] = set()  # ids this deposit already handles (sealed or known)
        self.staged: list[tuple[bytes, Future[Committed[tuple[int, int]]]]] = []
        self.dedup_bytes = 0
        self.stored_bytes = 0
        self.deposit_key = b""  # drawn when a first part is staged (deposits over one part only)
        # set by checked() and submit(), once every byte is in and checked
        self.actor: Identity
        self.header: DepositHeader
        self.name = ""
        self.metadata: dict[str, str] = {}
        self.digest = b""
        self.future: Future[Committed[Receipt]]
        self._final_size = 0

    def feed(self, piece: bytes | memoryview) -> None:
        if not piece:
            return
        self.size += len(piece)
        if self.buf is None:
            if self.first is None and _immutable(piece):  # safe to keep as it is
                self.first = piece
                return
            self.buf = _take_buffer()
            first, self.first = self.first, None
            if first is not None:
                self._append(first)
        self._append(piece)

    def _append(self, piece: bytes | memoryview) -> None:
        buf = self.buf
        assert buf is not None
        with memoryview(piece) as view:
            n, pos = len(view), 0
            while pos < n:
                k = min(len(buf) - self.fill, n - pos)
                buf[self.fill : self.fill + k] = view[pos : pos + k]  # the one copy of each byte
                self.fill += k
                pos += k
                if self.fill >= BUFFER:
                    self._process(final=False)

    def finish_chunks(self) -> None:
        self._process(final=True)
        self.release_buffer()

    def release_buffer(self) -> None:
        buf, self.buf, self.first, self.fill = self.buf, None, None, 0
        if buf is not None:
            _give_buffer(buf)

    def _process(self, final: bool) -> None:
        if self.buf is None:
            self._ingest(self.first if self.first is not None else b"", final)
            self.first = None
            return
        with memoryview(self.buf) as whole:
            with whole[: self.fill] as data:
                consumed = self._ingest(data, final)
            rest = self.fill - consumed
            if rest and consumed:  # the bytes after the last cut start the next buffer
                if rest <= consumed:
                    self.buf[:rest] = whole[consumed : self.fill]
                else:  # overlapping ranges
                    self.buf[:rest] = bytes(whole[consumed : self.fill])
        self.fill = rest
        if self.fill == len(self.buf):  # no cut in a full buffer (chunks larger than it): grow it
            self.buf.extend(bytes(BUFFER))

    def _ingest(self, data: Any, final: bool) -> int:
        """Cut, identify and seal ``data``; returns how many of its bytes the chunks consumed."""
        with self.v.store.read() as r:
            known = _Known(self.seen, r, self.vault)
            chunks = C.ingest(data, self.keys, self.prefix, last=final, known=known, hasher=self.hasher,
                              metrics=self.v.metrics)
        consumed = 0
        chunks.reverse()
        while chunks:
            ch = chunks.pop()
            cid = bytes(ch.chunk_id)
            # A view of the stored form (nonce || ciphertext || tag) in the core's output: the writer
            # puts it into LMDB from there, with no copy; the output is freed with its last view.
            sealed = ch.stored
            self.seen.add(cid)
            self.part.append((cid, sealed, ch.length))
            self.manifest += _ENTRY.pack(cid, ch.length)
            self.part_bytes += ch.length
            consumed = ch.offset + ch.length
        if self.part_bytes >= PART and not final:
            self._stage()
        return consumed

    def _stage(self) -> None:
        part, self.part, self.part_bytes = self.part, [], 0
        if not self.deposit_key:
            self.deposit_key = b"dep/" + secrets.token_bytes(16)
        key = self.deposit_key + struct.pack(">I", len(self.staged))
        size = sum(len(s) for _, s, _ in part if s is not None)
        while len([f for _, f in self.staged if not f.done()]) >= MAX_INFLIGHT_PARTS:
            next(f for _, f in self.staged if not f.done()).result()
        fut = self.v.store.submit(lambda t: self._apply_part(t, part, key), size)
        self.staged.append((key, fut))

    def _same_vault(self, t: WriteTxn) -> None:
        """Refuse a unit of this deposit unless the vault is the one whose keys sealed its chunks:
        not destroyed (NotFound), nor destroyed and created again (Aborted) meanwhile."""
        raw = t.get_vault(self.vault)
        if raw is None:
            raise NotFound(f"vault {self.vault!r} was destroyed during the deposit")
        if _incarnation(_record(raw, f"vault {self.vault!r}")) != self.incarnation:
            cached = self.v._cache.get(self.vault)
            if cached is not None and cached[1] == self.incarnation:  # keys of the vault destroyed
                self.v._cache.pop(self.vault, None)
            raise Aborted(
                f"vault {self.vault!r} was destroyed and created again during the deposit; deposit again"
            )

    def _apply_part(self, t: WriteTxn, part: list[tuple[bytes, memoryview | None, int]], key: bytes | None) -> tuple[int, int]:
        if key is not None:  # a staged part (the final unit checks the vault itself)
            self._same_vault(t)
        missing: set[bytes] = set()
        added: set[bytes] = set()
        for cid, sealed, _ in part:
            if sealed is None and cid not in added and t.chunk_refs(self.vault, cid) == 0:
                missing.add(cid)
            added.add(cid)
        if missing:
            # chunks destroyed meanwhile: seal them now from nowhere is impossible; the caller retries
            raise _Missing(missing)
        dedup = stored = 0
        for cid, sealed, n in part:
            count = t.add_chunk_ref(self.vault, cid, sealed)
            if count == 1 and sealed is not None:
                stored += len(sealed)
            else:
                dedup += n
        if key is not None:
            t.put_pending(key, self.vault.encode("ascii") + b"\x00" + b"".join(c for c, _, _ in part))
        return dedup, stored

    def _collect_staged(self) -> None:
        for _, f in self.staged:
            try:
                d, s = f.result().value
            except _Missing as m:
                raise Aborted(
                    f"{len(m.ids)} chunk(s) of this deposit were destroyed while it ran; retry the deposit"
                ) from None
            self.dedup_bytes += d
            self.stored_bytes += s

    def checked(self, actor: Identity, header: DepositHeader, name: str, metadata: dict[str, str], digest: bytes) -> None:
        """What the final unit records, once every byte is in and checked."""
        self.actor, self.header, self.name, self.metadata, self.digest = actor, header, name, metadata, digest

    def submit(self) -> None:
        """Queue the final unit (version, manifest, head, request record, journal leaf) to the
        writer without waiting for it: ``finish`` waits. Rolled back if this fails."""
        try:
            self._collect_staged()
            self.future = self.v.store.submit(self._final_unit(), self._final_size)
        except BaseException:
            self.rollback()
            raise

    def finish(self) -> Receipt:
        """Wait for the final unit: the receipt once durable (with its evidence), the first receipt
        when the same request id committed meanwhile; anything else rolls the staged parts back."""
        try:
            try:
                c = self.future.result()
            except _Duplicate as dup:  # the same request committed meanwhile: its receipt, ours undone
                self.rollback()
                return self.v._same_request(dup.raw, self.name, self.digest)
            except _Missing as m:  # a chunk it shares was destroyed meanwhile; the plaintext is gone
                raise Aborted(
                    f"{len(m.ids)} chunk(s) this deposit shares were destroyed while it ran; retry the deposit"
                ) from None
        except BaseException:
            self.rollback()
            raise
        self.staged = []
        return replace(c.value, evidence=c.evidence)

    def _final_unit(self) -> Callable[[WriteTxn], Receipt]:
        actor, header, name, metadata, digest = self.actor, self.header, self.name, self.metadata, self.digest
        vault = self.vault
        actor_s = str(actor)
        now = _now_ns()
        part = self.part
        manifest = bytes(self.manifest)
        staged_keys = [k for k, _ in self.staged]
        object_id = secrets.token_hex(16)
        leaf = self.v._leaf
        self._final_size = sum(len(s) for _, s, _ in part if s is not None)

        def leaf_of(version: int) -> bytes:
            assert leaf is not None
            return leaf("deposit", actor=actor, vault=vault, name=name, version=version, sha256=digest,
                        size=self.size, time_ns=now)

        # The deposit's leaf is made here, before the unit: only its version is decided by the
        # writer, which splices it in (a leaf factory whose leaves cannot do that is called there).
        with_version = getattr(leaf_of(0), "with_version", None) if leaf else None

        def unit(t: WriteTxn) -> Receipt:
            self._same_vault(t)
            if header.request_id is not None:
                prev = t.get_request(vault, actor_s, header.request_id)
                if prev is not None:
                    raise _Duplicate(prev)
            d, s = self._apply_part(t, part, None)
            version = _next_version(t.get_object(vault, name))
            rec = {
                "object_id": object_id,
                "size": self.size,
                "sha256": digest.hex(),
                "content_type": header.content_type,
                "metadata": metadata,
                "depositor": actor_s,
                "deposited_at_ns": now,
                "retain_until": header.retain_until,
                "legal_hold": False,
                "request_id": header.request_id,
            }
            if leaf:  # the leaf first: the version's record keeps the index of the leaf proving it
                index = t.journal(with_version(version) if with_version is not None else leaf_of(version))
                if index is not None:
                    rec["journal_index"] = index
            rec["mac"] = C.version_mac(self.keys, _version_facts(vault, name, version, rec), manifest).hex()
            rec_bytes = _dumps(rec)
            t.put_version(vault, name, version, rec_bytes, manifest)
            t.put_object(vault, name, _head_bytes(version, version + 1))
            _count(t, "logical_bytes", self.size)
            _count(t, f"vault_bytes/{vault}", self.size)
            for k in staged_keys:
                t.delete_pending(k)
            stat = _stat_from(vault, name, version, rec)
            receipt = Receipt(stat, header.request_id, self.dedup_bytes + d, self.stored_bytes + s)
            if header.request_id is not None:
                t.put_request(
                    vault,
                    actor_s,
                    header.request_id,
                    _request_record(vault, name, version, rec_bytes, header.request_id,
                                    receipt.deduplicated_bytes, receipt.stored_bytes),
                )
            return receipt

        return unit

    def rollback(self) -> None:
        self.release_buffer()
        staged, self.staged = self.staged, []
        for key, f in staged:
            try:
                f.result()
            except Exception:
                continue  # that part was not applied
            def unit(t: WriteTxn, key: bytes = key) -> None:
                self._rollback_by_key(t, key)

            try:
                self.v.store.write(unit)
            except Exception:
                pass  # left pending: rolled back at the next start

    @staticmethod
    def _rollback_by_key(t: WriteTxn, key: bytes) -> None:
        with_rec = None
        for k, rec in t.iter_pending():
            if k == key:
                with_rec = rec
                break
        if with_rec is not None:
            Vaults._rollback_part(t, key, with_rec)


class DeferredReadLeaves:
    """Journal leaves of reads served while the store could not commit, waiting for it to recover.

    Bounded: past ``limit`` leaves a read is refused rather than served without its evidence. The
    leaves keep the time of their read; they are committed, oldest first, with the next read whose
    unit commits. They live in memory only: a crash before the store recovers loses them (the
    ``backlog`` count is exported so that an operator sees the journal is behind).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._leaves: list[bytes] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._leaves)

    def take(self) -> list[bytes]:
        with self._lock:
            leaves, self._leaves = self._leaves, []
            return leaves

    def give_back(self, earlier: list[bytes], leaf: bytes | None = None) -> bool:
        """Keep ``earlier`` (leaves taken by a commit that failed; their reads were served) ahead of the
        rest, then ``leaf`` of a read about to be served, unless the bound is reached: False then, and
        that read must be refused."""
        with self._lock:
            self._leaves = earlier + self._leaves
            if leaf is None:
                return True
            if len(self._leaves) >= self.limit:
                return False
            self._leaves.append(leaf)
            return True


class _ReadEntry:
    """The journal entry of one read on its way to the writer, with the deferred entries of earlier
    reads (already served) that its unit commits too.

    Those are taken from the backlog by the unit itself, on the writer thread as it runs, and put
    back when its transaction does not commit (a full map, a failed unit or commit; before a run
    again after the map grew): whether or not the read is ever streamed, and whatever became of
    its call, no deferred entry is held by a unit that did not commit."""

    def __init__(self, leaf: bytes, backlog: DeferredReadLeaves) -> None:
        self.leaf = leaf
        self._backlog = backlog
        self._taken: list[bytes] = []
        self._settled = threading.Event()
        self._future: Future[Committed[None]] | None = None

    def unit(self, t: WriteTxn) -> None:
        if self._taken:  # run again after an aborted run: what it took is not committed
            self._backlog.give_back(self._taken)
        self._taken = self._backlog.take()
        for earlier in self._taken:
            t.journal(earlier)
        t.journal(self.leaf)

    def submitted(self, future: Future[Committed[None]]) -> None:
        self._future = future
        future.add_done_callback(self._settle)

    def _settle(self, future: Future[Committed[None]]) -> None:
        try:
            if future.cancelled() or future.exception() is not None:
                taken, self._taken = self._taken, []
                self._backlog.give_back(taken)
        finally:
            self._settled.set()

    def result(self) -> None:
        """Wait until the entry is durable (raising what kept it from being written), and until the
        earlier entries its unit took are back in the backlog if it was not."""
        assert self._future is not None
        try:
            self._future.result()
        finally:
            self._settled.wait()


def _journaled(entry: _ReadEntry, stream: Iterator[bytes], backlog: DeferredReadLeaves) -> Iterator[bytes]:
    """``stream``, once the read's journal entry is durable (its first piece is prepared meanwhile).

    When the store cannot commit (full, or its disk failed to sync), the read is served and its leaf
    waits in ``backlog`` (behind the earlier ones its unit took back there); with the backlog full,
    the read is refused.
    """
    try:
        first = next(stream, None)
        try:
            entry.result()
        except (ResourceExhausted, Unavailable) as e:
            if not backlog.give_back([], entry.leaf):
                raise type(e)(f"this read was not served: its journal entry could not be written and "
                              f"{backlog.limit} earlier ones are still waiting ({e})") from None
            log.warning("read served with its journal entry deferred: the store cannot commit (%s); "
                        "%d entries waiting", e, len(backlog))
        except VaultError as e:
            raise type(e)(f"this read was not served: its journal entry could not be written ({e})") from None
        if first is not None:
            yield first
            yield from stream
    finally:
        stream.close()  # type: ignore[attr-defined]


class _Known:
    """The ids a deposit need not seal: those it handles already and those the vault holds."""

    def __init__(self, seen: set[bytes], r: ReadTxn, vault: str) -> None:
        self._seen = seen
        self._r = r
        self._vault = vault

    def __contains__(self, cid: object) -> bool:
        b = cid if isinstance(cid, bytes) else bytes(cid)  # type: ignore[call-overload]
        return b in self._seen or self._r.chunk_refs(self._vault, b) > 0


_STATS_READY = "stats/v1"


def _incarnation(rec: dict[str, Any]) -> str:
    """Which vault of its id a vault record belongs to: drawn at random when the vault is created
    (kept by key rotation), the creation time for vaults created before it was recorded."""
    inc = rec.get("incarnation")
    return str(inc) if inc is not None else f"created:{rec.get('created_at_ns')}"


def _count(t: Any, name: str, delta: int) -> None:
    """Move a counter of the ``stats`` record in ``t`` (stores without one keep no counters)."""
    add = getattr(t, "add_stat", None)
    if add is not None and delta:
        add(name, delta)


def _item_error(e: Exception) -> Exception:
    """An exception kept as one batch item's result, without its traceback: the traceback holds the
    frames (and so the gRPC call) it went through, which must not outlive the call. What is not a
    vaultd error is a bug: logged here, with its traceback, before it is dropped."""
    if not isinstance(e, VaultError):
        log.error("internal error in a batch deposit item", exc_info=e)
    e.__traceback__ = None
    e.__context__ = None
    e.__cause__ = None
    return e


class _Duplicate(Exception):
    def __init__(self, raw: bytes) -> None:
        super().__init__("duplicate request")
        self.raw = raw


def open_vaults(
    data_dir: Path,
    *,
    policy: Policy,
    key_provider: KeyProvider,
    map_size: int = 1 << 34,
    max_map_size: int | None = None,
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
    leaf_factory: Callable[..., bytes] | None = None,
    journal: Any = None,
    after_commit: Callable[[list[Committed[Any]]], Callable[[], None] | None] | None = None,
    metrics: Any = None,
) -> Vaults:
    """Open (creating) the store under ``data_dir/store`` and return the use cases over it."""
    store = open_store(
        Path(data_dir) / "store",
        map_size=map_size,
        max_map_size=max_map_size,
        journal=journal,
        after_commit=after_commit,
        metrics=metrics,
    )
    try:
        return Vaults(store, policy=policy, key_provider=key_provider, max_object_size=max_object_size,
                      leaf_factory=leaf_factory, journal=journal, metrics=metrics)
    except BaseException:
        store.close()
        raise
