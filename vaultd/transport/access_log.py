"""One structured JSON line per request: identity, method, vault, status, duration.

Never key material, tokens or content: the line is built from the call's identity, the method
name, the vault id and the outcome only, and written by ``vaultd.logs.log_request`` (whose JSON
formatter redacts anything that looks secret anyway).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from vaultd.logs import REQUEST_LOGGER, log_request
from vaultd.transport.calls import Behavior, CallContext, HandlerCache, call_context, iterate, wrap_handler

__all__ = ["AccessLogInterceptor", "LOGGER_NAME"]

LOGGER_NAME = REQUEST_LOGGER


def _code_of(ctx: CallContext, failed: BaseException | None) -> str:
    code = None
    try:
        code = ctx.code()
    except Exception:  # older grpc contexts have no code()
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if not ctx.is_active():
        return "CANCELLED"
    if failed is not None and not isinstance(failed, GeneratorExit):
        return "UNKNOWN"
    return "OK"


class AccessLogInterceptor(grpc.ServerInterceptor):
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(LOGGER_NAME)
        self._handlers = HandlerCache()

    def _emit(self, ctx: CallContext, failed: BaseException | None) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        call = ctx.call
        log_request(call.identity, call.method, call.vault, _code_of(ctx, failed),
                    time.monotonic() - call.started, peer=ctx.peer(), logger=self._log)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        handler = continuation(handler_call_details)

        def wrap(behavior: Behavior, streaming: bool) -> Behavior:
            if not streaming:
                def logged(request: Any, ctx: Any) -> Any:
                    ctx = call_context(ctx, method)
                    failed: BaseException | None = None
                    try:
                        return behavior(request, ctx)
                    except BaseException as e:
                        failed = e
                        raise
                    finally:
                        self._emit(ctx, failed)
                        failed = None  # the exception's traceback holds this frame: no cycle

                return logged

            def logged_stream(request: Any, ctx: Any) -> Any:
                ctx = call_context(ctx, method)
                failed: BaseException | None = None
                try:
                    yield from iterate(behavior(request, ctx))
                except BaseException as e:
                    failed = e
                    raise
                finally:
                    self._emit(ctx, failed)
                    failed = None  # the exception's traceback holds this frame: no cycle

            return logged_stream

        return self._handlers.get(method, handler, lambda: wrap_handler(handler, wrap))
