"""Protobuf <-> ``vaultd.types``: the only place that knows both shapes."""

from __future__ import annotations

from typing import Any

import grpc

from vaultd import types as t
from vaultd.errors import VaultError
from vaultd.transport.status import error_for, status_for
from vaultd.v1 import vault_pb2 as pb

_CODE_OF_NUMBER = {c.value[0]: c for c in grpc.StatusCode}

__all__ = [
    "header_to_pb", "header_from_pb", "stat_to_pb", "stat_from_pb", "receipt_to_pb",
    "receipt_from_pb", "destroy_receipt_to_pb", "destroy_receipt_from_pb", "report_to_pb",
    "report_from_pb", "vault_info_to_pb", "vault_info_from_pb", "deposit_result_to_pb",
    "deposit_result_from_pb",
]


def header_to_pb(h: t.DepositHeader, expected_size: int | None = None) -> pb.DepositHeader:
    m = pb.DepositHeader(
        vault=h.vault, name=h.name, content_type=h.content_type, metadata=dict(h.metadata),
        expected_sha256=h.expected_sha256 or b"", request_id=h.request_id or "",
    )
    if h.retain_until is not None:
        m.retain_until = h.retain_until
    if expected_size is not None:
        m.expected_size = expected_size
    return m


def header_from_pb(m: pb.DepositHeader) -> t.DepositHeader:
    return t.DepositHeader(
        vault=m.vault,
        name=m.name,
        content_type=m.content_type or "application/octet-stream",
        metadata=dict(m.metadata),
        expected_sha256=m.expected_sha256 or None,
        request_id=m.request_id or None,
        retain_until=m.retain_until if m.HasField("retain_until") else None,
    )


def stat_to_pb(s: t.ObjectStat) -> pb.ObjectStat:
    m = pb.ObjectStat(
        vault=s.vault, name=s.name, version=s.version, object_id=s.object_id, size=s.size,
        sha256=s.sha256, hash_algorithm=s.hash_algorithm, content_type=s.content_type,
        metadata=dict(s.metadata), depositor=s.depositor, deposited_at_ns=s.deposited_at_ns,
        legal_hold=s.legal_hold,
    )
    if s.retain_until is not None:
        m.retain_until = s.retain_until
    return m


def stat_from_pb(m: pb.ObjectStat) -> t.ObjectStat:
    return t.ObjectStat(
        vault=m.vault, name=m.name, version=m.version, object_id=m.object_id, size=m.size,
        sha256=m.sha256, hash_algorithm=m.hash_algorithm, content_type=m.content_type,
        metadata=dict(m.metadata), depositor=m.depositor, deposited_at_ns=m.deposited_at_ns,
        retain_until=m.retain_until if m.HasField("retain_until") else None,
        legal_hold=m.legal_hold,
    )


def receipt_to_pb(r: t.Receipt) -> pb.Receipt:
    return pb.Receipt(
        stat=stat_to_pb(r.stat), request_id=r.request_id or "",
        deduplicated_bytes=r.deduplicated_bytes, stored_bytes=r.stored_bytes,
        evidence=r.evidence or b"",
    )


def receipt_from_pb(m: pb.Receipt) -> t.Receipt:
    return t.Receipt(
        stat=stat_from_pb(m.stat), request_id=m.request_id or None,
        deduplicated_bytes=m.deduplicated_bytes, stored_bytes=m.stored_bytes,
        evidence=m.evidence or None,
    )


def deposit_result_to_pb(r: t.Receipt | Exception) -> pb.DepositResult:
    """One DepositBatch item's outcome: its receipt, or its error as the status code (from the one
    table, ``vaultd.transport.status``) and message DepositSmall would have sent. An error that is
    not a ``VaultError`` is a bug: INTERNAL, its details left in the server log."""
    if isinstance(r, t.Receipt):
        return pb.DepositResult(receipt=receipt_to_pb(r))
    code = status_for(r)
    if isinstance(r, VaultError):
        message = str(r) or type(r).__name__
    else:
        message = "internal error; the server log has the details"
    return pb.DepositResult(error=pb.DepositError(code=code.value[0], message=message))


def deposit_result_from_pb(m: pb.DepositResult) -> t.Receipt | VaultError:
    """The client's side of ``deposit_result_to_pb``: the receipt, or the ``vaultd.errors`` instance
    the status code maps to (a plain VaultError naming the code for codes outside the table)."""
    which = m.WhichOneof("outcome")
    if which == "receipt":
        return receipt_from_pb(m.receipt)
    if which == "error":
        code = _CODE_OF_NUMBER.get(m.error.code)
        if code is None or code is grpc.StatusCode.OK:
            return VaultError(f"the server reported an item error with status code {m.error.code}: "
                              f"{m.error.message[:1000]}")
        return error_for(code, m.error.message)
    return VaultError("the server sent a deposit result with neither a receipt nor an error")


def destroy_receipt_to_pb(r: t.DestroyReceipt) -> pb.DestroyReceipt:
    return pb.DestroyReceipt(
        vault=r.vault, name=r.name, version=r.version, destroyed_at_ns=r.destroyed_at_ns,
        actor=r.actor, evidence=r.evidence or b"",
    )


def destroy_receipt_from_pb(m: pb.DestroyReceipt) -> t.DestroyReceipt:
    return t.DestroyReceipt(
        vault=m.vault, name=m.name, version=m.version, destroyed_at_ns=m.destroyed_at_ns,
        actor=m.actor, evidence=m.evidence or None,
    )


def report_to_pb(r: t.CheckReport) -> pb.CheckReport:
    return pb.CheckReport(
        vault=r.vault, objects=r.objects, chunks=r.chunks, bytes=r.bytes,
        problems=[pb.Problem(vault=p.vault, name=p.name, version=p.version, what=p.what)
                  for p in r.problems],
        problems_omitted=r.problems_omitted,
    )


def report_from_pb(m: pb.CheckReport) -> t.CheckReport:
    return t.CheckReport(
        vault=m.vault, objects=m.objects, chunks=m.chunks, bytes=m.bytes,
        problems=[t.Problem(vault=p.vault, name=p.name, version=p.version, what=p.what)
                  for p in m.problems],
        problems_omitted=m.problems_omitted,
    )


def vault_info_to_pb(v: t.VaultInfo) -> pb.VaultInfo:
    return pb.VaultInfo(vault=v.vault, created_at_ns=v.created_at_ns, key_version=v.key_version)


def vault_info_from_pb(m: pb.VaultInfo) -> t.VaultInfo:
    return t.VaultInfo(vault=m.vault, created_at_ns=m.created_at_ns, key_version=m.key_version)


def _unix(iso: str | None) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso).timestamp()) if iso else 0


def signature_to_pb(s: Any) -> pb.StoredSignature:
    """A ``vaultd.core.signatures.StoredSignature`` as sent by GetSignatures."""
    return pb.StoredSignature(
        cms=s.cms, chain=list(s.chain), valid=s.valid, reason=s.reason, validated_at_unix=_unix(s.validated_at),
        signer=s.signer or "", signer_subject=s.signer_subject or "", signing_time_unix=_unix(s.signing_time),
        journal_index=s.journal_index or 0, receipt=s.receipt or b"", kiosk=s.kiosk,
    )
