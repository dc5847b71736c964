"""The JournalService servicer: protobuf in, one call to the journal, protobuf out.

Authorization uses the server's policy (``authorize(identity, verb, vault)``, i.e. ``Policy.check``):
"journal" on a vault to read its entries, a delivery proof or an inclusion proof of one of its entries
(which carries the entry itself), "admin" to read the whole journal or any single entry. Checkpoints,
consistency proofs and the public key reveal only hashes and sizes and are open to any authenticated
caller. Proofs are checked by the journal against its signed root before they are sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaultd.errors import InvalidArgument, PermissionDenied
from vaultd.journal.checkpoint import SIG_ED25519
from vaultd.journal.journal import Journal, SignedHead
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import encode_consistency_proof
from vaultd.transport.auth import identity_of
from vaultd.transport.servicer import unary
from vaultd.types import Identity
from vaultd.v1 import journal_pb2 as pb
from vaultd.v1 import journal_pb2_grpc as pb_grpc

__all__ = ["JournalServicer", "add_to_server", "journal_service", "SERVICE_NAME", "MAX_JOURNAL_PAGE"]

SERVICE_NAME = "vaultd.v1.JournalService"

DEFAULT_JOURNAL_PAGE = 100
MAX_JOURNAL_PAGE = 1000
Authorize = Callable[[Identity, str, "str | None"], None]


def _checkpoint_pb(head: SignedHead) -> pb.Checkpoint:
    cp = head.checkpoint
    return pb.Checkpoint(note=head.note, origin=cp.origin, tree_size=cp.size, root_hash=cp.root)


def _entry_pb(index: int, raw: bytes, leaf: Leaf) -> pb.JournalEntry:
    return pb.JournalEntry(
        index=index, leaf=raw, operation=leaf.operation, vault=leaf.vault, name=leaf.name, version=leaf.version,
        sha256=leaf.sha256 or b"", actor=f"{leaf.actor_kind}:{leaf.actor_name}", kiosk=leaf.kiosk,
        time_ns=leaf.time_ns, outcome=leaf.outcome,
    )


class JournalServicer(pb_grpc.JournalServiceServicer):
    def __init__(self, journal: Journal, authorize: Authorize, metrics: Any = None) -> None:
        self._journal = journal
        self._authorize = authorize
        self._metrics = metrics  # vaultd.metrics.Metrics or None: proofs served, by kind

    def _served(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.proof_served(kind)

    @unary
    def GetCheckpoint(self, request: pb.GetCheckpointRequest, ctx: Any) -> pb.Checkpoint:
        identity_of(ctx)
        return _checkpoint_pb(self._journal.head())

    def _authorize_entry(self, actor: Identity, index: int, leaf: bytes) -> None:
        """Let ``actor`` see the entry at ``index`` only with "journal" on its vault, or "admin" (the
        right to read the whole journal; the only right for entries of no vault). Every index below the
        tree size holds an entry, so a refusal tells nothing the size does not; its message names
        neither the entry's vault nor anything else the entry holds."""
        vault = Leaf.decode(leaf).vault
        try:
            if vault:
                try:
                    self._authorize(actor, "journal", vault)
                    return
                except PermissionDenied:
                    pass
            self._authorize(actor, "admin", None)
        except PermissionDenied:
            raise PermissionDenied(
                f'{actor} may not read journal entry {index}: that needs "journal" on the vault the entry '
                'belongs to, or "admin" (no policy rule allows it)') from None

    @unary
    def GetInclusionProof(self, request: pb.GetInclusionProofRequest, ctx: Any) -> pb.InclusionProof:
        actor = identity_of(ctx)
        head = self._journal.head() if request.tree_size == 0 else None
        size = head.checkpoint.size if head is not None else request.tree_size
        # the range checks first (NOT_FOUND / INVALID_ARGUMENT): they tell no more than the tree size
        proof = self._journal.inclusion(request.index, size)
        leaf = self._journal.tree.leaf(request.index)
        self._authorize_entry(actor, request.index, leaf)
        if head is not None:
            receipt = self._journal.receipt("event", request.index, head)
            self._served("inclusion")
            return pb.InclusionProof(index=request.index, tree_size=size, leaf=leaf, hashes=proof,
                                     checkpoint=_checkpoint_pb(head), receipt=receipt)
        self._served("inclusion")
        return pb.InclusionProof(index=request.index, tree_size=size, leaf=leaf, hashes=proof)

    @unary
    def GetConsistencyProof(self, request: pb.GetConsistencyProofRequest, ctx: Any) -> pb.ConsistencyProof:
        identity_of(ctx)
        new = request.new_size or self._journal.head().checkpoint.size
        old = request.old_size
        if old == 0 or old > new:
            raise InvalidArgument(f"no consistency proof from size {old} to size {new}")
        hashes = self._journal.consistency(old, new)
        self._served("consistency")
        return pb.ConsistencyProof(old_size=old, new_size=new, hashes=hashes,
                                   proof_file=encode_consistency_proof(old, new, hashes))

    @unary
    def ReadJournal(self, request: pb.ReadJournalRequest, ctx: Any) -> pb.ReadJournalResponse:
        actor = identity_of(ctx)
        vault = request.vault or None
        if vault is None:
            self._authorize(actor, "admin", None)
        else:
            self._authorize(actor, "journal", vault)
        page = request.page_size or DEFAULT_JOURNAL_PAGE
        if page > MAX_JOURNAL_PAGE:
            raise InvalidArgument(f"page_size at most {MAX_JOURNAL_PAGE}")
        entries, nxt = self._journal.read(request.start_index, vault=vault, limit=page)
        return pb.ReadJournalResponse(
            entries=[_entry_pb(i, leaf.encode(), leaf) for i, leaf in entries],
            next_index=nxt, tree_size=self._journal.tree.size(),
        )

    @unary
    def GetPublicKey(self, request: pb.GetPublicKeyRequest, ctx: Any) -> pb.PublicKey:
        identity_of(ctx)
        v = self._journal.verifier
        return pb.PublicKey(name=v.name, verifier_key=v.vkey(), pem=v.public_key_pem(),
                            algorithm="ed25519" if v.sig_type == SIG_ED25519 else "ecdsa-p256-sha256",
                            key_id=v.key_id)

    @unary
    def GetReceipt(self, request: pb.GetReceiptRequest, ctx: Any) -> pb.ReceiptFile:
        actor = identity_of(ctx)
        self._authorize(actor, "journal", request.vault)
        receipt = self._journal.object_receipt(
            request.vault, request.name, request.version, destroyed=request.destroyed)
        self._served("inclusion")  # a receipt carries the leaf's inclusion proof
        return pb.ReceiptFile(receipt=receipt)

    @unary
    def GetDeliveryProof(self, request: pb.GetDeliveryProofRequest, ctx: Any) -> pb.DeliveryProof:
        actor = identity_of(ctx)
        self._authorize(actor, "journal", request.vault)
        index = self._journal.first_read_index(request.vault, request.name, request.version)
        if index is None:
            return pb.DeliveryProof(read=False)
        receipt = self._journal.receipt("delivery", index)
        self._served("inclusion")
        leaf = Leaf.decode(self._journal.tree.leaf(index))
        return pb.DeliveryProof(read=True, receipt=receipt, index=index, read_at_ns=leaf.time_ns,
                                reader=f"{leaf.actor_kind}:{leaf.actor_name}")


def add_to_server(server: Any, journal: Journal, authorize: Authorize, metrics: Any = None) -> JournalServicer:
    servicer = JournalServicer(journal, authorize, metrics)
    pb_grpc.add_JournalServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    return servicer


def journal_service(journal: Journal, authorize: Authorize,
                    metrics: Any = None) -> tuple[str, Callable[[Any], None]]:
    """The (name, add) pair ``VaultServer(extra_services=...)`` takes."""
    def add(server: Any) -> None:
        add_to_server(server, journal, authorize, metrics)

    return SERVICE_NAME, add
