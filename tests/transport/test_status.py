"""The one status table: every error class has a code, and the client gets the class back."""

from __future__ import annotations

import grpc
import pytest

from vaultd import errors
from vaultd.transport.status import ERROR_OF, STATUS_OF, error_for, status_for

EXPECTED = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.IntegrityError: grpc.StatusCode.DATA_LOSS,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def test_every_error_class_has_its_code() -> None:
    public = {getattr(errors, n) for n in errors.__all__} - {errors.VaultError}
    assert set(STATUS_OF) == public
    for cls, code in EXPECTED.items():
        assert status_for(cls("x")) is code


@pytest.mark.parametrize("cls", list(EXPECTED))
def test_round_trip(cls: type[errors.VaultError]) -> None:
    e = error_for(status_for(cls("the message")), "the message")
    assert type(e) is cls
    assert str(e) == "the message"


def test_subclass_maps_through_its_base_and_others_are_internal() -> None:
    class Sub(errors.NotFound):
        pass

    assert status_for(Sub("x")) is grpc.StatusCode.NOT_FOUND
    assert status_for(RuntimeError("boom")) is grpc.StatusCode.INTERNAL
    e = error_for(grpc.StatusCode.INTERNAL, "internal error")
    assert type(e) is errors.VaultError and "INTERNAL" in str(e)
    assert grpc.StatusCode.INTERNAL not in ERROR_OF
