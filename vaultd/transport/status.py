"""The one table between vaultd errors and gRPC status codes, used in both directions.

The server turns a raised ``vaultd.errors`` class into its status code; the client turns a status
code back into the class, so a caller catches the same exceptions locally and over the network.
"""

from __future__ import annotations

import grpc

from vaultd import errors

__all__ = ["STATUS_OF", "ERROR_OF", "status_for", "error_for"]

# Error class -> status code. Order matters only for the reverse direction: the first class listed
# for a code is the one the client raises for it.
_TABLE: tuple[tuple[type[errors.VaultError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.IntegrityError, grpc.StatusCode.DATA_LOSS),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)

STATUS_OF: dict[type[errors.VaultError], grpc.StatusCode] = dict(_TABLE)
ERROR_OF: dict[grpc.StatusCode, type[errors.VaultError]] = {}
for _cls, _code in _TABLE:
    ERROR_OF.setdefault(_code, _cls)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code of a raised error: its class or the nearest base class in the table.

    Anything that is not a ``VaultError`` is a bug on the server's side: INTERNAL.
    """
    for cls in type(exc).__mro__:
        code = STATUS_OF.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def error_for(code: grpc.StatusCode, details: str | None) -> errors.VaultError:
    """The ``vaultd.errors`` instance a client raises for a status code and its message.

    Codes outside the table (INTERNAL, UNKNOWN, UNIMPLEMENTED, ...) become a plain VaultError that
    names the code.
    """
    cls = ERROR_OF.get(code)
    message = details or code.name
    if cls is None:
        return errors.VaultError(f"{code.name}: {message}")
    return cls(message)
