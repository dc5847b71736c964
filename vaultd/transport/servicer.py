"""The VaultService servicer: protobuf in, one call to the core (``Vaults``), protobuf out.

Authentication happened in the interceptor (``identity_of``); authorization, validation and every
rule of the vault are the core's. What stays here is what only the transport can know: that the
first Deposit message is a header, the next ones data of at most 1 MiB and the last one the end
marker with the byte count, that the client is still there and within its deadline, and how large
a response may be. A DepositBatch item is checked here exactly as a DepositSmall request is; one
that fails these checks gets its error in its own result, the others go on to the core.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import grpc

from vaultd import types as t
from vaultd.core.vaults import MAX_BATCH_ITEMS, MAX_PAGE_TOKEN
from vaultd.errors import Cancelled, DeadlineExceeded, InvalidArgument, VaultError
from vaultd.transport import convert
from vaultd.transport.auth import identity_of
from vaultd.transport.calls import CallContext
from vaultd.transport.status import status_for
from vaultd.v1 import vault_pb2 as pb
from vaultd.v1 import vault_pb2_grpc as pb_grpc

__all__ = ["VaultServicer", "MAX_PIECE", "MAX_BATCH_ITEMS", "MAX_PAGE_SIZE", "DEFAULT_PAGE_SIZE", "VaultsAPI"]

log = logging.getLogger("vaultd.transport")

MAX_PIECE = 1 << 20  # bytes of data per Deposit or Read message
_READ_DATA_FIELD = pb.ReadResponse.DESCRIPTOR.fields_by_name["data"].number
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_LIST_RESERVE = MAX_PAGE_TOKEN + 16  # a ListResponse's bytes besides its entries: the token's field

F = TypeVar("F", bound=Callable[..., Any])


class VaultsAPI(Protocol):
    """What the servicer needs of ``vaultd.core.vaults.Vaults``."""

    def create_vault(self, actor: t.Identity, vault: str) -> t.VaultInfo: ...
    def deposit(self, actor: t.Identity, header: t.DepositHeader, data: Any) -> t.Receipt: ...
    def deposit_batch(self, actor: t.Identity,
                      items: Sequence[tuple[t.DepositHeader, bytes]]) -> list[t.Receipt | Exception]: ...
    def read(self, actor: t.Identity, vault: str, name: str, version: int | None = ...,
             offset: int = ..., length: int | None = ..., frame: int | None = ...
             ) -> tuple[t.ObjectStat, Iterator[bytes]]: ...
    def stat(self, actor: t.Identity, vault: str, name: str, version: int | None = ...) -> t.ObjectStat: ...
    def list(self, actor: t.Identity, vault: str, prefix: str = ..., page_size: int = ...,
             page_token: str = ..., versions: bool = ..., max_bytes: int | None = ...
             ) -> tuple[list[t.ObjectStat], str]: ...
    def count(self, actor: t.Identity, vault: str, prefix: str = ...) -> int: ...
    def destroy(self, actor: t.Identity, vault: str, name: str, version: int | None = ...) -> t.DestroyReceipt: ...
    def check(self, actor: t.Identity, vault: str, name: str | None = ..., version: int | None = ...,
              *, still_wanted: Callable[[], None] | None = ...) -> t.CheckReport: ...
    def set_retention(self, actor: t.Identity, vault: str, name: str, retain_until: int,
                      version: int | None = ...) -> t.ObjectStat: ...
    def set_legal_hold(self, actor: t.Identity, vault: str, name: str, hold: bool,
                       version: int | None = ...) -> t.ObjectStat: ...
    def rotate_keys(self, actor: t.Identity) -> int: ...
    def retire_key(self, actor: t.Identity, version: int) -> None: ...
    def destroy_vault(self, actor: t.Identity, vault: str) -> Any: ...
    def ready(self) -> bool: ...


def _abort(ctx: Any, e: BaseException) -> None:
    # The refusal keeps no traceback: a traceback holds this call's frames (and so its context), and
    # a frame that holds the exception (the store writer's, which handed it over through a future)
    # would make a reference cycle that keeps the call's HTTP/2 stream counted on the connection
    # until the cyclic garbage collector runs.
    if isinstance(e, VaultError):
        e.__traceback__ = None
        ctx.abort(status_for(e), str(e) or type(e).__name__)
    log.exception("internal error in %s", getattr(getattr(ctx, "call", None), "method", "?"))
    e.__traceback__ = None
    ctx.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")


def unary(fn: F) -> F:
    """Maps vaultd errors to status codes; anything else is INTERNAL (and logged, not sent)."""

    @functools.wraps(fn)
    def run(self: Any, request: Any, ctx: Any) -> Any:
        try:
            return fn(self, request, ctx)
        except Exception as e:
            if _is_abort(e):
                raise
            _abort(ctx, e)

    return run  # type: ignore[return-value]


def streaming(fn: F) -> F:
    @functools.wraps(fn)
    def run(self: Any, request: Any, ctx: Any) -> Any:
        gen = fn(self, request, ctx)
        try:
            yield from gen
        except Exception as e:
            if _is_abort(e):
                raise
            _abort(ctx, e)
        finally:
            gen.close()

    return run  # type: ignore[return-value]


def _is_abort(e: BaseException) -> bool:
    # ServicerContext.abort raises a bare Exception after setting the status.
    return type(e) is Exception and not e.args


def _optional(m: Any, field: str) -> Any:
    return getattr(m, field) if m.HasField(field) else None


def _small_deposit(request: pb.DepositSmallRequest, what: str) -> tuple[t.DepositHeader, bytes]:
    """The header and data of a one-message deposit (DepositSmall, or a DepositBatch item), checked
    for what only the message shows: a header, at most 1 MiB of data, the size it announced."""
    if not request.HasField("header"):
        raise InvalidArgument(f"{what} must carry the header (vault, name, ...)")
    header = convert.header_from_pb(request.header)
    data = request.data
    if len(data) > MAX_PIECE:
        raise InvalidArgument(
            f"{what} holds {len(data)} bytes; at most {MAX_PIECE} are allowed (use Deposit)")
    expected_size = _optional(request.header, "expected_size")
    if expected_size is not None and expected_size != len(data):
        raise InvalidArgument(
            f"the deposit holds {len(data)} bytes but its header announced {expected_size}; "
            "nothing was kept")
    return header, data


def _note_vault(ctx: Any, vault: str) -> None:
    if isinstance(ctx, CallContext):
        ctx.call.vault = vault[:128]


def _still_there(ctx: Any, what: str, after: str = "nothing was kept") -> None:
    remaining = ctx.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceeded(f"the deadline passed during the {what}; {after}")
    if not ctx.is_active():
        raise Cancelled(f"the client went away during the {what}; {after}")


class VaultServicer(pb_grpc.VaultServiceServicer):
    def __init__(self, vaults: VaultsAPI, *, max_response_bytes: int = 4 << 20) -> None:
        self._vaults = vaults
        self._max_response = max_response_bytes

    @unary
    def CreateVault(self, request: pb.CreateVaultRequest, ctx: Any) -> pb.VaultInfo:
        _note_vault(ctx, request.vault)
        return convert.vault_info_to_pb(self._vaults.create_vault(identity_of(ctx), request.vault))

    @unary
    def Deposit(self, request_iterator: Iterator[pb.DepositRequest], ctx: Any) -> pb.Receipt:
        actor = identity_of(ctx)
        messages = iter(request_iterator)
        try:
            first = next(messages, None)
        except grpc.RpcError:
            raise Cancelled("the client went away before the deposit header; nothing was kept") from None
        if first is None or not first.HasField("header"):
            raise InvalidArgument("the first Deposit message must carry the header (vault, name, ...)")
        header = convert.header_from_pb(first.header)
        _note_vault(ctx, header.vault)
        expected_size = _optional(first.header, "expected_size")

        def pieces() -> Iterator[bytes]:
            total = 0
            msg: pb.DepositRequest | None = first
            while True:
                if msg is None:
                    try:
                        msg = next(messages)
                    except StopIteration:
                        break
                    except grpc.RpcError:
                        raise Cancelled("the deposit stream broke before its end; nothing was kept") from None
                    _still_there(ctx, "deposit")
                    if msg.HasField("header"):
                        raise InvalidArgument("only the first Deposit message may carry a header")
                piece = msg.data
                if len(piece) > MAX_PIECE:
                    raise InvalidArgument(
                        f"a Deposit data message holds {len(piece)} bytes; at most {MAX_PIECE} are allowed"
                    )
                total += len(piece)
                if expected_size is not None and total > expected_size:
                    raise InvalidArgument(
                        f"the deposit sent more than the {expected_size} bytes its header announced; "
                        "nothing was kept"
                    )
                if piece:
                    yield piece
                if msg.HasField("end"):
                    if msg.end.size != total:
                        raise InvalidArgument(
                            f"the deposit's end marker counts {msg.end.size} bytes but {total} "
                            "arrived; nothing was kept"
                        )
                    break
                msg = None
            if msg is None:
                # The stream stopped without its end marker: truncated, whatever the reason (the
                # client half-closed early, or gRPC refused a message and ended the stream).
                raise InvalidArgument(
                    f"the deposit stream stopped after {total} bytes without its end marker "
                    "(truncated); nothing was kept"
                )
            if expected_size is not None and total != expected_size:
                raise InvalidArgument(
                    f"the deposit stream ended after {total} of the {expected_size} bytes its header "
                    "announced (truncated); nothing was kept"
                )
            _still_there(ctx, "deposit")

        return convert.receipt_to_pb(self._vaults.deposit(actor, header, pieces()))

    @unary
    def DepositSmall(self, request: pb.DepositSmallRequest, ctx: Any) -> pb.Receipt:
        actor = identity_of(ctx)
        if request.HasField("header"):
            _note_vault(ctx, request.header.vault)
        header, data = _small_deposit(request, "DepositSmall")
        return convert.receipt_to_pb(self._vaults.deposit(actor, header, [data] if data else []))

    @unary
    def DepositBatch(self, request: pb.DepositBatchRequest, ctx: Any) -> pb.DepositBatchResponse:
        actor = identity_of(ctx)
        n = len(request.items)
        if n > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                f"DepositBatch holds {n} items; at most {MAX_BATCH_ITEMS} are allowed. Nothing was "
                "stored: split it into batches of at most that many")
        vaults = {item.header.vault for item in request.items}
        if len(vaults) == 1:
            _note_vault(ctx, vaults.pop())
        results: list[t.Receipt | Exception | None] = [None] * n
        checked: list[tuple[t.DepositHeader, bytes]] = []
        where: list[int] = []
        for i, item in enumerate(request.items):
            try:
                checked.append(_small_deposit(item, f"DepositBatch item {i}"))
                where.append(i)
            except InvalidArgument as e:
                results[i] = e
        for i, r in zip(where, self._vaults.deposit_batch(actor, checked), strict=True):
            results[i] = r
        return pb.DepositBatchResponse(
            results=[convert.deposit_result_to_pb(r) for r in results if r is not None])

    @streaming
    def Read(self, request: pb.ReadRequest, ctx: Any) -> Iterator[pb.ReadResponse | bytes]:
        _note_vault(ctx, request.vault)
        # The pieces come already encoded as ReadResponse messages (the data field, framed by the core
        # where the chunks are opened): sent as they are, with no copy into a message object and out.
        stat, data = self._vaults.read(
            identity_of(ctx), request.vault, request.name, _optional(request, "version"),
            request.offset, _optional(request, "length"), frame=_READ_DATA_FIELD,
        )
        try:
            yield pb.ReadResponse(stat=convert.stat_to_pb(stat))
            for piece in data:
                if not ctx.is_active():  # the client went away or its deadline passed: stop reading
                    return
                yield piece
        finally:
            close = getattr(data, "close", None)
            if close is not None:
                close()

    @unary
    def Stat(self, request: pb.StatRequest, ctx: Any) -> pb.ObjectStat:
        _note_vault(ctx, request.vault)
        return convert.stat_to_pb(self._vaults.stat(
            identity_of(ctx), request.vault, request.name, _optional(request, "version")))

    @unary
    def List(self, request: pb.ListRequest, ctx: Any) -> pb.ListResponse:
        _note_vault(ctx, request.vault)
        actor = identity_of(ctx)
        size = request.page_size or DEFAULT_PAGE_SIZE
        size = min(size, MAX_PAGE_SIZE)
        # Large metadata can make a full page exceed the response bound: the core ends the page
        # early, at a bound on the entries' encoded size that leaves room for the next page's token.
        stats, token = self._vaults.list(
            actor, request.vault, request.prefix, size, request.page_token, request.versions,
            max_bytes=self._max_response - _LIST_RESERVE)
        return pb.ListResponse(objects=[convert.stat_to_pb(s) for s in stats], next_page_token=token)

    @unary
    def Count(self, request: pb.CountRequest, ctx: Any) -> pb.CountResponse:
        _note_vault(ctx, request.vault)
        return pb.CountResponse(count=self._vaults.count(identity_of(ctx), request.vault, request.prefix))

    @unary
    def Destroy(self, request: pb.DestroyRequest, ctx: Any) -> pb.DestroyReceipt:
        _note_vault(ctx, request.vault)
        return convert.destroy_receipt_to_pb(self._vaults.destroy(
            identity_of(ctx), request.vault, request.name, _optional(request, "version")))

    @unary
    def Check(self, request: pb.CheckRequest, ctx: Any) -> pb.CheckReport:
        _note_vault(ctx, request.vault)
        return convert.report_to_pb(self._vaults.check(
            identity_of(ctx), request.vault, _optional(request, "name"), _optional(request, "version"),
            still_wanted=lambda: _still_there(
                ctx, "check", "give it more time, or check one object at a time")))

    @unary
    def SetRetention(self, request: pb.SetRetentionRequest, ctx: Any) -> pb.ObjectStat:
        _note_vault(ctx, request.vault)
        return convert.stat_to_pb(self._vaults.set_retention(
            identity_of(ctx), request.vault, request.name, request.retain_until,
            _optional(request, "version")))

    @unary
    def SetLegalHold(self, request: pb.SetLegalHoldRequest, ctx: Any) -> pb.ObjectStat:
        _note_vault(ctx, request.vault)
        return convert.stat_to_pb(self._vaults.set_legal_hold(
            identity_of(ctx), request.vault, request.name, request.hold, _optional(request, "version")))

    @unary
    def RotateKeys(self, request: pb.RotateKeysRequest, ctx: Any) -> pb.RotateKeysResponse:
        return pb.RotateKeysResponse(key_version=self._vaults.rotate_keys(identity_of(ctx)))

    @unary
    def RetireKey(self, request: pb.RetireKeyRequest, ctx: Any) -> pb.RetireKeyResponse:
        self._vaults.retire_key(identity_of(ctx), request.key_version)
        return pb.RetireKeyResponse()

    @unary
    def GetSignatures(self, request: pb.GetSignaturesRequest, ctx: Any) -> pb.GetSignaturesResponse:
        from vaultd.core.signatures import stored_signatures

        _note_vault(ctx, request.vault)
        version, sigs = stored_signatures(self._vaults, identity_of(ctx), request.vault, request.name,
                                          _optional(request, "version"))
        resp = pb.GetSignaturesResponse(version=version, signatures=[convert.signature_to_pb(s) for s in sigs])
        if sigs:
            resp.sha256 = sigs[0].sha256
        return resp

    @unary
    def DestroyVault(self, request: pb.DestroyVaultRequest, ctx: Any) -> pb.DestroyVaultResponse:
        _note_vault(ctx, request.vault)
        self._vaults.destroy_vault(identity_of(ctx), request.vault)
        return pb.DestroyVaultResponse()
