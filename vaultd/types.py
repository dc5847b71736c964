"""The shared vocabulary of vaultd: identities, deposit headers, object statistics, receipts.

A leaf module: frozen dataclasses only, importing nothing from the project and nothing of gRPC. The
transport converts these to and from protobuf; the core produces and consumes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "IdentityKind",
    "Identity",
    "DepositHeader",
    "ObjectStat",
    "Receipt",
    "DestroyReceipt",
    "Problem",
    "CheckReport",
    "VaultInfo",
]

IdentityKind = Literal["service", "citizen", "operator"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who calls: a city service, a citizen (through a kiosk) or an operator."""

    kind: str  # "service" | "citizen" | "operator"
    name: str
    kiosk: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class DepositHeader:
    """What a deposit says before its data: where it goes and what the depositor promises."""

    vault: str
    name: str
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    expected_sha256: bytes | None = None
    request_id: str | None = None
    retain_until: int | None = None  # unix seconds


@dataclass(frozen=True, slots=True)
class ObjectStat:
    """Technical metadata of one object version (NF Z42-020 "read technical metadata")."""

    vault: str
    name: str
    version: int
    object_id: str
    size: int
    sha256: bytes
    hash_algorithm: str = "sha256"
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    depositor: str = ""
    deposited_at_ns: int = 0
    retain_until: int | None = None
    legal_hold: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to a durable deposit."""

    stat: ObjectStat
    request_id: str | None
    deduplicated_bytes: int
    stored_bytes: int
    evidence: bytes | None = None  # journal evidence, filled once the journal is wired


@dataclass(frozen=True, slots=True)
class DestroyReceipt:
    """The answer to a durable destruction of one object version."""

    vault: str
    name: str
    version: int
    destroyed_at_ns: int
    actor: str
    evidence: bytes | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One integrity problem found by a check; ``name`` and ``version`` may be empty for a chunk."""

    vault: str
    name: str
    version: int
    what: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The result of an integrity control: what was examined and what was wrong."""

    vault: str
    objects: int
    chunks: int
    bytes: int
    problems: list[Problem] = field(default_factory=list)
    problems_omitted: int = 0  # found but not listed: the list is bounded

    @property
    def ok(self) -> bool:
        return not self.problems and not self.problems_omitted


@dataclass(frozen=True, slots=True)
class VaultInfo:
    """A vault as created: its id, creation time and the master key version wrapping its keys."""

    vault: str
    created_at_ns: int
    key_version: int
